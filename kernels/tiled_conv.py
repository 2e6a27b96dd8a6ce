"""A causal convolution as matrix products over cache-sized tiles of its patch matrix.

``patches(maps) @ weights.T`` (``kernels.patches``) written out is a patch
matrix of ``taps x channels`` columns for every output position: for a 2x3
layer of 32 maps, batch 100, a 62 MB matrix that is written once and read
back by the product (and the same again for its gradient). ``TiledConv``
computes the same product without ever holding that matrix: each thread
builds the patch rows of one tile of output positions (a few image rows,
a few hundred kilobytes, so it stays in the core's cache) and multiplies
them at once. The tiles are independent, so the threads share them out.

The products are this module's own register-blocked kernel (``tc_gemm``),
not BLAS calls: BLAS libraries called from inside OpenMP threads either
start threads of their own or wait on each other, and which does which
changes from library to library and machine to machine. The kernel is
compiled for the CPU at hand (Theano passes the ``-march`` flags of the
machine): on AVX-512 a block of 12 rows x 32 columns sums in 24 registers,
at 170-200 GFLOP/s a core on an Intel Xeon, about a BLAS's own rate.

Its gradient ``TiledConvGrad`` does the same twice:

* weights: each thread rebuilds the patch rows of its tiles and adds
  ``grad_tile.T @ patch_tile`` into a private ``(out, columns)`` sum; the
  sums are added at the end;
* maps: the gradient of a map position collects, over the taps that read
  it, ``grad[output position] @ weights[:, tap columns]``. So it is itself a
  convolution of the output gradient, with the taps mirrored: per tile of
  map rows, one product of the gradient's patch rows ``(positions, taps x
  out)`` with the tap blocks of the weights stacked ``(taps x out,
  channels)``. Each map position is written by exactly one tile, so no two
  threads add into the same memory (no col2im, no atomics).

Layouts are those of ``kernels.patches``: maps ``(batch, rows_i, width,
channels_i)`` float32 whose image rows start at ``origin_i`` and end
``trailing_i`` rows before the last; taps ``(map, dr, dc)``; output
``(batch * (height + extra_rows) * width, out)`` with rows in ``(batch, row,
column)`` order. ``weights`` is ``(out, columns)``: one block of columns per
tap (that map's channels), then one bias column (the patch matrix's column
of ones).
"""
import numpy
import theano
import theano.tensor as T
from theano.tensor.opt import register_specialize

from kernels import CompiledOp, float32_variable
from kernels.patches import Patches, PatchesGrad

# Output positions per tile (rounded down to whole image rows, at least one):
# 512 positions x 193 columns of float32 is ~400 KB, inside a core's L2 cache.
TILE_POSITIONS = 512

