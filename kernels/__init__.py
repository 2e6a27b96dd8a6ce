"""Compiled Theano ops of the fast graphs (the channels-last path).

``lib/`` holds the original code's primitives; this package holds what makes
the fast graphs fast: ops with hand-written C code, each with a pure-Python
``perform`` that Theano runs where no C compiler (or no BLAS) is found.

    patches        causal patch matrices (im2col) of channels-last maps, and col2im
    channels_last  convolutions on ``(batch * rows * width, channels)`` matrices as
                   single products over patch matrices (graph helpers, no op)
    fast_relu      the original's leaky ReLU as branch-free elementwise ops
    gate           the gated activation tanh(a) * sigmoid(b) and its gradient
    lstm           the Row LSTM and the two Diagonal LSTM directions as one op per
                   layer (the recurrence in C), and their gradient

Every op here derives its C-code cache version from its own source text
(:func:`source_version`), so an edit can never run stale code compiled into
``~/.theano`` by an earlier version.
"""
import hashlib


def source_version(*paths):
    """A C-code cache version ``(n,)`` that changes whenever any of the files
    ``paths`` (the modules that hold an op's C source) changes: the first 60
    bits of the SHA-1 of their bytes, as an int."""
    digest = hashlib.sha1()
    for path in paths:
        with open(path, "rb") as f:
            digest.update(f.read())
    return (int(digest.hexdigest()[:15], 16),)
