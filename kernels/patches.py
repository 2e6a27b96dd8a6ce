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
import theano.tensor as T

from kernels import source_version

# C helpers shared by both ops: the image window of one tap.
_SUPPORT = r"""
static inline int pc_in(int v, int lo, int hi) { return v >= lo && v < hi; }
"""


def _shape_props(op, shapes):
    """(batch, height, width) of the image shared by all maps of ``shapes``."""
    heights = {s[1] - o - t for s, o, t in zip(shapes, op.origins, op.trailing)}
    batches, widths = {s[0] for s in shapes}, {s[2] for s in shapes}
    if len(heights) != 1 or len(batches) != 1 or len(widths) != 1:
        raise ValueError("maps disagree on batch, image height or width: shapes {}, "
                         "origins {}, trailing {}".format(shapes, op.origins, op.trailing))
    return batches.pop(), heights.pop(), widths.pop()


class _PatchesBase(theano.Op):
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
        if any(s < 0 or s >= len(self.origins) for s, _, _ in self.taps):
            raise ValueError("a tap names a map that does not exist: {}".format(self.taps))

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
        return _SUPPORT

    def c_headers(self):
        return ["<string.h>", "<omp.h>"]

    def c_compile_args(self):
        return ["-fopenmp", "-O3"]

    def c_code_cache_version(self):
        return source_version(__file__)

    def _c_tables(self, name):
        """C arrays of the tap table, named after the node."""
        src = ", ".join(str(s) for s, _, _ in self.taps)
        drs = ", ".join(str(dr) for _, dr, _ in self.taps)
        dcs = ", ".join(str(dc) for _, _, dc in self.taps)
        return ("const int tap_src_{n}[] = {{{s}}}; const int tap_dr_{n}[] = {{{r}}}; "
                "const int tap_dc_{n}[] = {{{c}}};").format(n=name, s=src, r=drs, c=dcs)


class Patches(_PatchesBase):
    """maps ``(batch, rows_i, width, channels_i)`` ... -> patch matrix
    ``(batch * out_rows * width, columns)`` float32 (see the module docstring)."""

    def make_node(self, *maps):
        maps = [T.as_tensor_variable(m) for m in maps]
        if len(maps) != len(self.origins):
            raise TypeError("Patches expects {} maps, got {}".format(len(self.origins),
                                                                    len(maps)))
        for m in maps:
            if m.ndim != 4 or m.dtype != "float32":
                raise TypeError("Patches takes 4-d float32 maps, got {} {}".format(m.ndim,
                                                                                 m.dtype))
        return theano.Apply(self, maps, [T.matrix(dtype="float32")])

    def infer_shape(self, node, shapes):
        s0, o0, t0 = shapes[0], self.origins[0], self.trailing[0]
        channels = [s[3] for s in shapes]
        offsets, _ = self.offsets(channels)
        columns = offsets[-1] + channels[self.taps[-1][0]] + int(self.bias_column)
        return [(s0[0] * (s0[1] - o0 - t0 + self.extra_rows) * s0[2], columns)]

    def perform(self, node, inputs, output_storage):
        batch, height, width = _shape_props(self, [m.shape for m in inputs])
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
        n_maps = len(inputs)
        out, fail = outputs[0], sub["fail"]
        lines = [self._c_tables(name), "{",
                 "PyArrayObject* maps[%d];" % n_maps,
                 "const int origin[] = {%s};" % ", ".join(map(str, self.origins)),
                 "const int trailing[] = {%s};" % ", ".join(map(str, self.trailing))]
        for i, var in enumerate(inputs):
            lines.append("maps[%d] = PyArray_GETCONTIGUOUS(%s);" % (i, var))
        lines.append(r"""
        int ok = 1, n_taps = %(n_taps)d, n_maps = %(n_maps)d, extra = %(extra)d;
        int bias = %(bias)d;
        npy_intp batch = PyArray_DIMS(maps[0])[0], width = PyArray_DIMS(maps[0])[2];
        npy_intp height = PyArray_DIMS(maps[0])[1] - origin[0] - trailing[0];
        for (int m = 0; m < n_maps; m++) {
            npy_intp* d = PyArray_DIMS(maps[m]);
            if (d[0] != batch || d[2] != width || d[1] - origin[m] - trailing[m] != height)
                ok = 0;
        }
        npy_intp offset[%(n_taps)d], columns = 0;
        for (int t = 0; t < n_taps; t++) {
            offset[t] = columns;
            columns += PyArray_DIMS(maps[tap_src_%(name)s[t]])[3];
        }
        columns += bias;
        npy_intp out_rows = height + extra;
        npy_intp dims[2] = {batch * out_rows * width, columns};
        if (!ok) {
            PyErr_SetString(PyExc_ValueError,
                            "Patches: maps disagree on batch, image height or width");
        } else if (!%(out)s || PyArray_DIMS(%(out)s)[0] != dims[0]
                   || PyArray_DIMS(%(out)s)[1] != dims[1]
                   || !PyArray_IS_C_CONTIGUOUS(%(out)s)) {
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
        """ % dict(n_taps=len(self.taps), n_maps=n_maps, extra=self.extra_rows,
                   bias=int(self.bias_column), name=name, out=out, fail=fail))
        return "\n".join(lines)


