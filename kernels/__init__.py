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

Every op with its own C code derives from :class:`CompiledOp`, which gives it

* a C-code cache version that is a digest of the C text the op emits for the
  node being compiled (:func:`code_version`), so ``~/.theano`` can never hold
  code compiled from one text under the version of another;
* the fall-back to ``perform`` when the compiler has no OpenMP (the C code is
  built with ``-fopenmp``): Theano would otherwise stop with a compile error.

Misuse is refused three times, each with an exception that names the op, the
argument and what it must be: in ``make_node`` (input count, ndim, dtype, and
the shape relations as far as the graph knows the shapes: :func:`known_shape`),
in the C code before it writes anything, and in ``perform``. :data:`C_CHECKS`
holds the C helpers; :func:`float32_variable`, :func:`check_float32` and
:func:`differ` the Python ones, and each op module one function of the shape
relations that both ``make_node`` and ``perform`` call.
"""
import hashlib
import warnings

import numpy
import theano
import theano.tensor as T
from theano.gof.op import OpenMPOp
from theano.gof.utils import MethodNotDefined

# C helpers of the argument checks: each returns 1, or 0 with a Python exception set
# that names the op and the argument (the caller then releases what it holds and fails).
C_CHECKS = r"""
#include <stdio.h>
/* "(2, 3, 4)": the shape of a, written into buf. */
static const char* kc_shape(PyArrayObject* a, char* buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < PyArray_NDIM(a) && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %ld" : "%ld",
                                 (long)PyArray_DIMS(a)[i]);
    if (used < size) snprintf(buf + used, size - used, PyArray_NDIM(a) == 1 ? ",)" : ")");
    return buf;
}

