"""The gated activation tanh(a) * sigmoid(b) as one compiled op, and its gradient.

Input ``(..., 2 * p)``: the first ``p`` channels are a (the filter), the last
``p`` are b (the gate); output ``(..., p)``. Any leading layout; the arrays
are processed as ``(rows, channels)`` in parallel over rows (OpenMP).

Theano's own ``tanh`` and ``sigmoid`` evaluate float32 inputs in double
precision, each in its own pass over a strided half of the input, and their
gradients take several more passes; on ``(78400, 64)`` inputs that came to
~70 ms per gate, and even glibc's float32 ``tanhf``/``expf`` cost ~30 ms.
Here one pass computes both halves with branch-free float32 polynomials
that the compiler vectorises (within a few float32 ulps of the exact values;
``tests/test_fast_ops.py`` checks them); the gradient recomputes them
rather than storing them.
"""
import numpy
import theano

from kernels import C_CHECKS, CompiledOp, check_float32, differ, float32_variable, known_shape

MATH_SUPPORT = r"""
#include <stdint.h>
/* exp(x) for float32, branch-free so that loops over it vectorise: x = n ln2 + r,
   |r| <= ln2 / 2, a degree-6 polynomial for exp(r) (the Cephes expf
   coefficients), then 2^n put into the exponent bits. */
static inline float gate_exp(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    float y = p * r * r + r + 1.0f;
    union { int32_t i; float f; } two_n;
    two_n.i = ((int32_t)n + 127) << 23;
    return y * two_n.f;
}
static inline float gate_sigmoid(float x) { return 1.0f / (1.0f + gate_exp(-x)); }
/* tanh: an odd polynomial below |x| = 0.625 (Cephes tanhf), else 1 - 2 / (e^2|x| + 1). */
static inline float gate_tanh(float x) {
    float ax = fabsf(x), s = x * x;
    float small = ((((-5.70498872745E-3f * s + 2.06390887954E-2f) * s - 5.37397155531E-2f)
                    * s + 1.33314422036E-1f) * s - 3.33332819422E-1f) * s * x + x;
    float big = 1.0f - 2.0f / (gate_exp(2.0f * ax) + 1.0f);
    big = x < 0 ? -big : big;
    return ax < 0.625f ? small : big;
}
"""


def _halves(x):
    p = x.shape[-1] // 2
    return x[..., :p], x[..., p:]