# The C shared by both ops: filling patch rows of a tile, and multiplying them.
_TILE_SUPPORT = r"""
/* The vector registers the compiler targets (Theano compiles for this CPU) and
   how many rows of C a kernel block sums in them: with 32 columns, 12 rows are
   24 of the 32 AVX-512 registers, 3 rows 12 of the 16 AVX2 ones; the rest hold
   a row of B. */
#if defined(__AVX512F__)
#define TC_LANES 16
#define TC_ROWS 12
#elif defined(__AVX__)
#define TC_LANES 8
#define TC_ROWS 3
#else
#define TC_LANES 4
#define TC_ROWS 2
#endif
#define TC_MAXV (32 / TC_LANES)

/* TC_LANES floats, loaded and stored unaligned (GCC's vector extension). */
typedef float tc_vec __attribute__((vector_size(TC_LANES * sizeof(float)), aligned(4)));

/* C[i][0:W] (+)= sum over d < depth of A[i][d] * B[d][0:W], for i < rows, where
   A[i][d] = a[i * ars + d * ads], B[d][o] = b[d * ldb + o] and W = NV * TC_LANES
   (32 or 16 columns; NV a constant once inlined). The usual register-blocked
   kernel of a matrix product: TC_ROWS rows of C summed in registers, each A
   value broadcast against a row of B. */
static inline __attribute__((always_inline)) void
tc_panel(const int NV, npy_intp rows, npy_intp depth, const float* __restrict__ a, npy_intp ars,
         npy_intp ads, const float* __restrict__ b, npy_intp ldb, float* __restrict__ c,
         npy_intp ldc, int add)
{
    const tc_vec zero = {0};
    for (npy_intp i0 = 0; i0 < rows; i0 += TC_ROWS) {
        tc_vec acc[TC_ROWS][TC_MAXV], bv[TC_MAXV];
        const int n_rows = rows - i0 < TC_ROWS ? (int)(rows - i0) : TC_ROWS;
        for (int i = 0; i < TC_ROWS; i++)
            for (int v = 0; v < NV; v++) acc[i][v] = zero;
        const float* ai = a + i0 * ars;
        if (n_rows == TC_ROWS) {
            for (npy_intp d = 0; d < depth; d++) {
                for (int v = 0; v < NV; v++) bv[v] = *(const tc_vec*)(b + d * ldb + v * TC_LANES);
                for (int i = 0; i < TC_ROWS; i++) {
                    float x = ai[i * ars + d * ads];
                    for (int v = 0; v < NV; v++) acc[i][v] += x * bv[v];
                }
            }
        } else {  /* the rows left over */
            for (npy_intp d = 0; d < depth; d++) {
                for (int v = 0; v < NV; v++) bv[v] = *(const tc_vec*)(b + d * ldb + v * TC_LANES);
                for (int i = 0; i < n_rows; i++) {
                    float x = ai[i * ars + d * ads];
                    for (int v = 0; v < NV; v++) acc[i][v] += x * bv[v];
                }
            }
        }
        for (int i = 0; i < n_rows; i++) {
            tc_vec* ci = (tc_vec*)(c + (i0 + i) * ldc);
            for (int v = 0; v < NV; v++) ci[v] = add ? ci[v] + acc[i][v] : acc[i][v];
        }
    }
}

/* The last n < 16 columns, one row of C at a time (a last layer's few outputs). */
static void tc_tail(npy_intp rows, npy_intp n, npy_intp depth, const float* a, npy_intp ars,
                    npy_intp ads, const float* b, npy_intp ldb, float* c, npy_intp ldc, int add)
{
    for (npy_intp i = 0; i < rows; i++) {
        float acc[16] = {0};
        for (npy_intp d = 0; d < depth; d++) {
            float x = a[i * ars + d * ads];
            for (npy_intp o = 0; o < n; o++) acc[o] += x * b[d * ldb + o];
        }
        for (npy_intp o = 0; o < n; o++) c[i * ldc + o] = add ? c[i * ldc + o] + acc[o] : acc[o];
    }
}

/* C (rows x n, row stride ldc) (+)= A B as in tc_panel: panels of 32 columns,
   then one of 16, then the rest. Single-threaded: each OpenMP thread runs it
   on its own tile. */
static void tc_gemm(npy_intp rows, npy_intp n, npy_intp depth, const float* a, npy_intp ars,
                    npy_intp ads, const float* b, npy_intp ldb, float* c, npy_intp ldc, int add)
{
    npy_intp o0 = 0;
    for (; o0 + 32 <= n; o0 += 32)
        tc_panel(32 / TC_LANES, rows, depth, a, ars, ads, b + o0, ldb, c + o0, ldc, add);
    if (o0 + 16 <= n) {
        tc_panel(16 / TC_LANES, rows, depth, a, ars, ads, b + o0, ldb, c + o0, ldc, add);
        o0 += 16;
    }
    if (o0 < n)
        tc_tail(rows, n - o0, depth, a, ars, ads, b + o0, ldb, c + o0, ldc, add);
}

/* Patch rows of output rows [br0, br1) (each ``width`` positions) into ``dst``
   (row-major, ``columns`` floats a row, the last one the bias column of ones). */
static void tc_fill(float* dst, npy_intp br0, npy_intp br1, npy_intp out_rows,
                    npy_intp height, npy_intp width, npy_intp columns,
                    int n_taps, const int* src, const int* dr, const int* dc,
                    const npy_intp* offset, float* const* data, const npy_intp* rows,
                    const npy_intp* chans, const int* origin)
{
    for (npy_intp br = br0; br < br1; br++) {
        npy_intp b = br / out_rows, r = br % out_rows;
        for (npy_intp c = 0; c < width; c++) {
            float* d = dst + ((br - br0) * width + c) * columns;
            for (int t = 0; t < n_taps; t++) {
                int m = src[t];
                npy_intp q = r + dr[t], x = c + dc[t], ch = chans[m];
                if (q >= 0 && q < height && x >= 0 && x < width)
                    memcpy(d + offset[t], data[m] + ((b * rows[m] + q + origin[m]) * width + x) * ch,
                           ch * sizeof(float));
                else
                    memset(d + offset[t], 0, ch * sizeof(float));
            }
            d[columns - 1] = 1.0f;
        }
    }
}
"""

