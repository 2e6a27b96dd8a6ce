"""The PixelRNN recurrences as single compiled ops: Row LSTM and Diagonal LSTM.

``lstm_scan(mode, gates, weights)`` runs one LSTM layer over a whole map:

    gates    (batch, height, width, 4h)   input-to-state pre-activations, bias in;
                                          channel 4k + g is gate g of unit k, gates
                                          in the order (input, forget, output, candidate)
    weights  (taps * h, 4h)               state-to-state weights; row tap * h + u
                                          weighs unit u of the tap's neighbour
    returns  (batch, height, width, h)    hidden states

Pixel (i, j) adds the hidden states of its neighbours (zeros outside the image)
times ``weights`` to its gates, then takes the usual LSTM step from the cell
state of its predecessor::

    mode  taps (in weight order)            predecessor    steps (one product each)
    row   (i-1, j-1), (i-1, j), (i-1, j+1)  (i-1, j)       the rows, top to bottom
    l2r   (i-1, j), (i, j-1)                (i, j-1)       the diagonals i + j = t
    r2l   (i-1, j), (i, j+1)                (i, j+1)       the diagonals i + (W-1-j) = t

These are the Row LSTM of ``models.pixel_rnn`` (its 1x3 state-to-state filter)
and the two directions of its Diagonal BiLSTM in image coordinates: the skew
turns the diagonals into the columns its ``scan`` walks, and the right-to-left
direction runs on the mirrored image. Here the skew is only an order of
visiting pixels (no padded map) and the mirror only which side neighbour is
read (no flipped copy).

Every neighbour of a pixel lies on the previous step, so a step is: gather the
neighbours' states of all its pixels into a patch matrix ``(batch * L, taps *
h)``, one BLAS product with ``weights``, the gate nonlinearities and the cell
update fused in one pass. The gradient op walks the steps backwards, keeping
the gates' activations and the cell states of the forward pass (extra outputs
of the forward op); the weight gradient is one product at the end.
"""
import numpy
import theano
import theano.tensor as T
from theano.gradient import DisconnectedType
from theano.tensor import blas_headers
from theano.tensor.blas import ldflags

from kernels import C_CHECKS, CompiledOp, check_float32, differ, float32_variable, known_shape
from kernels.gate import MATH_SUPPORT as GATE_MATH  # vectorisable float32 exp, sigmoid, tanh

MODES = ("row", "l2r", "r2l")
TAPS = {"row": 3, "l2r": 2, "r2l": 2}
GATES = 4


def num_steps(mode, height, width):
    """Rows (``row``) or diagonals (``l2r``, ``r2l``) of a ``height x width`` map."""
    return height if mode == "row" else height + width - 1


def geometry(mode, height, width, t):
    """The pixels of step ``t`` and their neighbours, as flat indices ``i * width + j``
    within one image: (pos ``(L,)``, nbr ``(L, taps)``, pred ``(L,)``), -1 outside."""
    if mode == "row":
        j = numpy.arange(width)
        pos = t * width + j
        cols = j[:, None] + numpy.arange(-1, 2)[None, :]
        inside = (t > 0) & (cols >= 0) & (cols < width)
        nbr = numpy.where(inside, (t - 1) * width + cols, -1)
        pred = numpy.full(width, (t - 1) * width, int) + j if t > 0 else numpy.full(width, -1)
        return pos, nbr, pred
    i = numpy.arange(max(0, t - width + 1), min(height - 1, t) + 1)
    j = t - i if mode == "l2r" else width - 1 - (t - i)
    side = j - 1 if mode == "l2r" else j + 1
    up = numpy.where(i > 0, (i - 1) * width + j, -1)
    across = numpy.where((side >= 0) & (side < width), i * width + side, -1)
    return i * width + j, numpy.stack([up, across], axis=1), across


def _sigmoid(x):
    return numpy.float32(1) / (numpy.float32(1) + numpy.exp(-x))


def _rows(x, index):
    """``x[:, index]`` of a ``(batch, pixels, n)`` array, zeros where index is -1."""
    padded = numpy.concatenate([x, numpy.zeros_like(x[:, :1])], axis=1)
    return padded[:, numpy.where(index >= 0, index, x.shape[1])]


