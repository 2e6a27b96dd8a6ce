"""Causal patch matrices: a convolution as one matrix product, in compiled C.

A convolution on channels-last maps is a product ``patches @ W`` where each
row of ``patches`` holds, side by side, the input vectors under the filter's
taps at one output position. ``Patches`` builds that matrix (im2col) from one
or more maps, and its gradient ``PatchesGrad`` adds the columns back onto the
maps they came from (col2im). Both loop over rows in parallel (OpenMP).

Layouts. A map is a ``(batch, rows, width, channels)`` float32 tensor whose
image rows ``0 .. height-1`` sit at indices ``origin .. origin+height-1``;
``origin`` leading and ``trailing`` last rows are not part of the image and
are never read (they are what a shifted crop would have cut away). A tap
``(source, dr, dc)`` reads ``source[b, r + dr, c + dc, :]`` for output
position ``(r, c)``, in image coordinates; outside the image it reads zeros,
which is the zero padding of the original layers. The output is the matrix
``(batch * out_rows * width, sum of the taps' channels [+ 1])`` with rows in
``(batch, row, column)`` order and ``out_rows = height + extra_rows``; with
``bias_column`` a last column of ones lets the product add the bias.

So padding, the row shift, the crop and the concatenation of two maps of the
stacks all happen inside one pass that writes every patch value once.
"""
import numpy
import theano

from kernels import C_CHECKS, CompiledOp, check_float32, differ, float32_variable, known_shape

# C helpers shared by both ops: the image window of one tap, and the checks of the maps.
_SUPPORT = r"""
static inline int pc_in(int v, int lo, int hi) { return v >= lo && v < hi; }

/* The maps of a Patches op: 4-d float32, origin and trailing >= 0, one image size
   (batch, height, width), which is returned through the pointers. */
static int pc_image(const char* op, int n_maps, PyArrayObject** maps, const int* origin,
                    const int* trailing, npy_intp* batch, npy_intp* height, npy_intp* width) {
    for (int m = 0; m < n_maps; m++) {
        if (!kc_float32(maps[m], 4, op, "every map")) return 0;
        if (origin[m] < 0 || trailing[m] < 0) {
            PyErr_Format(PyExc_ValueError, "%s: map %d has origin %d and trailing %d; "
                         "both must be >= 0", op, m, origin[m], trailing[m]);
            return 0;
        }
    }
    npy_intp* d0 = PyArray_DIMS(maps[0]);
    *batch = d0[0];
    *width = d0[2];
    *height = d0[1] - origin[0] - trailing[0];
    for (int m = 0; m < n_maps; m++) {
        npy_intp* d = PyArray_DIMS(maps[m]);
        if (d[0] != *batch || d[2] != *width || d[1] - origin[m] - trailing[m] != *height) {
            PyErr_Format(PyExc_ValueError, "%s: maps disagree on batch, image height or "
                         "width: map 0 has batch %ld, %ld rows - origin %d - trailing %d, "
                         "width %ld; map %d has batch %ld, %ld rows - origin %d - trailing "
                         "%d, width %ld", op, (long)*batch, (long)d0[1], origin[0],
                         trailing[0], (long)*width, m, (long)d[0], (long)d[1], origin[m],
                         trailing[m], (long)d[2]);
            return 0;
        }
    }
    if (*height < 0) {
        PyErr_Format(PyExc_ValueError, "%s: map 0 has %ld rows, fewer than its origin %d "
                     "plus trailing %d", op, (long)d0[1], origin[0], trailing[0]);
        return 0;
    }
    return 1;
}
"""