# The C shared by both ops: read the maps' shapes, check they agree, and the
# column offset of each tap. Expects ``maps``, ``origin``, ``trailing`` and the
# tap tables; defines ``ok`` and the sizes.
_READ_MAPS = r"""
        int ok = 1, n_taps = %(n_taps)d, n_maps = %(n_maps)d;
        npy_intp batch = PyArray_DIMS(maps[0])[0], width = PyArray_DIMS(maps[0])[2];
        npy_intp height = PyArray_DIMS(maps[0])[1] - origin[0] - trailing[0];
        npy_intp rows[%(n_maps)d], chans[%(n_maps)d];
        float* data[%(n_maps)d];
        for (int m = 0; m < n_maps; m++) {
            npy_intp* d = PyArray_DIMS(maps[m]);
            rows[m] = d[1]; chans[m] = d[3];
            data[m] = (float*)PyArray_DATA(maps[m]);
            if (d[0] != batch || d[2] != width || d[1] - origin[m] - trailing[m] != height)
                ok = 0;
        }
        if (!ok)
            PyErr_SetString(PyExc_ValueError,
                            "TiledConv: maps disagree on batch, image height or width");
        npy_intp offset[%(n_taps)d], columns = 0;
        for (int t = 0; t < n_taps; t++) {
            offset[t] = columns;
            columns += chans[tap_src_%(name)s[t]];
        }
        columns += 1;  /* the bias column */
        npy_intp out_rows = height + %(extra)d;
        npy_intp n_out = PyArray_DIMS(w_arr)[0];
        if (ok && height < 0) {
            PyErr_SetString(PyExc_ValueError,
                            "TiledConv: a map has fewer rows than its origin and trailing rows");
            ok = 0;
        }
        if (ok && PyArray_DIMS(w_arr)[1] != columns) {
            PyErr_Format(PyExc_ValueError, "TiledConv: the weights' column count is not the "
                         "patch width: %%ld columns for %%ld (the taps' channels and a bias)",
                         (long)PyArray_DIMS(w_arr)[1], (long)columns);
            ok = 0;
        }
        /* A 1x1 convolution of one map with nothing around its image reads the
           map's rows as they are: no patch rows are built (see direct()). */
        const int direct = %(direct)d;
        /* Whole output rows per tile, at least one. */
        npy_intp tile_rows = width > 0 ? %(tile)d / width : 1;
        if (tile_rows < 1) tile_rows = 1;
"""


def _tile_props(op):
    return dict(n_taps=len(op.taps), n_maps=len(op.origins), extra=op.extra_rows,
                tile=op.tile_positions, direct=int(op.direct()))