def forward_numpy(mode, gates, weights):
    """NumPy version of the op (its ``perform``): (h, c, acts), shapes as the op's outputs."""
    batch, height, width, four_h = gates.shape
    hd = four_h // GATES
    g = gates.reshape((batch, height * width, four_h))
    h = numpy.zeros((batch, height * width, hd), numpy.float32)
    c = numpy.zeros_like(h)
    acts = numpy.zeros_like(g)
    for t in range(num_steps(mode, height, width)):
        pos, nbr, pred = geometry(mode, height, width, t)
        patch = numpy.concatenate([_rows(h, nbr[:, k]) for k in range(nbr.shape[1])], axis=2)
        z = (g[:, pos] + patch @ weights).reshape((batch, len(pos), hd, GATES))
        a = numpy.concatenate([_sigmoid(z[..., :3]), numpy.tanh(z[..., 3:])], axis=3)
        c[:, pos] = a[..., 1] * _rows(c, pred) + a[..., 0] * a[..., 3]
        h[:, pos] = a[..., 2] * numpy.tanh(c[:, pos])
        acts[:, pos] = a.reshape((batch, len(pos), four_h))
    shape = (batch, height, width)
    return (h.reshape(shape + (hd,)), c.reshape(shape + (hd,)),
            acts.reshape(shape + (four_h,)))


def backward_numpy(mode, weights, h, c, acts, dh):
    """NumPy version of the gradient op: (dgates, dweights)."""
    batch, height, width, hd = h.shape
    flat = lambda x: x.reshape((batch, height * width, x.shape[3]))  # noqa: E731
    h, c, acts, d_h = flat(h), flat(c), flat(acts), flat(dh).copy()
    d_c = numpy.zeros_like(c)
    d_gates = numpy.zeros_like(acts)
    d_weights = numpy.zeros_like(weights)
    for t in reversed(range(num_steps(mode, height, width))):
        pos, nbr, pred = geometry(mode, height, width, t)
        a = acts[:, pos].reshape((batch, len(pos), hd, GATES))
        i, f, o, g = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
        tc = numpy.tanh(c[:, pos])
        dc = d_c[:, pos] + d_h[:, pos] * o * (1 - tc * tc)
        dz = numpy.stack([dc * g * i * (1 - i), dc * _rows(c, pred) * f * (1 - f),
                          d_h[:, pos] * tc * o * (1 - o), dc * i * (1 - g * g)], axis=3)
        dz = dz.reshape((batch, len(pos), GATES * hd))
        d_gates[:, pos] = dz
        inside = pred >= 0
        d_c[:, pred[inside]] += (dc * f)[:, inside]
        patch = numpy.concatenate([_rows(h, nbr[:, k]) for k in range(nbr.shape[1])], axis=2)
        d_weights += numpy.einsum("blk,blg->kg", patch, dz)
        d_patch = dz @ weights.T                         # (batch, L, taps * h)
        for k in range(nbr.shape[1]):
            inside = nbr[:, k] >= 0
            numpy.add.at(d_h, (slice(None), nbr[inside, k]),
                         d_patch[:, inside, k * hd:(k + 1) * hd])
    return d_gates.reshape((batch, height, width, GATES * hd)), d_weights