/* a is a float32 array of ndim dimensions (ndim 0: of at least one dimension). */
static int kc_float32(PyArrayObject* a, int ndim, const char* op, const char* what) {
    if (!a) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_MemoryError, "%s: no contiguous copy of %s", op, what);
        return 0;
    }
    if (PyArray_TYPE(a) == NPY_FLOAT32
        && (ndim ? PyArray_NDIM(a) == ndim : PyArray_NDIM(a) >= 1))
        return 1;
    char want[32];
    if (ndim) snprintf(want, sizeof(want), "%d dimensions", ndim);
    else snprintf(want, sizeof(want), "at least 1 dimension");
    PyErr_Format(PyExc_TypeError, "%s: %s must be a float32 array of %s, got a %d-d %s array "
                 "(cast it with .astype('float32'))", op, what, want, PyArray_NDIM(a),
                 PyArray_DESCR(a)->typeobj->tp_name);
    return 0;
}
"""


def code_version(*texts):
    """A C-code cache version ``(n,)`` of the strings ``texts``: the first 60 bits
    of the SHA-1 of their UTF-8 bytes (each ended by a NUL), as an int."""
    digest = hashlib.sha1()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return (int(digest.hexdigest()[:15], 16),)


def float32_variable(x, ndim, op, what):
    """``x`` as a Theano tensor, refused (TypeError) unless float32 with ``ndim``
    dimensions (``ndim`` None: at least one)."""
    x = T.as_tensor_variable(x)
    if x.dtype != "float32" or (x.ndim < 1 if ndim is None else x.ndim != ndim):
        raise TypeError("{}: {} must be a float32 tensor of {}, got a {}-d {} one (cast it "
                        "with .astype('float32'))".format(op, what, _dims(ndim), x.ndim,
                                                          x.dtype))
    return x


def check_float32(value, ndim, op, what):
    """The ``perform`` side of :func:`float32_variable`: the array ``value``, refused
    (TypeError) unless float32 with ``ndim`` dimensions (None: at least one)."""
    if not isinstance(value, numpy.ndarray) or value.dtype != numpy.float32 or (
            value.ndim < 1 if ndim is None else value.ndim != ndim):
        raise TypeError("{}: {} must be a float32 array of {}, got {!r} of shape {} (cast it "
                        "with .astype('float32'))".format(
                            op, what, _dims(ndim), getattr(value, "dtype", type(value)),
                            getattr(value, "shape", "()")))
    return value


def known_shape(x):
    """The axis lengths of the tensor variable ``x`` that the graph knows (a constant's
    shape; 1 on a broadcastable axis), None for the others: what ``make_node`` can
    check of the shape relations that ``perform`` and the C code check in full."""
    if isinstance(x, T.TensorConstant):
        return tuple(x.data.shape)
    return tuple(1 if b else None for b in x.broadcastable)


def differ(a, b):
    """Whether two axis lengths (None: not known) are both known and different."""
    return a is not None and b is not None and a != b


def _dims(ndim):
    return "{} dimensions".format(ndim) if ndim is not None else "at least 1 dimension"


_OPENMP = {}  # "supported": whether the C compiler builds OpenMP code (probed once)


def compiler_has_openmp():
    """Whether Theano's C compiler builds and links a program with ``-fopenmp``
    (asked once per process, and only after a compile of a kernel failed)."""
    if "supported" not in _OPENMP:
        _OPENMP["supported"] = bool(OpenMPOp.test_gxx_support())
    return _OPENMP["supported"]


class CompiledOp(theano.Op):
    """Base of the ops with their own C code (see the module docstring).

    ``c_code_cache_version_apply`` hashes :meth:`emitted_code`, which the ops
    extend if they emit more than the standard hooks. ``c_code_cache_version``
    (without a node) is empty: Theano versions a node's module by the former.
    """

    def emitted_code(self, node):
        """What Theano compiles for ``node``, as strings: the text of every C hook
        (variable names replaced by placeholders) and the compiler settings."""
        sub = {"fail": "FAIL;", "id": 1}
        inputs = ["INPUT_%d" % i for i in range(len(node.inputs))]
        outputs = ["OUTPUT_%d" % i for i in range(len(node.outputs))]
        hooks = [lambda: self.c_code(node, "NODE", inputs, outputs, sub),
                 self.c_support_code, self.c_init_code,
                 lambda: self.c_support_code_apply(node, "NODE"),
                 lambda: self.c_init_code_apply(node, "NODE"),
                 lambda: self.c_code_cleanup(node, "NODE", inputs, outputs, sub),
                 lambda: self.c_support_code_struct(node, "NODE"),
                 lambda: self.c_init_code_struct(node, "NODE", sub),
                 lambda: self.c_cleanup_code_struct(node, "NODE"),
                 self.c_headers, self.c_compile_args, self.c_no_compile_args,
                 self.c_libraries, self.c_lib_dirs, self.c_header_dirs]
        texts = []
        for hook in hooks:
            try:
                text = hook()
            except MethodNotDefined as error:
                if not texts:  # c_code itself: no C code for this node
                    raise error
                text = ""  # Theano's default: nothing of that kind
            texts.append(text if isinstance(text, str) else repr(text))
        return texts

    def c_code_cache_version_apply(self, node):
        try:
            return code_version(*self.emitted_code(node))
        except MethodNotDefined:  # no C code for this node: Theano runs perform()
            return ()

    def c_code_cache_version(self):
        return ()

    def make_thunk(self, node, storage_map, compute_map, no_recycling, impl=None):
        """As Theano's, but where the compile fails because the compiler has no
        OpenMP, a warning and the Python ``perform`` instead of the error."""
        if impl is None and _OPENMP.get("supported") is False:
            return self.make_py_thunk(node, storage_map, compute_map, no_recycling)
        try:
            return super(CompiledOp, self).make_thunk(node, storage_map, compute_map,
                                                      no_recycling, impl=impl)
        except Exception:
            if impl is not None or not theano.config.cxx or compiler_has_openmp():
                raise  # a real fault of the C code: never hide it behind perform()
        warnings.warn("kernels: the C compiler ({}) cannot build OpenMP code (-fopenmp), so "
                      "the fast ops run their slow Python code; install the compiler's "
                      "OpenMP support (e.g. libgomp, or libomp for clang) to compile "
                      "them".format(theano.config.cxx), RuntimeWarning)
        return self.make_py_thunk(node, storage_map, compute_map, no_recycling)