class _TiledBase(CompiledOp):
    """Props and OpenMP plumbing shared by ``TiledConv`` and ``TiledConvGrad``."""

    __props__ = ("taps", "origins", "trailing", "extra_rows", "tile_positions")

    def __init__(self, taps, origins, trailing, extra_rows=0, tile_positions=TILE_POSITIONS):
        # the layout is a patch matrix's: Patches normalises and checks it
        layout = Patches(taps, origins, trailing, extra_rows, bias_column=True)
        self.taps, self.origins = layout.taps, layout.origins
        self.trailing, self.extra_rows = layout.trailing, layout.extra_rows
        self.tile_positions = int(tile_positions)
        if self.tile_positions < 1:
            raise ValueError("TiledConv: tile_positions must be at least 1, got {}".format(
                self.tile_positions))

    def direct(self):
        """Whether the patch rows are the map's own rows plus the bias column: one
        map, one tap (0, 0, 0), no rows around the image, no extra output rows
        (a 1x1 convolution). The C code then multiplies the map in place and adds
        the bias on its own, instead of copying every row into a tile first."""
        return (self.taps == ((0, 0, 0),) and self.origins == (0,) and self.trailing == (0,)
                and self.extra_rows == 0)

    def _c_tables(self, name):
        """C arrays of the tap table, named after the node."""
        return ("const int tap_src_{n}[] = {{{s}}}; const int tap_dr_{n}[] = {{{r}}}; "
                "const int tap_dc_{n}[] = {{{c}}};").format(
                    n=name, s=", ".join(str(t[0]) for t in self.taps),
                    r=", ".join(str(t[1]) for t in self.taps),
                    c=", ".join(str(t[2]) for t in self.taps))

    def _patches_op(self):
        return Patches(self.taps, self.origins, self.trailing, self.extra_rows, bias_column=True)

    def c_code(self, node, name, inputs, outputs, sub):
        return self._c_body(node, name, inputs, outputs, sub)

    def c_support_code(self):
        return _TILE_SUPPORT

    def c_headers(self):
        return ["<string.h>", "<stdlib.h>", "<omp.h>"]

    def c_compile_args(self):
        return ["-fopenmp", "-O3"]

    def _c_head(self, name, maps, weights):
        lines = [self._c_tables(name), "{",
                 "PyArrayObject* maps[%d];" % len(maps),
                 "const int origin[] = {%s};" % ", ".join(map(str, self.origins)),
                 "const int trailing[] = {%s};" % ", ".join(map(str, self.trailing)),
                 "PyArrayObject* w_arr = PyArray_GETCONTIGUOUS(%s);" % weights]
        lines += ["maps[%d] = PyArray_GETCONTIGUOUS(%s);" % (i, m) for i, m in enumerate(maps)]
        return lines

    @staticmethod
    def _c_tail(n_maps, fail):
        return r"""
        Py_XDECREF(w_arr);
        for (int m = 0; m < %d; m++) Py_XDECREF(maps[m]);
        if (!ok) %s
        }""" % (n_maps, fail)


def _check_inputs(op, maps, weights):
    """The maps and weights as variables, refused (TypeError) unless one 4-d
    float32 map per origin and 2-d float32 weights."""
    if len(maps) != len(op.origins):
        raise TypeError("TiledConv expects {} maps, got {}".format(len(op.origins), len(maps)))
    maps = [float32_variable(m, 4, "TiledConv", "every map") for m in maps]
    return maps, float32_variable(weights, 2, "TiledConv", "the weights (out, columns)")