class PatchesGrad(_PatchesBase):
    """Gradient of ``Patches``: (patch-matrix gradient, the maps) -> one gradient per
    map, each shaped like its map; rows outside the image get zeros."""

    def make_node(self, grad, *maps):
        grad = T.as_tensor_variable(grad)
        maps = [T.as_tensor_variable(m) for m in maps]
        return theano.Apply(self, [grad] + maps, [m.type() for m in maps])

    def infer_shape(self, node, shapes):
        return list(shapes[1:])

    def perform(self, node, inputs, output_storage):
        grad, maps = inputs[0], inputs[1:]
        batch, height, width = _shape_props(self, [m.shape for m in maps])
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
        grad, maps_in = inputs[0], inputs[1:]
        n_maps, fail = len(maps_in), sub["fail"]
        lines = [self._c_tables(name), "{",
                 "PyArrayObject* maps[%d]; PyArrayObject** outs[%d];" % (n_maps, n_maps),
                 "const int origin[] = {%s};" % ", ".join(map(str, self.origins)),
                 "const int trailing[] = {%s};" % ", ".join(map(str, self.trailing)),
                 "PyArrayObject* g_arr = PyArray_GETCONTIGUOUS(%s);" % grad]
        for i, (var, out) in enumerate(zip(maps_in, outputs)):
            lines.append("maps[%d] = %s; outs[%d] = &%s;" % (i, var, i, out))
        lines.append(r"""
        int ok = 1, n_taps = %(n_taps)d, n_maps = %(n_maps)d, extra = %(extra)d;
        npy_intp batch = PyArray_DIMS(maps[0])[0], width = PyArray_DIMS(maps[0])[2];
        npy_intp height = PyArray_DIMS(maps[0])[1] - origin[0] - trailing[0];
        npy_intp offset[%(n_taps)d], columns = 0;
        for (int t = 0; t < n_taps; t++) {
            offset[t] = columns;
            columns += PyArray_DIMS(maps[tap_src_%(name)s[t]])[3];
        }
        columns += %(bias)d;
        npy_intp out_rows = height + extra;
        if (PyArray_NDIM(g_arr) != 2 || PyArray_DIMS(g_arr)[0] != batch * out_rows * width
            || PyArray_DIMS(g_arr)[1] != columns) {
            PyErr_SetString(PyExc_ValueError, "PatchesGrad: gradient has the wrong shape");
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
        """ % dict(n_taps=len(self.taps), n_maps=n_maps, extra=self.extra_rows,
                   bias=int(self.bias_column), name=name, fail=fail))
        return "\n".join(lines)


def patches(maps, taps, extra_rows=0, bias_column=False):
    """Patch matrix of ``taps`` over ``maps``, a list of ``(tensor, origin, trailing)``
    with tensors ``(batch, rows, width, channels)``; see the module docstring."""
    op = Patches(taps, [m[1] for m in maps], [m[2] for m in maps], extra_rows, bias_column)
    return op(*[m[0] for m in maps])
