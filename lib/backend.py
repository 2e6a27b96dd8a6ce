"""Theano set-up, done once before Theano is imported anywhere in the project.

Importing ``lib`` imports this module first. It

* sets ``floatX=float32`` and ``blas.ldflags`` (``-lblis`` when BLIS is
  installed, else ``-lopenblas`` when OpenBLAS is, else empty so that Theano
  falls back to NumPy's C-API BLAS; Theano 1.0.5 on NumPy 1.23 fails to
  import without it), unless the user already chose a value in
  ``THEANO_FLAGS`` or in a ``.theanorc`` file: the user's choice always wins;
* sets ``BLIS_NUM_THREADS`` to the number of usable cores unless the user
  set it or ``OMP_NUM_THREADS``;
* makes ``theano.scan`` use its Python loop on Python >= 3.11 (see
  ``_use_python_scan_loop``);
* registers ``theano.tensor.signal.downsample``, a module Theano 1.0 removed
  but Lasagne 0.1 still imports, as a thin alias of ``theano.tensor.signal.pool``
  so that ``import lasagne`` (and ``lasagne.updates.adam``) works.
"""
import configparser
import ctypes.util
import os
import shlex
import sys
import types

_DEFAULTS_SECTIONS = {"floatX": ("global", "floatX"), "blas.ldflags": ("blas", "ldflags")}


def _user_flag_names(flags):
    """Names set in a THEANO_FLAGS string (same splitting rules as Theano)."""
    splitter = shlex.shlex(flags, posix=True)
    splitter.whitespace = ","
    splitter.whitespace_split = True
    return {pair.split("=", 1)[0].strip() for pair in splitter if "=" in pair}


def _theanorc_has(section, option):
    """True when one of the user's .theanorc files sets ``[section] option``."""
    paths = [os.path.expanduser(p) for p in os.getenv("THEANORC", "~/.theanorc").split(os.pathsep)]
    parser = configparser.RawConfigParser()
    try:
        parser.read(paths)
    except configparser.Error:
        return False
    return parser.has_option(section, option)


def blas_ldflags(find_library=ctypes.util.find_library):
    """BLIS where installed (Debian ``libblis-dev``: fastest here on the skinny
    products of the channels-last graphs), else OpenBLAS, else empty (NumPy's
    C-API BLAS)."""
    for name in ("blis", "openblas"):
        if find_library(name):
            return "-l" + name
    return ""


def default_flags():
    """The flags this project adds, as a dict name -> value."""
    return {"floatX": "float32", "blas.ldflags": blas_ldflags()}


def configure_threads(environ=os.environ):
    """Let BLIS use every core this process may run on (BLIS runs one thread
    unless told), unless the user set BLIS_NUM_THREADS or OMP_NUM_THREADS."""
    if "BLIS_NUM_THREADS" not in environ and "OMP_NUM_THREADS" not in environ:
        environ["BLIS_NUM_THREADS"] = str(len(os.sched_getaffinity(0)))


def configure_environment(environ=os.environ):
    """Put our defaults in front of the user's THEANO_FLAGS (theirs win)."""
    user_flags = environ.get("THEANO_FLAGS", "")
    taken = _user_flag_names(user_flags)
    ours = [
        "{}={}".format(name, value)
        for name, value in default_flags().items()
        if name not in taken and not _theanorc_has(*_DEFAULTS_SECTIONS[name])
    ]
    # Theano lets later entries override earlier ones, so the user's go last.
    environ["THEANO_FLAGS"] = ",".join(ours + ([user_flags] if user_flags else []))


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


SCAN_CYTHON_MODULE = "theano.scan_module.scan_perform_ext"


def _use_python_scan_loop():
    """Make ``theano.scan`` run its Python loop over steps.

    Theano 1.0.5 ships its Cython scan loop as pre-generated C that does not
    compile on Python 3.11 (changed internal headers), and it does not catch
    that compile error. It does fall back to the Python loop when importing
    the module raises ImportError, which a ``None`` in ``sys.modules`` causes.
    The step functions themselves are still compiled C.
    """
    if sys.version_info >= (3, 11) and SCAN_CYTHON_MODULE not in sys.modules:
        sys.modules[SCAN_CYTHON_MODULE] = None


if "theano" not in sys.modules:
    configure_environment()
configure_threads()
_use_python_scan_loop()
import theano  # noqa: E402  (must come after the environment is set)

_register_downsample_alias()

if theano.config.floatX != "float32":
    raise RuntimeError(
        "This project computes in float32, but Theano is set to floatX={}. "
        "Remove floatX from THEANO_FLAGS/.theanorc or set floatX=float32.".format(
            theano.config.floatX))