class TiledConv(_TiledBase):
    """(maps ..., weights ``(out, columns)``) -> ``patches(maps) @ weights.T``,
    ``(batch * out_rows * width, out)`` (see the module docstring)."""

    def make_node(self, *inputs):
        maps, weights = _check_inputs(self, inputs[:-1], inputs[-1])
        return theano.Apply(self, maps + [weights], [T.matrix(dtype="float32")])

    def infer_shape(self, node, shapes):
        s0 = shapes[0]
        out_rows = s0[1] - self.origins[0] - self.trailing[0] + self.extra_rows
        return [(s0[0] * out_rows * s0[2], shapes[-1][0])]

    def perform(self, node, inputs, output_storage):
        maps, weights = inputs[:-1], inputs[-1]
        cols = _run_perform(self._patches_op(), maps)[0]
        if weights.shape[1] != cols.shape[1]:
            raise ValueError("TiledConv: the weights' column count is not the patch width")
        output_storage[0][0] = numpy.dot(cols, weights.T).astype(numpy.float32)

    def grad(self, inputs, output_grads):
        return list(TiledConvGrad(self.taps, self.origins, self.trailing, self.extra_rows,
                                  self.tile_positions)(
            output_grads[0], *inputs, return_list=True))

    def _c_body(self, node, name, inputs, outputs, sub):
        maps, weights, out = inputs[:-1], inputs[-1], outputs[0]
        lines = self._c_head(name, maps, weights)
        lines.append(_READ_MAPS % dict(_tile_props(self), name=name))
        lines.append(r"""
        npy_intp dims[2] = {batch * out_rows * width, n_out};
        if (ok && (!%(out)s || PyArray_DIMS(%(out)s)[0] != dims[0]
                   || PyArray_DIMS(%(out)s)[1] != dims[1] || !PyArray_IS_C_CONTIGUOUS(%(out)s))) {
            Py_XDECREF(%(out)s);
            %(out)s = (PyArrayObject*)PyArray_EMPTY(2, dims, NPY_FLOAT32, 0);
            if (!%(out)s) ok = 0;
        }
        /* the weights transposed, (columns, out), for the kernel's B */
        float* wk = ok ? (float*)malloc(columns * n_out * sizeof(float) + 1) : NULL;
        if (ok && !wk) {
            PyErr_NoMemory();
            ok = 0;
        }
        if (ok && dims[0] > 0 && n_out > 0) {
            const float* w = (const float*)PyArray_DATA(w_arr);
            float* y = (float*)PyArray_DATA(%(out)s);
            for (npy_intp o = 0; o < n_out; o++)
                for (npy_intp k = 0; k < columns; k++) wk[k * n_out + o] = w[o * columns + k];
            npy_intp all_rows = batch * out_rows;
            npy_intp n_tiles = (all_rows + tile_rows - 1) / tile_rows;
            int lost = 0;
            #pragma omp parallel
            {
                float* p = (float*)malloc(tile_rows * width * columns * sizeof(float));
                if (!p) {
                    #pragma omp atomic write
                    lost = 1;
                }
                #pragma omp for schedule(static)
                for (npy_intp i = 0; i < n_tiles; i++) {
                    if (!p) continue;
                    npy_intp br0 = i * tile_rows, br1 = br0 + tile_rows;
                    if (br1 > all_rows) br1 = all_rows;
                    /* y tile (positions, out) = p (positions, columns) @ w.T; direct:
                       the map's rows (positions, columns - 1) @ w[:, :-1].T + bias */
                    npy_intp n = (br1 - br0) * width, k = direct ? columns - 1 : columns;
                    const float* a = direct ? data[0] + br0 * width * k : p;
                    float* yt = y + br0 * width * n_out;
                    if (!direct)
                        tc_fill(p, br0, br1, out_rows, height, width, columns, n_taps,
                                tap_src_%(name)s, tap_dr_%(name)s, tap_dc_%(name)s, offset, data,
                                rows, chans, origin);
                    tc_gemm(n, n_out, k, a, k, 1, wk, n_out, yt, n_out, 0);
                    if (direct)
                        for (npy_intp r = 0; r < n; r++)
                            for (npy_intp o = 0; o < n_out; o++)
                                yt[r * n_out + o] += wk[(columns - 1) * n_out + o];
                }
                free(p);
            }
            if (lost) {
                PyErr_NoMemory();
                ok = 0;
            }
        }
        free(wk);
        """ % dict(out=out, name=name))
        lines.append(self._c_tail(len(maps), sub["fail"]))
        return "\n".join(lines)