# The forward op's C code (col: the patch matrix); %(tables)s and %(maps)s are the
# tap table and the inputs, filled in by Patches.c_code.
_C_PATCHES = r"""
%(tables)s
{
PyArrayObject* maps[%(n_maps)d];
const int origin[] = {%(origins)s};
const int trailing[] = {%(trailing)s};
%(maps)s
int ok = 1, n_taps = %(n_taps)d, n_maps = %(n_maps)d, extra = %(extra)d;
int bias = %(bias)d;
npy_intp batch = 0, width = 0, height = 0;
ok = pc_image("Patches", n_maps, maps, origin, trailing, &batch, &height, &width);
npy_intp offset[%(n_taps)d], columns = 0;
for (int t = 0; ok && t < n_taps; t++) {
    offset[t] = columns;
    columns += PyArray_DIMS(maps[tap_src_%(name)s[t]])[3];
}
columns += bias;
npy_intp out_rows = height + extra;
npy_intp dims[2] = {batch * out_rows * width, columns};
if (ok && (!%(out)s || PyArray_DIMS(%(out)s)[0] != dims[0]
           || PyArray_DIMS(%(out)s)[1] != dims[1]
           || !PyArray_IS_C_CONTIGUOUS(%(out)s))) {
    Py_XDECREF(%(out)s);
    %(out)s = (PyArrayObject*)PyArray_EMPTY(2, dims, NPY_FLOAT32, 0);
    if (!%(out)s) ok = 0;
}
if (ok) {
    float* dst_all = (float*)PyArray_DATA(%(out)s);
    #pragma omp parallel for schedule(static)
    for (npy_intp br = 0; br < batch * out_rows; br++) {
        npy_intp b = br / out_rows, r = br %% out_rows;
        for (npy_intp c = 0; c < width; c++) {
            float* dst = dst_all + (br * width + c) * columns;
            for (int t = 0; t < n_taps; t++) {
                int m = tap_src_%(name)s[t];
                npy_intp ch = PyArray_DIMS(maps[m])[3];
                npy_intp q = r + tap_dr_%(name)s[t], x = c + tap_dc_%(name)s[t];
                if (pc_in(q, 0, height) && pc_in(x, 0, width)) {
                    const float* src = (const float*)PyArray_DATA(maps[m])
                        + ((b * PyArray_DIMS(maps[m])[1] + q + origin[m]) * width + x)
                          * ch;
                    memcpy(dst + offset[t], src, ch * sizeof(float));
                } else {
                    memset(dst + offset[t], 0, ch * sizeof(float));
                }
            }
            if (bias) dst[columns - 1] = 1.0f;
        }
    }
}
for (int m = 0; m < n_maps; m++) Py_XDECREF(maps[m]);
if (!ok) %(fail)s
}
"""

