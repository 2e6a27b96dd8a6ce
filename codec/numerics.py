"""What the coder's probabilities depend on, besides the checkpoint and the images.

The decoder rebuilds every pixel's distribution from the pixels it has decoded,
so it must compute the encoder's probabilities to the last bit. Both run the
same NumPy code (the cached evaluators of ``sampling``, then
``codec.coder``) on the same batches, so the numbers can only differ through
what runs that code:

* NumPy's version and the SIMD code paths it dispatches to on this CPU (its
  ``tanh``, ``exp`` and friends have one implementation per instruction set);
* the BLAS library behind ``numpy.dot``, its build and the CPU kernels it chose
  (OpenBLAS names them, e.g. ``SkylakeX``), and its thread count: the codec
  always runs it on one thread per process (``use_one_blas_thread``), several
  batches in parallel processes instead;
* the code that computes the probabilities: the sources of the cached
  evaluators, their NumPy layers, the masks they apply and ``codec.coder``
  (hashed; ``code_files``);
* the entropy coder's version (the bit stream's format).

Theano is not among them: the codec never runs a compiled Theano function, so
Theano's ``blas.ldflags`` does not enter the numbers.

``fingerprint()`` collects these as a dict that the file header records;
``differences(recorded, current)`` lists what changed.
"""
import ctypes
import functools
import hashlib
import inspect
import os
import platform
import sys
from importlib import metadata

import numpy

import quantize
from lib.layers import make_mask
from models.gated_pixel_cnn import colour_mask

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the modules whose code computes the probabilities, relative to the project folder
CODE_FILES = ("sampling/cached.py", "sampling/cached_masked.py", "sampling/cached_pixel_conv.py",
              "sampling/cached_gated.py", "sampling/numpy_layers.py", "codec/coder.py")
# functions of other modules that they call (hashed by their source alone)
CODE_FUNCTIONS = (make_mask, colour_mask, quantize.targets_to_inputs)


def numpy_simd():
    """The SIMD extensions NumPy uses here: its baseline and the dispatch targets this
    CPU has (a sorted list of names)."""
    core = sys.modules.get("numpy._core._multiarray_umath") or \
        sys.modules.get("numpy.core._multiarray_umath")
    if core is None or not hasattr(core, "__cpu_features__"):
        return ["unknown"]
    found = core.__cpu_features__
    return sorted(set(core.__cpu_baseline__) | {f for f in core.__cpu_dispatch__
                                                if found.get(f)})


def _numpy_blas_suffix():
    """The symbol suffix of NumPy's BLAS ('64_' for the ILP64 OpenBLAS of NumPy's
    wheels), or None when NumPy's build information does not say."""
    config = sys.modules.get("numpy.__config__")
    for name in ("blas_ilp64_opt_info", "blas_opt_info"):
        info = getattr(config, name, None) or {}
        for macro, value in info.get("define_macros", []):
            if macro == "BLAS_SYMBOL_SUFFIX":
                return value or ""
    return None


def _loaded_libraries(word):
    """Paths of the shared libraries loaded in this process whose name holds ``word``."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/" in line}
    except OSError:
        return []
    return sorted(p for p in paths if word in os.path.basename(p).lower())


@functools.lru_cache(maxsize=None)
def numpy_openblas():
    """(ctypes library, symbol suffix) of the OpenBLAS that ``numpy.dot`` calls, or
    (None, None) when NumPy uses another BLAS (or it cannot be found)."""
    wanted = _numpy_blas_suffix()
    suffixes = [wanted] if wanted is not None else ["64_", ""]
    numpy_dir = os.path.dirname(os.path.dirname(numpy.__file__))
    paths = _loaded_libraries("openblas")
    # NumPy's own copy first (site-packages/numpy.libs), then any other
    paths.sort(key=lambda p: not p.startswith(numpy_dir))
    for suffix in suffixes:
        for path in paths:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            if hasattr(lib, "openblas_get_config" + suffix):
                return lib, suffix
    return None, None


def _blas_call(name, restype=ctypes.c_int, *args):
    """OpenBLAS function ``name`` of NumPy's BLAS called with ``args``; None when
    NumPy's BLAS is not an OpenBLAS."""
    lib, suffix = numpy_openblas()
    if lib is None:
        return None
    fn = getattr(lib, name + suffix)
    fn.restype = restype
    return fn(*args)


def use_one_blas_thread():
    """Run NumPy's OpenBLAS on one thread in this process (what the recorded numbers
    assume; also the fastest for the coder's small products). Returns the thread
    count in force afterwards, or None when NumPy's BLAS is not an OpenBLAS."""
    _blas_call("openblas_set_num_threads", None, ctypes.c_int(1))
    return _blas_call("openblas_get_num_threads")


def blas_description():
    """NumPy's BLAS: OpenBLAS's build string (version, options, chosen CPU kernels),
    else the libraries NumPy was built against."""
    config = _blas_call("openblas_get_config", ctypes.c_char_p)
    if config is not None:
        core = _blas_call("openblas_get_corename", ctypes.c_char_p) or b""
        return "{} (kernels: {})".format(config.decode().strip(), core.decode())
    info = getattr(sys.modules.get("numpy.__config__"), "blas_opt_info", None) or {}
    return "not OpenBLAS: {}".format(",".join(info.get("libraries", [])) or "unknown")


def code_files():
    """SHA-256 over the sources of the code that computes the probabilities."""
    digest = hashlib.sha256()
    for name in CODE_FILES:
        with open(os.path.join(PROJECT, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read() + b"\0")
    for fn in CODE_FUNCTIONS:
        digest.update(inspect.getsource(fn).encode() + b"\0")
    return digest.hexdigest()


def fingerprint():
    """What the probabilities depend on here, besides checkpoint and images:
    ``{name: value}`` with JSON values. Call after ``use_one_blas_thread``."""
    return {"machine": platform.machine(),
            "numpy": numpy.__version__,
            "numpy_simd": ",".join(numpy_simd()),
            "blas": blas_description(),
            "blas_threads": _blas_call("openblas_get_num_threads"),
            "code_sha256": code_files(),
            "constriction": metadata.version("constriction")}


def differences(recorded, current):
    """Lines naming each entry of ``recorded`` that ``current`` does not match."""
    lines = []
    for name in sorted(set(recorded) | set(current)):
        if recorded.get(name) != current.get(name):
            lines.append("  {}: file {!r}, here {!r}".format(
                name, recorded.get(name), current.get(name)))
    return lines