class TiledConvGrad(_TiledBase):
    """Gradient of ``TiledConv``: (output gradient ``(positions, out)``, maps ...,
    weights) -> (one gradient per map, shaped like it; the weights' gradient).

    ``skip``: the maps whose gradient nothing reads (the input image, the map of
    ones of ``fold_1x1``); their outputs are allocated but not computed. Set by
    the graph rewrite ``skip_unused_map_gradients``, never by hand."""

    __props__ = _TiledBase.__props__ + ("skip",)

    def __init__(self, taps, origins, trailing, extra_rows=0, tile_positions=TILE_POSITIONS,
                 skip=()):
        _TiledBase.__init__(self, taps, origins, trailing, extra_rows, tile_positions)
        self.skip = tuple(sorted(set(int(m) for m in skip)))
        if any(m < 0 or m >= len(self.origins) for m in self.skip):
            raise ValueError("TiledConvGrad: skip names a map that does not exist: {}".format(
                self.skip))

    def make_node(self, grad, *inputs):
        maps, weights = _check_inputs(self, inputs[:-1], inputs[-1])
        grad = float32_variable(grad, 2, "TiledConvGrad", "the gradient (positions, out)")
        return theano.Apply(self, [grad] + maps + [weights],
                            [m.type() for m in maps] + [weights.type()])

    def infer_shape(self, node, shapes):
        return list(shapes[1:])

    def perform(self, node, inputs, output_storage):
        grad, maps, weights = inputs[0], inputs[1:-1], inputs[-1]
        cols = _run_perform(self._patches_op(), maps)[0]
        if grad.shape != (cols.shape[0], weights.shape[0]):
            raise ValueError("TiledConvGrad: the gradient's shape {} is not (positions, out) "
                             "= {}".format(grad.shape, (cols.shape[0], weights.shape[0])))
        grad_cols = numpy.dot(grad, weights).astype(numpy.float32)
        grad_op = PatchesGrad(self.taps, self.origins, self.trailing, self.extra_rows, True)
        outs = _run_perform(grad_op, [grad_cols] + list(maps))
        for m in self.skip:
            outs[m][...] = 0.0  # not asked for (see skip)
        outs.append(numpy.dot(grad.T, cols).astype(numpy.float32))
        for storage, value in zip(output_storage, outs):
            storage[0] = value

    def grad(self, inputs, output_grads):
        raise NotImplementedError("TiledConvGrad has no gradient (no second derivatives)")

    def _c_body(self, node, name, inputs, outputs, sub):
        grad, maps, weights = inputs[0], inputs[1:-1], inputs[-1]
        n_maps = len(maps)
        lines = self._c_head(name, maps, weights)
        lines.append("PyArrayObject* g_arr = PyArray_GETCONTIGUOUS(%s);" % grad)
        lines.append("PyArrayObject** outs[%d];" % (n_maps + 1))
        lines += ["outs[%d] = &%s;" % (i, out) for i, out in enumerate(outputs)]
        lines.append(_READ_MAPS % dict(_tile_props(self), name=name))
        lines.append(r"""
        if (ok && (PyArray_NDIM(g_arr) != 2 || PyArray_DIMS(g_arr)[0] != batch * out_rows * width
                   || PyArray_DIMS(g_arr)[1] != n_out)) {
            PyErr_SetString(PyExc_ValueError,
                            "TiledConvGrad: the gradient is not (positions, out) of the output");
            ok = 0;
        }
        for (int m = 0; ok && m <= n_maps; m++) {
            PyArrayObject** o = outs[m];
            PyArrayObject* like = m < n_maps ? maps[m] : w_arr;
            int nd = PyArray_NDIM(like);
            if (!*o || PyArray_NDIM(*o) != nd || !PyArray_IS_C_CONTIGUOUS(*o)
                || memcmp(PyArray_DIMS(*o), PyArray_DIMS(like), nd * sizeof(npy_intp))) {
                Py_XDECREF(*o);
                *o = (PyArrayObject*)PyArray_EMPTY(nd, PyArray_DIMS(like), NPY_FLOAT32, 0);
                if (!*o) ok = 0;
            }
        }
        if (ok) {
            const float* w = (const float*)PyArray_DATA(w_arr);
            const float* g = (const float*)PyArray_DATA(g_arr);
            float* dw = (float*)PyArray_DATA(*outs[n_maps]);
            npy_intp all_rows = batch * out_rows;
            npy_intp n_tiles = (all_rows + tile_rows - 1) / tile_rows;
            int lost = 0;
            memset(dw, 0, n_out * columns * sizeof(float));

            /* The weights: dw (out, columns) += g_tile.T @ p_tile, summed per thread. */
            #pragma omp parallel
            {
                float* p = (float*)malloc(tile_rows * width * columns * sizeof(float));
                float* acc = (float*)calloc(n_out * columns, sizeof(float));
                if (!p || !acc) {
                    #pragma omp atomic write
                    lost = 1;
                }
                #pragma omp for schedule(static)
                for (npy_intp i = 0; i < n_tiles; i++) {
                    if (!p || !acc) continue;
                    npy_intp br0 = i * tile_rows, br1 = br0 + tile_rows;
                    if (br1 > all_rows) br1 = all_rows;
                    /* acc (columns, out) += p.T (columns, n) @ g tile (n, out), summed
                       over the tile's positions. direct: the map's rows for p, the
                       bias row summed apart. */
                    npy_intp n = (br1 - br0) * width, k = direct ? columns - 1 : columns;
                    const float* a = direct ? data[0] + br0 * width * k : p;
                    const float* gt = g + br0 * width * n_out;
                    if (!direct)
                        tc_fill(p, br0, br1, out_rows, height, width, columns, n_taps,
                                tap_src_%(name)s, tap_dr_%(name)s, tap_dc_%(name)s, offset, data,
                                rows, chans, origin);
                    tc_gemm(k, n_out, n, a, 1, k, gt, n_out, acc, n_out, 1);
                    if (direct)
                        for (npy_intp r = 0; r < n; r++)
                            for (npy_intp o = 0; o < n_out; o++)
                                acc[k * n_out + o] += gt[r * n_out + o];
                }
                if (p && acc) {
                    #pragma omp critical
                    for (npy_intp k = 0; k < columns; k++)  /* acc is (columns, out) */
                        for (npy_intp o = 0; o < n_out; o++)
                            dw[o * columns + k] += acc[k * n_out + o];
                }
                free(p);
                free(acc);
            }

            /* Each map: for every map position, the sum over the taps that read it of
               g[output position] @ w[:, tap columns]. Per tile of a map's image rows,
               gp (positions, its taps x out) @ wm (its taps x out, channels). */
            const int skipped[%(n_maps)d] = {%(skipped)s};
            for (int mi = 0; ok && !lost && mi < n_maps; mi++) {
                if (skipped[mi]) continue;  /* nothing reads this gradient */
                npy_intp ch = chans[mi], mrows = rows[mi];
                float* dx = (float*)PyArray_DATA(*outs[mi]);
                int mt[%(n_taps)d], nt = 0;
                for (int t = 0; t < n_taps; t++) if (tap_src_%(name)s[t] == mi) mt[nt++] = t;
                npy_intp kt = nt * n_out;
                /* rows that are not image rows get no gradient */
                for (npy_intp b = 0; b < batch; b++) {
                    memset(dx + b * mrows * width * ch, 0, origin[mi] * width * ch * sizeof(float));
                    memset(dx + (b * mrows + origin[mi] + height) * width * ch, 0,
                           trailing[mi] * width * ch * sizeof(float));
                }
                if (nt == 0 || ch == 0) {
                    for (npy_intp b = 0; b < batch; b++)
                        memset(dx + (b * mrows + origin[mi]) * width * ch, 0,
                               height * width * ch * sizeof(float));
                    continue;
                }
                float* wm = (float*)malloc(kt * ch * sizeof(float));
                if (!wm) { lost = 1; break; }
                for (int j = 0; j < nt; j++)
                    for (npy_intp o = 0; o < n_out; o++)
                        memcpy(wm + (j * n_out + o) * ch, w + o * columns + offset[mt[j]],
                               ch * sizeof(float));
                npy_intp tiles_per_image = (height + tile_rows - 1) / tile_rows;
                #pragma omp parallel
                {
                    float* gp = (float*)malloc(tile_rows * width * kt * sizeof(float));
                    if (!gp) {
                        #pragma omp atomic write
                        lost = 1;
                    }
                    #pragma omp for schedule(static)
                    for (npy_intp i = 0; i < batch * tiles_per_image; i++) {
                        if (!gp) continue;
                        npy_intp b = i / tiles_per_image;
                        npy_intp q0 = (i %% tiles_per_image) * tile_rows, q1 = q0 + tile_rows;
                        if (q1 > height) q1 = height;
                        /* direct: the gradient's rows are the gathered rows */
                        const float* src = direct ? g + (b * out_rows + q0) * width * n_out : gp;
                        if (!direct)
                            for (npy_intp q = q0; q < q1; q++)
                                for (npy_intp x = 0; x < width; x++) {
                                    float* d = gp + ((q - q0) * width + x) * kt;
                                    for (int j = 0; j < nt; j++) {
                                        npy_intp r = q - tap_dr_%(name)s[mt[j]];
                                        npy_intp c = x - tap_dc_%(name)s[mt[j]];
                                        if (r >= 0 && r < out_rows && c >= 0 && c < width)
                                            memcpy(d + j * n_out, g + ((b * out_rows + r) * width + c) * n_out,
                                                   n_out * sizeof(float));
                                        else
                                            memset(d + j * n_out, 0, n_out * sizeof(float));
                                    }
                                }
                        /* dx tile (n, ch) = gp (n, kt) @ wm (kt, ch) */
                        npy_intp n = (q1 - q0) * width;
                        float* dxt = dx + (b * mrows + origin[mi] + q0) * width * ch;
                        tc_gemm(n, ch, kt, src, kt, 1, wm, ch, dxt, ch, 0);
                    }
                    free(gp);
                }
                free(wm);
            }
            if (lost) {
                PyErr_NoMemory();
                ok = 0;
            }
        }
        Py_XDECREF(g_arr);
        """ % dict(name=name, n_taps=len(self.taps), n_maps=n_maps,
                   skipped=", ".join("1" if m in self.skip else "0" for m in range(n_maps))))
        lines.append(self._c_tail(n_maps, sub["fail"]))
        return "\n".join(lines)


