"""Compiled Theano ops of the fast graphs (the channels-last path).

``lib/`` holds the original code's primitives; this package holds what makes
the fast graphs fast: ops with hand-written C code, each with a pure-Python
``perform`` that Theano runs where no C compiler (or no BLAS) is found.

    lstm     the Row LSTM and the two Diagonal LSTM directions as one op per
             layer (the recurrence in C), and their gradient

Every op here derives its C-code cache version from its own source text
(:func:`source_version`), so an edit can never run stale code compiled into
``~/.theano`` by an earlier version.
"""
import hashlib


def source_version(*texts):
    """A C-code cache version ``(n,)`` that changes whenever any of ``texts``
    (the op's C source) changes: the first 8 bytes of their SHA-1, as an int."""
    digest = hashlib.sha1("\0".join(texts).encode("utf-8")).hexdigest()
    return (int(digest[:15], 16),)