# C: the step geometry (as :func:`geometry`), the neighbour gather, both passes.
_C_SUPPORT = r"""
#define LS_TAPS(mode) ((mode) == 0 ? 3 : 2)
#define LS_STEPS(mode, H, W) ((mode) == 0 ? (H) : (H) + (W) - 1)
#define LS_MAX_L(mode, H, W) ((mode) == 0 ? (W) : ((H) < (W) ? (H) : (W)))

/* The loops index with ints: 1 if maps d = (batch, H, W, .) of hd units fit, that is
   batch * H * W * 4 * hd (the gates; a patch row holds at most 3 * hd) stays below
   2^31; else 0 with a Python exception. */
static int ls_fits_int(const char* op, const npy_intp* d, npy_intp hd) {
    double size = (double)d[0] * (double)d[1] * (double)d[2] * (hd > 0 ? 4.0 * hd : 1.0);
    if (size < 2147483647.0 && d[3] < 2147483647) return 1;
    PyErr_Format(PyExc_ValueError, "%s: a batch of %ld maps of %ld x %ld pixels and %ld units "
                 "is too large for the op's 32-bit indices; split the batch", op, (long)d[0],
                 (long)d[1], (long)d[2], (long)hd);
    return 0;
}

static int ls_geometry(int mode, int H, int W, int t, int* pos, int* nbr, int* pred) {
    int L = 0;
    if (mode == 0) {
        for (int j = 0; j < W; j++, L++) {
            pos[L] = t * W + j;
            for (int k = 0; k < 3; k++) {
                int x = j + k - 1;
                nbr[3 * L + k] = (t > 0 && x >= 0 && x < W) ? (t - 1) * W + x : -1;
            }
            pred[L] = t > 0 ? (t - 1) * W + j : -1;
        }
        return L;
    }
    int lo = t - W + 1 > 0 ? t - W + 1 : 0, hi = t < H - 1 ? t : H - 1;
    for (int i = lo; i <= hi; i++, L++) {
        int j = mode == 1 ? t - i : W - 1 - (t - i);
        int side = mode == 1 ? j - 1 : j + 1;
        pos[L] = i * W + j;
        nbr[2 * L] = i > 0 ? (i - 1) * W + j : -1;
        nbr[2 * L + 1] = (side >= 0 && side < W) ? i * W + side : -1;
        pred[L] = nbr[2 * L + 1];
    }
    return L;
}

/* Row q = b * L + l of the patch matrix: the states of pixel l's neighbours in image b,
   written to row q of out, or to the pixel's own row b * HW + pos[l] when pos is given. */
static void ls_gather(int n, int L, int K, int hd, int HW, const int* pos, const int* nbr,
                      const float* h, float* out) {
    #pragma omp parallel for schedule(static) if (n * K * hd > 16384)
    for (int q = 0; q < n; q++) {
        npy_intp base = (npy_intp)(q / L) * HW;
        const int* nq = nbr + (q % L) * K;
        float* row = out + (pos ? base + pos[q % L] : q) * (npy_intp)(K * hd);
        for (int k = 0; k < K; k++) {
            if (nq[k] >= 0) memcpy(row + k * hd, h + (base + nq[k]) * hd, hd * sizeof(float));
            else memset(row + k * hd, 0, hd * sizeof(float));
        }
    }
}

static void ls_forward(int mode, int B, int H, int W, int hd, const float* gates,
                       const float* wt, float* h, float* c, float* acts, float* P, float* Z,
                       int* geo) {
    int K = LS_TAPS(mode), G = 4 * hd, KH = K * hd, HW = H * W, maxL = LS_MAX_L(mode, H, W);
    int *pos = geo, *pred = geo + maxL, *nbr = geo + 2 * maxL;
    const float one = 1.0f;
    for (int t = 0; t < LS_STEPS(mode, H, W); t++) {
        int L = ls_geometry(mode, H, W, t, pos, nbr, pred), n = B * L;
        ls_gather(n, L, K, hd, HW, NULL, nbr, h, P);
        #pragma omp parallel for schedule(static) if (n * G > 16384)
        for (int q = 0; q < n; q++)
            memcpy(Z + (npy_intp)q * G, gates + ((npy_intp)(q / L) * HW + pos[q % L]) * G,
                   G * sizeof(float));
        if (t > 0)  /* Z (n, G) += P (n, KH) @ wt (KH, G), in BLAS's column-major terms */
            sgemm_((char*)"N", (char*)"N", &G, &n, &KH, &one, wt, &G, P, &KH, &one, Z, &G);
        #pragma omp parallel for schedule(static) if (n * G > 16384)
        for (int q = 0; q < n; q++) {
            npy_intp base = (npy_intp)(q / L) * HW, p = base + pos[q % L];
            int pr = pred[q % L];
            const float* z = Z + (npy_intp)q * G;
            const float* cprev = pr >= 0 ? c + (base + pr) * hd : NULL;
            float* a = acts + p * G;
            for (int u = 0; u < hd; u++) {
                float ig = gate_sigmoid(z[4 * u]), fg = gate_sigmoid(z[4 * u + 1]);
                float og = gate_sigmoid(z[4 * u + 2]), gg = gate_tanh(z[4 * u + 3]);
                float cc = ig * gg + (cprev ? fg * cprev[u] : 0.0f);
                a[4 * u] = ig; a[4 * u + 1] = fg; a[4 * u + 2] = og; a[4 * u + 3] = gg;
                c[p * hd + u] = cc;
                h[p * hd + u] = og * gate_tanh(cc);
            }
        }
    }
}

/* dH enters holding the gradient of the hidden states and leaves spent; dC is scratch. */
static void ls_backward(int mode, int B, int H, int W, int hd, const float* wt,
                        const float* h, const float* c, const float* acts, float* dgates,
                        float* dw, float* dH, float* dC, float* dZ, float* dP, float* Pall,
                        int* geo) {
    int K = LS_TAPS(mode), G = 4 * hd, KH = K * hd, HW = H * W, N = B * H * W;
    int maxL = LS_MAX_L(mode, H, W);
    int *pos = geo, *pred = geo + maxL, *nbr = geo + 2 * maxL;
    const float one = 1.0f, zero = 0.0f;
    memset(dC, 0, (size_t)N * hd * sizeof(float));
    for (int t = LS_STEPS(mode, H, W) - 1; t >= 0; t--) {
        int L = ls_geometry(mode, H, W, t, pos, nbr, pred), n = B * L;
        #pragma omp parallel for schedule(static) if (n * G > 16384)
        for (int q = 0; q < n; q++) {
            npy_intp base = (npy_intp)(q / L) * HW, p = base + pos[q % L];
            int pr = pred[q % L];
            const float* a = acts + p * G;
            const float* cprev = pr >= 0 ? c + (base + pr) * hd : NULL;
            float* dcprev = pr >= 0 ? dC + (base + pr) * hd : NULL;
            float* dz = dZ + (npy_intp)q * G;
            for (int u = 0; u < hd; u++) {
                float ig = a[4 * u], fg = a[4 * u + 1], og = a[4 * u + 2], gg = a[4 * u + 3];
                float tc = gate_tanh(c[p * hd + u]), dh = dH[p * hd + u];
                float dc = dC[p * hd + u] + dh * og * (1.0f - tc * tc);
                float cp = cprev ? cprev[u] : 0.0f;
                dz[4 * u] = dc * gg * ig * (1.0f - ig);
                dz[4 * u + 1] = dc * cp * fg * (1.0f - fg);
                dz[4 * u + 2] = dh * tc * og * (1.0f - og);
                dz[4 * u + 3] = dc * ig * (1.0f - gg * gg);
                if (dcprev) dcprev[u] += dc * fg;  /* each predecessor has one successor */
            }
            memcpy(dgates + p * G, dz, G * sizeof(float));
        }
        ls_gather(n, L, K, hd, HW, pos, nbr, h, Pall);
        if (t == 0) continue;  /* the first step has no neighbours */
        /* dP (n, KH) = dZ (n, G) @ wt^T */
        sgemm_((char*)"T", (char*)"N", &KH, &n, &G, &one, wt, &G, dZ, &G, &zero, dP, &KH);
        #pragma omp parallel for schedule(static) if (n * KH > 16384)
        for (int b = 0; b < B; b++) {  /* neighbours are shared within an image only */
            for (int l = 0; l < L; l++) {
                const float* src = dP + ((npy_intp)b * L + l) * KH;
                for (int k = 0; k < K; k++) {
                    int nb = nbr[l * K + k];
                    if (nb < 0) continue;
                    float* dst = dH + ((npy_intp)b * HW + nb) * hd;
                    for (int u = 0; u < hd; u++) dst[u] += src[k * hd + u];
                }
            }
        }
    }
    /* dw (KH, G) = Pall^T (KH, N) @ dgates (N, G) */
    sgemm_((char*)"N", (char*)"T", &G, &KH, &N, &one, dgates, &G, Pall, &KH, &zero, dw, &G);
}
"""

