"""Theano set-up, done once before Theano is imported anywhere in the project.

Importing ``lib`` imports this module first. It sets Theano's environment
(``lib.theano_env``: floatX, the BLAS library, BLIS threads, the scan loop;
the user's own flags always win), imports Theano, then registers
``theano.tensor.signal.downsample``, a module Theano 1.0 removed but Lasagne
0.1 still imports, as a thin alias of ``theano.tensor.signal.pool`` so that
``import lasagne`` (and ``lasagne.updates.adam``) works.
"""
import sys
import types

from lib.theano_env import (blas_ldflags, configure_environment, configure_threads,  # noqa: F401
                            default_flags, prepare)


def _register_downsample_alias():
    """Give Lasagne 0.1 the ``downsample.max_pool_2d`` it imports."""
    import theano.tensor.signal
    from theano.tensor.signal import pool

    if hasattr(theano.tensor.signal, "downsample"):
        return
    alias = types.ModuleType("theano.tensor.signal.downsample")
    alias.__doc__ = "Alias of theano.tensor.signal.pool for Lasagne 0.1."

    def max_pool_2d(input, ds, ignore_border=None, st=None, padding=(0, 0), mode="max"):
        return pool.pool_2d(input, ws=ds, ignore_border=ignore_border, stride=st,
                            pad=padding, mode=mode)

    alias.max_pool_2d = max_pool_2d
    sys.modules[alias.__name__] = alias
    theano.tensor.signal.downsample = alias


prepare()
import theano  # noqa: E402  (must come after the environment is set)

_register_downsample_alias()

if theano.config.floatX != "float32":
    raise RuntimeError(
        "This project computes in float32, but Theano is set to floatX={}. "
        "Remove floatX from THEANO_FLAGS/.theanorc or set floatX=float32.".format(
            theano.config.floatX))
