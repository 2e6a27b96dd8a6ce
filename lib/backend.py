"""Theano set-up, done once before Theano is imported anywhere in the project.

Importing ``lib`` imports this module first. It sets Theano's environment
(``lib.theano_env``: floatX, the BLAS library, BLIS threads, OpenMP's wait
policy, the scan loop; the user's own settings always win), imports Theano, then registers
``theano.tensor.signal.downsample``, a module Theano 1.0 removed but Lasagne
0.1 still imports, as a thin alias of ``theano.tensor.signal.pool`` so that
``import lasagne`` (and ``lasagne.updates.adam``) works, and mends two faults
of Theano's C-module cache that made every process compile some modules anew
(``_cache_ops_without_props``, ``_stable_cop_versions``). ``blas_problem`` lets
a script say in one line, before it compiles anything, that the BLAS library
Theano is set to link is not there.
"""
import functools
import hashlib
import shlex
import sys
import types

from lib.theano_env import (blas_ldflags, configure_environment, configure_openmp,  # noqa: F401
                            configure_threads, default_flags, prepare)


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


def _cache_ops_without_props():
    """Keep the compiled code of ops whose ``__props__`` is empty in the C-module cache.

    Theano 1.0.5 puts every op's ``__props__`` into the version part of a module's
    cache key and takes any empty entry there for "this code has no version", so
    modules holding an op without properties (``Alloc``, ``DeepCopyOp``,
    ``ScalarFromTensor``, the softmax cross-entropy ops, ...) were compiled again,
    1-2 s each, in every process. The wrapped key function recomputes the version
    with those empty entries allowed; the ops' and types' own code versions must
    all still be present, so code that is really unversioned stays uncached.
    """
    from theano.gof.cc import CLinker

    original = CLinker.cmodule_key_
    if getattr(original, "allows_empty_props", False):
        return

    def cmodule_key_(self, fgraph, *args, **kwargs):
        key = original(self, fgraph, *args, **kwargs)
        if key is None or key[0]:
            return key
        version = []
        for node in self.schedule(fgraph):
            own = ([node.op.c_code_cache_version_apply(node)]
                   if hasattr(node.op, "c_code_cache_version_apply") else [])
            types = [v.type.c_code_cache_version() for v in node.inputs + node.outputs]
            if not all(own + types):
                return key  # a genuinely unversioned op or type
            props = [node.op.__props__] if hasattr(node.op, "__props__") else []
            version += own + props + types  # the order of Theano's own key
        return tuple(version), key[1]

    cmodule_key_.allows_empty_props = True
    CLinker.cmodule_key_ = cmodule_key_


def _stable_cop_versions():
    """Give ``COp`` code (``DimShuffle``) the same cache version in every process.

    Theano 1.0.5 versions the C code of a ``COp`` by Python's ``hash()`` of the
    code's text, which changes from one process to the next (string hashing is
    randomised), so each process missed the cache and compiled such modules
    again. A digest of the same text is stable.
    """
    from theano.gof.op import COp

    if getattr(COp.c_code_cache_version, "is_stable", False):
        return

    def c_code_cache_version(self):
        digest = hashlib.sha256("\0".join(self.func_codes).encode("utf-8")).hexdigest()
        version = (int(digest[:15], 16),)
        if hasattr(self, "params_type"):
            version += (self.params_type.c_code_cache_version(),)
        return version

    c_code_cache_version.is_stable = True
    COp.c_code_cache_version = c_code_cache_version


@functools.lru_cache(maxsize=None)
def blas_problem():
    """One line saying that the linker cannot use the BLAS library of Theano's
    ``blas.ldflags`` (every compiled product would fail, deep inside Theano), with
    the fix; None when it can, or when no BLAS is set. Links a tiny program once
    a process (about 0.2 s)."""
    from theano.gof.cmodule import GCC_compiler
    flags = theano.config.blas.ldflags
    if not flags.strip() or not theano.config.cxx:
        return None
    try:
        words = shlex.split(flags)
    except ValueError:
        words = flags.split()
    if GCC_compiler.try_flags(words) or not GCC_compiler.try_flags([]):
        return None  # it links, or nothing links: a compiler problem, Theano reports it
    paths = [w for w in words if not w.startswith("-l")]
    missing = [w for w in words if w.startswith("-l") and not GCC_compiler.try_flags(paths + [w])]
    ours = blas_ldflags()
    if flags.strip() == ours:
        source = "the project's choice"
        fix = ("install its development files (make venv does, as root: libopenblas-dev, "
               "libblis-dev), or run with THEANO_FLAGS=blas.ldflags= to use NumPy's slower BLAS")
    else:
        source = "from THEANO_FLAGS or ~/.theanorc"
        fix = ("install {}, or remove blas.ldflags from THEANO_FLAGS (and ~/.theanorc) to use "
               "the project's choice ({})".format("it" if len(missing) < 2 else "them",
                                                  ours or "NumPy's BLAS"))
    return ("Theano's BLAS setting blas.ldflags={} ({}) names {} the linker cannot find: "
            "{}".format(flags.strip(), source, " ".join(missing) or "a library", fix))


prepare()
import theano  # noqa: E402  (must come after the environment is set)

_register_downsample_alias()
_cache_ops_without_props()
_stable_cop_versions()

if theano.config.floatX != "float32":
    raise RuntimeError(
        "This project computes in float32, but Theano is set to floatX={}. "
        "Remove floatX from THEANO_FLAGS/.theanorc or set floatX=float32.".format(
            theano.config.floatX))