_C_FORWARD = r"""
{
    int mode = %(mode)d;
    int ok = kc_float32(%(gates)s, 4, "lstm_scan", "gates")
             && kc_float32(%(weights)s, 2, "lstm_scan", "weights")
             && ls_fits_int("lstm_scan", PyArray_DIMS(%(gates)s), PyArray_DIMS(%(gates)s)[3] / 4);
    PyArrayObject* g_arr = ok ? PyArray_GETCONTIGUOUS(%(gates)s) : NULL;
    PyArrayObject* w_arr = ok ? PyArray_GETCONTIGUOUS(%(weights)s) : NULL;
    ok = ok && g_arr && w_arr;  /* a failed copy has set its MemoryError */
    npy_intp zeros[4] = {0, 0, 0, 0};
    npy_intp* d = ok ? PyArray_DIMS(g_arr) : zeros;
    int B = d[0], H = d[1], W = d[2], G = d[3], hd = G / 4, K = LS_TAPS(mode);
    if (ok && (G %% 4 || PyArray_DIMS(w_arr)[0] != K * hd || PyArray_DIMS(w_arr)[1] != G)) {
        PyErr_Format(PyExc_ValueError, "lstm_scan: gates (..., %%d) and weights (%%d, %%d) "
                     "do not fit %%d taps of 4h gates", G, (int)PyArray_DIMS(w_arr)[0],
                     (int)PyArray_DIMS(w_arr)[1], K);
        ok = 0;
    }
    npy_intp hdims[4] = {B, H, W, hd};
    PyArrayObject** outs[3] = {&%(h)s, &%(c)s, &%(acts)s};
    for (int o = 0; ok && o < 3; o++) {
        npy_intp* want = o == 2 ? d : hdims;
        if (!*outs[o] || !PyArray_IS_C_CONTIGUOUS(*outs[o])
            || memcmp(PyArray_DIMS(*outs[o]), want, 4 * sizeof(npy_intp))) {
            Py_XDECREF(*outs[o]);
            *outs[o] = (PyArrayObject*)PyArray_EMPTY(4, want, NPY_FLOAT32, 0);
            if (!*outs[o]) ok = 0;
        }
    }
    if (ok && (npy_intp)B * H * W * hd > 0) {
        int maxn = B * LS_MAX_L(mode, H, W);
        float* P = (float*)malloc(sizeof(float) * ((size_t)maxn * K * hd + (size_t)maxn * G));
        int* geo = (int*)malloc(sizeof(int) * (size_t)LS_MAX_L(mode, H, W) * (K + 2));
        if (!P || !geo) {
            PyErr_NoMemory();
            ok = 0;
        } else {
            ls_forward(mode, B, H, W, hd, (const float*)PyArray_DATA(g_arr),
                       (const float*)PyArray_DATA(w_arr), (float*)PyArray_DATA(%(h)s),
                       (float*)PyArray_DATA(%(c)s), (float*)PyArray_DATA(%(acts)s),
                       P, P + (size_t)maxn * K * hd, geo);
        }
        free(P);
        free(geo);
    }
    Py_XDECREF(g_arr);
    Py_XDECREF(w_arr);
    if (!ok) %(fail)s
}
"""