# The gradient op's C code; %(maps)s binds maps[m] and outs[m] to the node's variables.
_C_PATCHES_GRAD = r"""
%(tables)s
{
PyArrayObject* maps[%(n_maps)d]; PyArrayObject** outs[%(n_maps)d];
const int origin[] = {%(origins)s};
const int trailing[] = {%(trailing)s};
PyArrayObject* g_arr = PyArray_GETCONTIGUOUS(%(grad)s);
%(maps)s
int ok = 1, n_taps = %(n_taps)d, n_maps = %(n_maps)d, extra = %(extra)d;
npy_intp batch = 0, width = 0, height = 0;
ok = kc_float32(g_arr, 2, "PatchesGrad", "the gradient")
     && pc_image("PatchesGrad", n_maps, maps, origin, trailing, &batch, &height, &width);
npy_intp offset[%(n_taps)d], columns = 0;
for (int t = 0; ok && t < n_taps; t++) {
    offset[t] = columns;
    columns += PyArray_DIMS(maps[tap_src_%(name)s[t]])[3];
}
columns += %(bias)d;
npy_intp out_rows = height + extra;
if (ok && (PyArray_DIMS(g_arr)[0] != batch * out_rows * width
           || PyArray_DIMS(g_arr)[1] != columns)) {
    PyErr_Format(PyExc_ValueError, "PatchesGrad: the gradient is (%%ld, %%ld), the maps' "
                 "patch matrix (%%ld, %%ld): it must have the patch matrix's shape",
                 (long)PyArray_DIMS(g_arr)[0], (long)PyArray_DIMS(g_arr)[1],
                 (long)(batch * out_rows * width), (long)columns);
    ok = 0;
}
for (int m = 0; ok && m < n_maps; m++) {
    PyArrayObject** o = outs[m];
    npy_intp* d = PyArray_DIMS(maps[m]);
    if (!*o || PyArray_NDIM(*o) != 4 || !PyArray_IS_C_CONTIGUOUS(*o)
        || memcmp(PyArray_DIMS(*o), d, 4 * sizeof(npy_intp))) {
        Py_XDECREF(*o);
        *o = (PyArrayObject*)PyArray_EMPTY(4, d, NPY_FLOAT32, 0);
        if (!*o) ok = 0;
    }
}
if (ok) {
    const float* g_all = (const float*)PyArray_DATA(g_arr);
    for (int m = 0; m < n_maps; m++) {
        npy_intp rows = PyArray_DIMS(maps[m])[1], ch = PyArray_DIMS(maps[m])[3];
        float* out_all = (float*)PyArray_DATA(*outs[m]);
        #pragma omp parallel for schedule(static)
        for (npy_intp bi = 0; bi < batch * rows; bi++) {
            npy_intp b = bi / rows, q = bi %% rows - origin[m];
            float* row = out_all + bi * width * ch;
            memset(row, 0, width * ch * sizeof(float));
            if (!pc_in(q, 0, height)) continue;
            for (int t = 0; t < n_taps; t++) {
                if (tap_src_%(name)s[t] != m) continue;
                npy_intp r = q - tap_dr_%(name)s[t];
                if (!pc_in(r, 0, out_rows)) continue;
                for (npy_intp x = 0; x < width; x++) {
                    npy_intp c = x - tap_dc_%(name)s[t];
                    if (!pc_in(c, 0, width)) continue;
                    const float* src = g_all + ((b * out_rows + r) * width + c) * columns
                                       + offset[t];
                    float* dst = row + x * ch;
                    for (npy_intp k = 0; k < ch; k++) dst[k] += src[k];
                }
            }
        }
    }
}
Py_XDECREF(g_arr);
if (!ok) %(fail)s
}
"""


def _image(op, shapes):
    """(batch, height, width) of the image shared by maps of ``shapes`` (tuples of four
    lengths, None for one not known; then None where not known); refuses (ValueError)
    maps that disagree or are shorter than their origin plus trailing rows."""
    op.check_counts()
    heights = [None if s[1] is None else s[1] - o - t
               for s, o, t in zip(shapes, op.origins, op.trailing)]
    image = []
    for values in ([s[0] for s in shapes], heights, [s[2] for s in shapes]):
        known = {v for v in values if v is not None}
        if len(known) > 1:
            raise ValueError("{}: maps disagree on batch, image height or width: shapes {}, "
                             "origins {}, trailing {}".format(type(op).__name__, shapes,
                                                              op.origins, op.trailing))
        image.append(known.pop() if known else None)
    if image[1] is not None and image[1] < 0:
        raise ValueError("{}: maps of shapes {} have fewer rows than their origins {} plus "
                         "trailing {}".format(type(op).__name__, shapes, op.origins,
                                              op.trailing))
    return tuple(image)


def _check_gradient(op, grad, maps):
    """Refuses (ValueError) a gradient of shape ``grad`` that is not the patch matrix's
    of maps of shapes ``maps`` (lengths None where not known)."""
    batch, height, width = _image(op, maps)
    channels = [s[3] for s in maps]
    rows = (None if None in (batch, height, width)
            else batch * (height + op.extra_rows) * width)
    columns = (None if any(channels[s] is None for s, _, _ in op.taps)
               else op.offsets(channels)[1])
    if differ(grad[0], rows) or differ(grad[1], columns):
        raise ValueError("PatchesGrad: the gradient is {}, the maps' patch matrix {}: it must "
                         "have the patch matrix's shape".format(grad, (rows, columns)))