@theano.gof.local_optimizer([TiledConvGrad])
def skip_unused_map_gradients(node):
    """Graph rewrite: a ``TiledConvGrad`` whose map gradients nothing reads (a
    network's input image, the map of ones of ``fold_1x1``) stops computing
    them. Part of Theano's ``fast_run`` rewrites (``specialize``)."""
    if not isinstance(node.op, TiledConvGrad):
        return False
    unused = {m for m, out in enumerate(node.outputs[:-1]) if not out.clients}
    if unused <= set(node.op.skip):
        return False
    op = node.op
    new = TiledConvGrad(op.taps, op.origins, op.trailing, op.extra_rows, op.tile_positions,
                        skip=unused | set(op.skip))
    return new(*node.inputs, return_list=True)


register_specialize(skip_unused_map_gradients)


def _run_perform(op, inputs):
    """The values ``op.perform`` computes for ``inputs`` (a list, one per output)."""
    node = op.make_node(*[T.as_tensor_variable(x) for x in inputs])
    storage = [[None] for _ in node.outputs]
    op.perform(node, inputs, storage)
    return [s[0] for s in storage]


def tiled_conv(maps, taps, weights, extra_rows=0, tile_positions=TILE_POSITIONS):
    """``patches(maps, taps, extra_rows, bias_column=True) @ weights.T`` without the
    patch matrix: ``maps`` a list of ``(tensor, origin, trailing)`` with tensors
    ``(batch, rows, width, channels)``, ``weights`` ``(out, columns)`` with the
    bias last. Returns ``(batch * (height + extra_rows) * width, out)``."""
    op = TiledConv(taps, [m[1] for m in maps], [m[2] for m in maps], extra_rows, tile_positions)
    return op(*([m[0] for m in maps] + [weights]))