_C_BACKWARD = r"""
{
    int mode = %(mode)d;
    int ok = kc_float32(%(weights)s, 2, "lstm_scan_grad", "weights")
             && kc_float32(%(h)s, 4, "lstm_scan_grad", "h")
             && kc_float32(%(c)s, 4, "lstm_scan_grad", "c")
             && kc_float32(%(acts)s, 4, "lstm_scan_grad", "acts")
             && kc_float32(%(dh)s, 4, "lstm_scan_grad", "dh")
             && ls_fits_int("lstm_scan_grad", PyArray_DIMS(%(h)s), PyArray_DIMS(%(h)s)[3]);
    PyArrayObject* w_arr = ok ? PyArray_GETCONTIGUOUS(%(weights)s) : NULL;
    PyArrayObject* h_arr = ok ? PyArray_GETCONTIGUOUS(%(h)s) : NULL;
    PyArrayObject* c_arr = ok ? PyArray_GETCONTIGUOUS(%(c)s) : NULL;
    PyArrayObject* a_arr = ok ? PyArray_GETCONTIGUOUS(%(acts)s) : NULL;
    PyArrayObject* dh_arr = ok ? PyArray_GETCONTIGUOUS(%(dh)s) : NULL;
    ok = ok && w_arr && h_arr && c_arr && a_arr && dh_arr;  /* a failed copy set MemoryError */
    npy_intp zeros[4] = {0, 0, 0, 0};
    npy_intp* d = ok ? PyArray_DIMS(h_arr) : zeros;
    int B = d[0], H = d[1], W = d[2], hd = d[3], G = 4 * hd, K = LS_TAPS(mode);
    npy_intp gdims[4] = {B, H, W, G}, wdims[2] = {K * hd, G};
    if (ok && (memcmp(PyArray_DIMS(dh_arr), d, 4 * sizeof(npy_intp))
               || memcmp(PyArray_DIMS(c_arr), d, 4 * sizeof(npy_intp))
               || memcmp(PyArray_DIMS(a_arr), gdims, 4 * sizeof(npy_intp))
               || memcmp(PyArray_DIMS(w_arr), wdims, 2 * sizeof(npy_intp)))) {
        char s[5][256];
        PyErr_Format(PyExc_ValueError, "lstm_scan_grad: inputs of mismatched shapes: weights "
                     "%%s, h %%s, c %%s, acts %%s, dh %%s; c and dh must have h's shape "
                     "(batch, H, W, h), acts (batch, H, W, 4h), weights (%%d * h, 4h)",
                     kc_shape(w_arr, s[0], 256), kc_shape(h_arr, s[1], 256),
                     kc_shape(c_arr, s[2], 256), kc_shape(a_arr, s[3], 256),
                     kc_shape(dh_arr, s[4], 256), K);
        ok = 0;
    }
    if (ok && (!%(dgates)s || !PyArray_IS_C_CONTIGUOUS(%(dgates)s)
               || memcmp(PyArray_DIMS(%(dgates)s), gdims, 4 * sizeof(npy_intp)))) {
        Py_XDECREF(%(dgates)s);
        %(dgates)s = (PyArrayObject*)PyArray_EMPTY(4, gdims, NPY_FLOAT32, 0);
        if (!%(dgates)s) ok = 0;
    }
    if (ok && (!%(dw)s || !PyArray_IS_C_CONTIGUOUS(%(dw)s)
               || memcmp(PyArray_DIMS(%(dw)s), wdims, 2 * sizeof(npy_intp)))) {
        Py_XDECREF(%(dw)s);
        %(dw)s = (PyArrayObject*)PyArray_EMPTY(2, wdims, NPY_FLOAT32, 0);
        if (!%(dw)s) ok = 0;
    }
    if (ok && (npy_intp)B * H * W * hd == 0) {
        memset(PyArray_DATA(%(dw)s), 0, sizeof(float) * wdims[0] * wdims[1]);
    } else if (ok) {
        size_t N = (size_t)B * H * W, maxn = (size_t)B * LS_MAX_L(mode, H, W);
        float* buf = (float*)malloc(sizeof(float) * (2 * N * hd + maxn * G + maxn * K * hd
                                                     + N * K * hd));
        int* geo = (int*)malloc(sizeof(int) * (size_t)LS_MAX_L(mode, H, W) * (K + 2));
        if (!buf || !geo) {
            PyErr_NoMemory();
            ok = 0;
        } else {
            float *dH = buf, *dC = dH + N * hd, *dZ = dC + N * hd, *dP = dZ + maxn * G;
            float* Pall = dP + maxn * K * hd;
            memcpy(dH, PyArray_DATA(dh_arr), sizeof(float) * N * hd);
            ls_backward(mode, B, H, W, hd, (const float*)PyArray_DATA(w_arr),
                        (const float*)PyArray_DATA(h_arr), (const float*)PyArray_DATA(c_arr),
                        (const float*)PyArray_DATA(a_arr), (float*)PyArray_DATA(%(dgates)s),
                        (float*)PyArray_DATA(%(dw)s), dH, dC, dZ, dP, Pall, geo);
        }
        free(buf);
        free(geo);
    }
    Py_XDECREF(w_arr); Py_XDECREF(h_arr); Py_XDECREF(c_arr);
    Py_XDECREF(a_arr); Py_XDECREF(dh_arr);
    if (!ok) %(fail)s
}
"""