class _PatchesBase(CompiledOp):
    """Props shared by ``Patches`` and ``PatchesGrad`` (see the module docstring)."""

    __props__ = ("taps", "origins", "trailing", "extra_rows", "bias_column")

    def __init__(self, taps, origins, trailing, extra_rows=0, bias_column=False):
        self.taps = tuple((int(s), int(dr), int(dc)) for s, dr, dc in taps)
        self.origins = tuple(int(o) for o in origins)
        self.trailing = tuple(int(t) for t in trailing)
        self.extra_rows = int(extra_rows)
        self.bias_column = bool(bias_column)
        if len(self.origins) != len(self.trailing):
            raise ValueError("one origin and one trailing count per map")
        if not self.taps:
            raise ValueError("a patch matrix needs at least one tap")
        if any(s < 0 or s >= len(self.origins) for s, _, _ in self.taps):
            raise ValueError("a tap names a map that does not exist: {}".format(self.taps))
        self.check_counts()

    def check_counts(self):
        """Refuses (ValueError) negative origins, trailing counts or extra rows."""
        if min(self.origins + self.trailing + (self.extra_rows,)) < 0:
            raise ValueError("{}: origins {}, trailing {} and extra_rows {} count rows, so "
                             "none may be negative".format(type(self).__name__, self.origins,
                                                           self.trailing, self.extra_rows))

    def _maps(self, maps, check=float32_variable):
        """``maps`` (variables, or arrays with ``check=check_float32``) refused
        (TypeError) unless 4-d float32, one per origin; the variables."""
        if len(maps) != len(self.origins):
            raise TypeError("{}: expects {} maps, got {}".format(type(self).__name__,
                                                                 len(self.origins), len(maps)))
        return [check(m, 4, type(self).__name__, "every map") for m in maps]

    def offsets(self, channels):
        """Column offset of each tap, and the total column count, for maps with
        ``channels`` feature maps each."""
        offsets, total = [], 0
        for s, _, _ in self.taps:
            offsets.append(total)
            total += channels[s]
        return offsets, total + int(self.bias_column)

    def windows(self, height, width):
        """Per tap, the output rows [r0, r1) and columns [c0, c1) that read the image."""
        out_rows = height + self.extra_rows
        return [(max(0, -dr), min(out_rows, height - dr), max(0, -dc), min(width, width - dc))
                for _, dr, dc in self.taps]

    def c_support_code(self):
        return [C_CHECKS, _SUPPORT]

    def c_headers(self):
        return ["<string.h>", "<omp.h>"]

    def c_compile_args(self):
        return ["-fopenmp", "-O3"]

    def _c_fields(self, name, maps):
        """The %-fields common to both ops' C code; ``maps`` the inputs' names."""
        if len(maps) != len(self.origins):
            raise TypeError("{}: a node of {} maps for {} origins".format(
                type(self).__name__, len(maps), len(self.origins)))
        tables = ("const int tap_src_{n}[] = {{{s}}}; const int tap_dr_{n}[] = {{{r}}}; "
                  "const int tap_dc_{n}[] = {{{c}}};").format(
                      n=name, s=", ".join(str(s) for s, _, _ in self.taps),
                      r=", ".join(str(dr) for _, dr, _ in self.taps),
                      c=", ".join(str(dc) for _, _, dc in self.taps))
        return dict(tables=tables, name=name, n_maps=len(maps), n_taps=len(self.taps),
                    origins=", ".join(map(str, self.origins)),
                    trailing=", ".join(map(str, self.trailing)),
                    extra=self.extra_rows, bias=int(self.bias_column))