def _check_shapes(x, gz=None):
    """Refuses (ValueError) the shapes ``x`` of the input and ``gz`` of the output
    gradient, tuples of equal length (None for a length not known), unless x is
    ``(..., 2p)`` and gz ``(..., p)``."""
    op = "Gate" if gz is None else "GateGrad"
    if x[-1] is not None and x[-1] % 2:
        raise ValueError("{}: the last axis of x {} must have an even length (a, then b, "
                         "p channels each)".format(op, x))
    halved = tuple(x[:-1]) + (None if x[-1] is None else x[-1] // 2,)
    if gz is not None and any(differ(a, b) for a, b in zip(gz, halved)):
        raise ValueError("GateGrad: gz {} must have the shape of x {} with the last axis "
                         "halved".format(gz, x))


class _GateBase(CompiledOp):
    __props__ = ()

    def c_support_code(self):
        return [C_CHECKS, MATH_SUPPORT]

    def c_headers(self):
        return ["<math.h>", "<string.h>", "<omp.h>"]

    def c_compile_args(self):
        # -fno-trapping-math lets the compiler turn the selects into blends and
        # vectorise the loops (it changes no result, only FP-exception traps).
        return ["-fopenmp", "-O3", "-fno-trapping-math"]


class Gate(_GateBase):
    """``(..., 2p)`` float32 -> ``(..., p)``: tanh(first half) * sigmoid(second half)."""

    def make_node(self, x):
        x = float32_variable(x, None, "Gate", "x")
        _check_shapes(known_shape(x))
        return theano.Apply(self, [x], [x.type()])

    def infer_shape(self, node, shapes):
        return [tuple(shapes[0][:-1]) + (shapes[0][-1] // 2,)]

    def perform(self, node, inputs, output_storage):
        check_float32(inputs[0], None, "Gate", "x")
        _check_shapes(inputs[0].shape)
        a, b = _halves(inputs[0])
        output_storage[0][0] = (numpy.tanh(a) / (1 + numpy.exp(-b))).astype(numpy.float32)

    def grad(self, inputs, output_grads):
        return [GateGrad()(inputs[0], output_grads[0])]

    def c_code(self, node, name, inputs, outputs, sub):
        return r"""
        {
        PyArrayObject* x_ = PyArray_GETCONTIGUOUS(%(x)s);
        int ok = kc_float32(x_, 0, "Gate", "x"), nd = 0;
        npy_intp dims[NPY_MAXDIMS], two_p = 0, p = 0;
        if (ok) {
            nd = PyArray_NDIM(x_);
            for (int i = 0; i < nd; i++) dims[i] = PyArray_DIMS(x_)[i];
            two_p = dims[nd - 1];
            p = two_p / 2;
            dims[nd - 1] = p;
        }
        if (ok && two_p %% 2) {
            char shape[256];
            PyErr_Format(PyExc_ValueError, "Gate: the last axis of x %%s must have an even "
                         "length (a, then b, p channels each)",
                         kc_shape(x_, shape, sizeof(shape)));
            ok = 0;
        } else if (ok && (!%(z)s || PyArray_NDIM(%(z)s) != nd
                          || !PyArray_IS_C_CONTIGUOUS(%(z)s)
                          || memcmp(PyArray_DIMS(%(z)s), dims, nd * sizeof(npy_intp)))) {
            Py_XDECREF(%(z)s);
            %(z)s = (PyArrayObject*)PyArray_EMPTY(nd, dims, NPY_FLOAT32, 0);
            if (!%(z)s) ok = 0;
        }
        if (ok) {
            npy_intp rows = p ? PyArray_SIZE(%(z)s) / p : 0;
            const float* in = (const float*)PyArray_DATA(x_);
            float* out = (float*)PyArray_DATA(%(z)s);
            #pragma omp parallel for schedule(static)
            for (npy_intp r = 0; r < rows; r++) {
                const float* a = in + r * two_p;
                float* o = out + r * p;
                for (npy_intp k = 0; k < p; k++) o[k] = gate_tanh(a[k]) * gate_sigmoid(a[p + k]);
            }
        }
        Py_XDECREF(x_);
        if (!ok) %(fail)s
        }
        """ % dict(x=inputs[0], z=outputs[0], fail=sub["fail"])


class GateGrad(_GateBase):
    """(x ``(..., 2p)``, output gradient ``(..., p)``) -> gradient ``(..., 2p)``."""

    def make_node(self, x, gz):
        x = float32_variable(x, None, "GateGrad", "x")
        gz = float32_variable(gz, x.ndim, "GateGrad", "gz, like x,")
        _check_shapes(known_shape(x), known_shape(gz))
        return theano.Apply(self, [x, gz], [x.type()])

    def infer_shape(self, node, shapes):
        return [shapes[0]]

    def perform(self, node, inputs, output_storage):
        x, gz = inputs
        check_float32(x, None, "GateGrad", "x")
        check_float32(gz, x.ndim, "GateGrad", "gz, like x,")
        _check_shapes(x.shape, gz.shape)
        a, b = _halves(x)
        t, s = numpy.tanh(a), 1 / (1 + numpy.exp(-b))
        out = numpy.concatenate([(1 - t * t) * s * gz, t * s * (1 - s) * gz], axis=-1)
        output_storage[0][0] = out.astype(numpy.float32)

    def grad(self, inputs, output_grads):
        raise NotImplementedError("the gate has no second derivative here")

    def c_code(self, node, name, inputs, outputs, sub):
        return r"""
        {
        PyArrayObject* x_ = PyArray_GETCONTIGUOUS(%(x)s);
        PyArrayObject* g_ = PyArray_GETCONTIGUOUS(%(gz)s);
        int ok = kc_float32(x_, 0, "GateGrad", "x") && kc_float32(g_, 0, "GateGrad", "gz");
        int nd = ok ? PyArray_NDIM(x_) : 0;
        npy_intp two_p = ok ? PyArray_DIMS(x_)[nd - 1] : 0, p = two_p / 2;
        int fits = ok && !(two_p %% 2) && PyArray_NDIM(g_) == nd;
        for (int i = 0; fits && i < nd; i++)
            fits = PyArray_DIMS(g_)[i] == (i < nd - 1 ? PyArray_DIMS(x_)[i] : p);
        if (ok && !fits) {
            char xs[256], gs[256];
            kc_shape(x_, xs, sizeof(xs));
            kc_shape(g_, gs, sizeof(gs));
            if (two_p %% 2)
                PyErr_Format(PyExc_ValueError, "GateGrad: the last axis of x %%s must have "
                             "an even length (a, then b, p channels each)", xs);
            else
                PyErr_Format(PyExc_ValueError, "GateGrad: gz %%s must have the shape of x "
                             "%%s with the last axis halved", gs, xs);
            ok = 0;
        } else if (ok && (!%(z)s || PyArray_NDIM(%(z)s) != nd
                          || !PyArray_IS_C_CONTIGUOUS(%(z)s)
                          || memcmp(PyArray_DIMS(%(z)s), PyArray_DIMS(x_),
                                    nd * sizeof(npy_intp)))) {
            Py_XDECREF(%(z)s);
            %(z)s = (PyArrayObject*)PyArray_EMPTY(nd, PyArray_DIMS(x_), NPY_FLOAT32, 0);
            if (!%(z)s) ok = 0;
        }
        if (ok) {
            npy_intp rows = p ? PyArray_SIZE(g_) / p : 0;
            const float* in = (const float*)PyArray_DATA(x_);
            const float* g = (const float*)PyArray_DATA(g_);
            float* out = (float*)PyArray_DATA(%(z)s);
            #pragma omp parallel for schedule(static)
            for (npy_intp r = 0; r < rows; r++) {
                const float* a = in + r * two_p;
                const float* gr = g + r * p;
                float* o = out + r * two_p;
                for (npy_intp k = 0; k < p; k++) {
                    float t = gate_tanh(a[k]), s = gate_sigmoid(a[p + k]);
                    o[k] = (1.0f - t * t) * s * gr[k];
                    o[p + k] = t * s * (1.0f - s) * gr[k];
                }
            }
        }
        Py_XDECREF(x_);
        Py_XDECREF(g_);
        if (!ok) %(fail)s
        }
        """ % dict(x=inputs[0], gz=inputs[1], z=outputs[0], fail=sub["fail"])


gate = Gate()