def _free(x):
    """A new variable of x's type with no broadcastable axis (the outputs' sizes vary)."""
    return T.TensorType(x.dtype, (False,) * x.ndim)()


def _check_forward(mode, gates, weights):
    """Refuses (ValueError) gates and weights of shapes ``gates`` and ``weights``
    (None for a length not known) that do not fit ``mode``'s taps."""
    four_h = gates[3]
    want = (None if four_h is None else TAPS[mode] * (four_h // GATES), four_h)
    if (four_h is not None and four_h % GATES) or any(map(differ, weights, want)):
        raise ValueError("lstm_scan: gates {} and weights {} do not fit {} taps of 4h gates "
                         "(gates (batch, H, W, 4h), weights ({} * h, 4h))".format(
                             gates, weights, TAPS[mode], TAPS[mode]))


def _check_backward(mode, weights, h, c, acts, dh):
    """Refuses (ValueError) the gradient op's inputs of these shapes (None for a
    length not known) unless they are those of one forward op's."""
    hd = h[3]
    four_h = None if hd is None else GATES * hd
    wants = [(c, h), (dh, h), (acts, h[:3] + (four_h,)),
             (weights, (None if hd is None else TAPS[mode] * hd, four_h))]
    if any(differ(a, b) for shape, want in wants for a, b in zip(shape, want)) or any(
            differ(a, b) for a, b in zip(c, dh)):
        raise ValueError("lstm_scan_grad: inputs of mismatched shapes: weights {}, h {}, c {}, "
                         "acts {}, dh {}; c and dh must have h's shape (batch, H, W, h), acts "
                         "(batch, H, W, 4h), weights ({} * h, 4h)".format(
                             weights, h, c, acts, dh, TAPS[mode]))


class _LSTMBase(CompiledOp):
    """C plumbing shared by the forward and gradient ops: BLAS, OpenMP, the code version."""

    __props__ = ("mode",)

    def __init__(self, mode):
        if mode not in MODES:
            raise ValueError("lstm_scan mode must be one of {}, got {!r}".format(MODES, mode))
        self.mode = mode

    def _c_mode(self):
        return MODES.index(self.mode)

    def c_code(self, node, name, inputs, outputs, sub):
        if not ldflags():  # no BLAS to link: Theano then runs perform()
            raise theano.gof.utils.MethodNotDefined("lstm_scan needs a BLAS library")
        return self._c_body(inputs, outputs, sub)

    def c_support_code(self):
        return [blas_headers.blas_header_text(), C_CHECKS, GATE_MATH, _C_SUPPORT]

    def c_headers(self):
        return ["<math.h>", "<string.h>", "<stdlib.h>", "<omp.h>"]

    def c_libraries(self):
        return ldflags()

    def c_lib_dirs(self):
        return ldflags(libs=False, libs_dir=True)

    def c_header_dirs(self):
        return ldflags(libs=False, include_dir=True)

    def c_compile_args(self):
        return ["-fopenmp", "-O3", "-fno-trapping-math"] + ldflags(libs=False, flags=True)


class LSTMScan(_LSTMBase):
    """(gates ``(batch, H, W, 4h)``, weights ``(taps * h, 4h)``) -> (h ``(batch, H, W,
    h)``, cell states c, the gates' activations ``(batch, H, W, 4h)``); only h may be
    used by a cost (c and the activations are kept for the gradient)."""

    def make_node(self, gates, weights):
        gates = float32_variable(gates, 4, "lstm_scan", "gates")
        weights = float32_variable(weights, 2, "lstm_scan", "weights")
        _check_forward(self.mode, known_shape(gates), known_shape(weights))
        return theano.Apply(self, [gates, weights], [_free(gates), _free(gates), _free(gates)])

    def infer_shape(self, node, shapes):
        batch, height, width, four_h = shapes[0]
        state = (batch, height, width, four_h // GATES)
        return [state, state, shapes[0]]

    def perform(self, node, inputs, outputs):
        gates = check_float32(inputs[0], 4, "lstm_scan", "gates")
        weights = check_float32(inputs[1], 2, "lstm_scan", "weights")
        _check_forward(self.mode, gates.shape, weights.shape)
        for storage, value in zip(outputs, forward_numpy(self.mode, gates, weights)):
            storage[0] = value

    def L_op(self, inputs, outputs, output_grads):
        if not all(isinstance(g.type, DisconnectedType) for g in output_grads[1:]):
            raise NotImplementedError(
                "lstm_scan: a cost reaches the op's cell states or gate activations (outputs "
                "1 and 2), which have no gradient here; build the cost from the hidden "
                "states, the op's output 0 (what lstm_scan() returns)")
        h, c, acts = outputs
        dh = output_grads[0]
        if isinstance(dh.type, DisconnectedType):
            return [T.zeros_like(inputs[0]), T.zeros_like(inputs[1])]
        return LSTMScanGrad(self.mode)(inputs[1], h, c, acts, dh, return_list=True)

    def connection_pattern(self, node):
        # Every output depends on both inputs. (Declaring c and the activations
        # unconnected made Theano answer a cost on them with its disconnected-input
        # error before L_op could say what is wrong.)
        return [[True, True, True], [True, True, True]]

    def _c_body(self, inputs, outputs, sub):
        (gates, weights), (h, c, acts) = inputs, outputs
        return _C_FORWARD % dict(gates=gates, weights=weights, h=h, c=c, acts=acts,
                                 mode=self._c_mode(), fail=sub["fail"])


class LSTMScanGrad(_LSTMBase):
    """(weights, h, c, acts, dh) -> (d gates ``(batch, H, W, 4h)``, d weights
    ``(taps * h, 4h)``): the gradient of :class:`LSTMScan`."""

    def make_node(self, weights, h, c, acts, dh):
        ins = [float32_variable(weights, 2, "lstm_scan_grad", "weights")] + [
            float32_variable(x, 4, "lstm_scan_grad", what) for x, what in
            ((h, "h"), (c, "c"), (acts, "acts"), (dh, "dh"))]
        _check_backward(self.mode, *[known_shape(x) for x in ins])
        return theano.Apply(self, ins, [_free(ins[3]), _free(ins[0])])

    def infer_shape(self, node, shapes):
        return [shapes[3], shapes[0]]

    def perform(self, node, inputs, outputs):
        for value, what in zip(inputs, ("weights", "h", "c", "acts", "dh")):
            check_float32(value, 2 if what == "weights" else 4, "lstm_scan_grad", what)
        _check_backward(self.mode, *[x.shape for x in inputs])
        d_gates, d_weights = backward_numpy(self.mode, *inputs)
        outputs[0][0], outputs[1][0] = d_gates, d_weights

    def grad(self, inputs, output_grads):
        raise NotImplementedError("lstm_scan has no second derivative")

    def _c_body(self, inputs, outputs, sub):
        (weights, h, c, acts, dh), (dgates, dw) = inputs, outputs
        return _C_BACKWARD % dict(weights=weights, h=h, c=c, acts=acts, dh=dh, dgates=dgates,
                                  dw=dw, mode=self._c_mode(), fail=sub["fail"])


def lstm_scan(mode, gates, weights):
    """Hidden states ``(batch, H, W, h)`` of one LSTM layer (module docstring)."""
    return LSTMScan(mode)(gates, weights)[0]