class Patches(_PatchesBase):
    """maps ``(batch, rows_i, width, channels_i)`` ... -> patch matrix
    ``(batch * out_rows * width, columns)`` float32 (see the module docstring)."""

    def make_node(self, *maps):
        maps = self._maps(maps)
        _image(self, [known_shape(m) for m in maps])
        return theano.Apply(self, maps, [theano.tensor.matrix(dtype="float32")])

    def infer_shape(self, node, shapes):
        s0, o0, t0 = shapes[0], self.origins[0], self.trailing[0]
        channels = [s[3] for s in shapes]
        offsets, _ = self.offsets(channels)
        columns = offsets[-1] + channels[self.taps[-1][0]] + int(self.bias_column)
        return [(s0[0] * (s0[1] - o0 - t0 + self.extra_rows) * s0[2], columns)]

    def perform(self, node, inputs, output_storage):
        self._maps(inputs, check_float32)
        batch, height, width = _image(self, [m.shape for m in inputs])
        offsets, columns = self.offsets([m.shape[3] for m in inputs])
        out = numpy.zeros((batch, height + self.extra_rows, width, columns), numpy.float32)
        for (s, dr, dc), off, (r0, r1, c0, c1) in zip(self.taps, offsets,
                                                        self.windows(height, width)):
            if r0 < r1 and c0 < c1:
                o = self.origins[s]
                src = inputs[s][:, o + r0 + dr:o + r1 + dr, c0 + dc:c1 + dc]
                out[:, r0:r1, c0:c1, off:off + src.shape[3]] = src
        if self.bias_column:
            out[..., -1] = 1.0
        output_storage[0][0] = out.reshape((-1, columns))

    def grad(self, inputs, output_grads):
        return list(PatchesGrad(self.taps, self.origins, self.trailing, self.extra_rows,
                                self.bias_column)(output_grads[0], *inputs, return_list=True))

    def c_code(self, node, name, inputs, outputs, sub):
        fields = self._c_fields(name, inputs)
        fields.update(out=outputs[0], fail=sub["fail"], maps="\n".join(
            "maps[%d] = PyArray_GETCONTIGUOUS(%s);" % (i, var) for i, var in enumerate(inputs)))
        return _C_PATCHES % fields


class PatchesGrad(_PatchesBase):
    """Gradient of ``Patches``: (patch-matrix gradient, the maps) -> one gradient per
    map, each shaped like its map; rows outside the image get zeros."""

    def make_node(self, grad, *maps):
        grad = float32_variable(grad, 2, "PatchesGrad", "the gradient")
        maps = self._maps(maps)
        _check_gradient(self, known_shape(grad), [known_shape(m) for m in maps])
        return theano.Apply(self, [grad] + maps, [m.type() for m in maps])

    def infer_shape(self, node, shapes):
        return list(shapes[1:])

    def perform(self, node, inputs, output_storage):
        grad, maps = inputs[0], inputs[1:]
        check_float32(grad, 2, "PatchesGrad", "the gradient")
        self._maps(maps, check_float32)
        _check_gradient(self, grad.shape, [m.shape for m in maps])
        batch, height, width = _image(self, [m.shape for m in maps])
        offsets, columns = self.offsets([m.shape[3] for m in maps])
        g = grad.reshape((batch, height + self.extra_rows, width, columns))
        outs = [numpy.zeros(m.shape, numpy.float32) for m in maps]
        for (s, dr, dc), off, (r0, r1, c0, c1) in zip(self.taps, offsets,
                                                        self.windows(height, width)):
            if r0 < r1 and c0 < c1:
                o, ch = self.origins[s], maps[s].shape[3]
                outs[s][:, o + r0 + dr:o + r1 + dr, c0 + dc:c1 + dc] += \
                    g[:, r0:r1, c0:c1, off:off + ch]
        for storage, value in zip(output_storage, outs):
            storage[0] = value

    def grad(self, inputs, output_grads):
        raise NotImplementedError("PatchesGrad has no gradient (no second derivatives)")

    def c_code(self, node, name, inputs, outputs, sub):
        fields = self._c_fields(name, inputs[1:])
        fields.update(grad=inputs[0], fail=sub["fail"], maps="\n".join(
            "maps[%d] = %s; outs[%d] = &%s;" % (i, var, i, out)
            for i, (var, out) in enumerate(zip(inputs[1:], outputs))))
        return _C_PATCHES_GRAD % fields


def patches(maps, taps, extra_rows=0, bias_column=False):
    """Patch matrix of ``taps`` over ``maps``, a list of ``(tensor, origin, trailing)``
    with tensors ``(batch, rows, width, channels)``; see the module docstring."""
    op = Patches(taps, [m[1] for m in maps], [m[2] for m in maps], extra_rows, bias_column)
    return op(*[m[0] for m in maps])
