"""``kernels.tiled_conv`` against plain NumPy: the product of a patch matrix with
the weights, and its gradients, compiled to C (several tiles, tiles that cross
image boundaries) and through the Python ``perform``.

48 outputs and a map of 16 channels take the op's kernel in 32- and 16-wide
panels (and rows left over by its register blocks); the map of 3 channels
and ``conv1x1``'s 5 outputs its narrow tail."""
import numpy
import pytest
import theano
import theano.tensor as T

from kernels.channels_last import conv1x1
from kernels.tiled_conv import TiledConv, TiledConvGrad, tiled_conv
from lib import floatX

LINKERS = {"c": theano.Mode(linker="cvm", optimizer="fast_run"),
           "python": theano.Mode(linker="py", optimizer="fast_run")}

# Two maps of 3 images of 7 x 5: A with one leading row (origin 1), B with one
# trailing row; taps reaching outside the image on every side.
TAPS = ((0, -2, -1), (1, 0, 0), (0, -1, 1), (1, -1, -3), (0, 0, 0), (1, 1, 2))
ORIGINS, TRAILING = (1, 0), (0, 1)
BATCH, HEIGHT, WIDTH, CHANNELS, OUT = 3, 7, 5, (16, 3), 48


def reference(maps, weights, grad, extra_rows):
    """(output, gradient per map, weight gradient) of ``sum(output * grad)``,
    position by position."""
    out_rows = HEIGHT + extra_rows
    offsets = numpy.cumsum([0] + [CHANNELS[s] for s, _, _ in TAPS])
    patch = numpy.zeros((BATCH, out_rows, WIDTH, offsets[-1] + 1), numpy.float64)
    patch[..., -1] = 1.0
    d_maps = [numpy.zeros(m.shape) for m in maps]
    g = grad.reshape((BATCH, out_rows, WIDTH, OUT)).astype(numpy.float64)
    d_patch = g @ weights.astype(numpy.float64)
    for b in range(BATCH):
        for r in range(out_rows):
            for c in range(WIDTH):
                for (s, dr, dc), lo, hi in zip(TAPS, offsets[:-1], offsets[1:]):
                    q, x = r + dr, c + dc
                    if 0 <= q < HEIGHT and 0 <= x < WIDTH:
                        patch[b, r, c, lo:hi] = maps[s][b, q + ORIGINS[s], x]
                        d_maps[s][b, q + ORIGINS[s], x] += d_patch[b, r, c, lo:hi]
    patch = patch.reshape((-1, patch.shape[-1]))
    return patch @ weights.T, d_maps, grad.T.astype(numpy.float64) @ patch


@pytest.fixture(scope="module")
def values():
    rng = numpy.random.RandomState(0)
    maps = [floatX(rng.randn(BATCH, HEIGHT + 1, WIDTH, ch)) for ch in CHANNELS]
    weights = floatX(rng.randn(OUT, sum(CHANNELS[s] for s, _, _ in TAPS) + 1))
    return maps, weights, rng


# tile_positions 7: one output row and a half per tile, so tiles split images
# and each image's map gradient takes several tiles; 512: one tile for all.
@pytest.fixture(scope="module", params=[(1, 7, "c"), (0, 512, "c"), (1, 7, "python")])
def compiled(request):
    extra_rows, tile, linker = request.param
    A, B, W, G = T.tensor4("A"), T.tensor4("B"), T.matrix("W"), T.matrix("G")
    Y = tiled_conv([(A, 1, 0), (B, 0, 1)], TAPS, W, extra_rows, tile)
    fn = theano.function([A, B, W, G], [Y] + T.grad((Y * G).sum(), [A, B, W]),
                         mode=LINKERS[linker])
    return extra_rows, fn


def test_product_and_gradients_match_numpy(values, compiled):
    maps, weights, rng = values
    extra_rows, fn = compiled
    grad = floatX(rng.randn(BATCH * (HEIGHT + extra_rows) * WIDTH, OUT))
    y, d_a, d_b, d_w = fn(maps[0], maps[1], weights, grad)
    want_y, want_maps, want_w = reference(maps, weights, grad, extra_rows)
    numpy.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(d_a, want_maps[0], rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(d_b, want_maps[1], rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(d_w, want_w, rtol=1e-5, atol=1e-4)
    # rows outside the image get no gradient
    assert not d_a[:, 0].any() and not d_b[:, -1].any()


def test_the_buffers_of_a_second_call_are_rewritten(values, compiled):
    """Outputs kept between calls (allow_gc) must not carry the last call's sums."""
    maps, weights, rng = values
    extra_rows, fn = compiled
    grad = floatX(rng.randn(BATCH * (HEIGHT + extra_rows) * WIDTH, OUT))
    first = fn(maps[0], maps[1], weights, grad)
    second = fn(maps[0], maps[1], weights, grad)
    for x, y in zip(first, second):
        numpy.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("linker", sorted(LINKERS))
@pytest.mark.parametrize("n_in,n_out", [(6, 5), (16, 32)])
def test_conv1x1_is_the_matrix_product_plus_bias(linker, n_in, n_out):
    """A 1x1 layer reads its input in place (TiledConv.direct); 5 outputs and 6
    inputs take the kernel's narrow tail, 32 and 16 its panels."""
    rng = numpy.random.RandomState(1)
    x, filt = floatX(rng.randn(1100, n_in)), floatX(rng.randn(n_out, n_in, 1, 1))
    bias = floatX(rng.randn(n_out))
    grad = floatX(rng.randn(1100, n_out))
    X, F, b, G = T.matrix("X"), T.tensor4("F"), T.vector("b"), T.matrix("G")
    Y = conv1x1(X, F, b)
    fn = theano.function([X, F, b, G], [Y] + T.grad((Y * G).sum(), [X, F, b]),
                         mode=LINKERS[linker])
    y, dx, df, db = fn(x, filt, bias, grad)
    w = filt[:, :, 0, 0].astype(numpy.float64)
    numpy.testing.assert_allclose(y, x @ w.T + bias, rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(dx, grad @ w, rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(df[:, :, 0, 0], grad.T.astype(numpy.float64) @ x, rtol=1e-5,
                                  atol=1e-4)
    numpy.testing.assert_allclose(db, grad.sum(0), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("linker", sorted(LINKERS))
def test_map_gradients_nothing_reads_are_not_computed(values, linker):
    """The rewrite marks the maps whose gradient is unused; the rest is unchanged."""
    maps, weights, rng = values
    A, B, W, G = T.tensor4("A"), T.tensor4("B"), T.matrix("W"), T.matrix("G")
    Y = tiled_conv([(A, 1, 0), (B, 0, 1)], TAPS, W, 0, 7)
    fn = theano.function([A, B, W, G], T.grad((Y * G).sum(), [B, W]), mode=LINKERS[linker])
    ops = [node.op for node in fn.maker.fgraph.toposort() if isinstance(node.op, TiledConvGrad)]
    assert [op.skip for op in ops] == [(0,)]
    grad = floatX(rng.randn(BATCH * HEIGHT * WIDTH, OUT))
    d_b, d_w = fn(maps[0], maps[1], weights, grad)
    _, want_maps, want_w = reference(maps, weights, grad, 0)
    numpy.testing.assert_allclose(d_b, want_maps[1], rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(d_w, want_w, rtol=1e-5, atol=1e-4)


def test_make_node_refuses_what_it_cannot_compute():
    op = TiledConv(TAPS, ORIGINS, TRAILING)
    with pytest.raises(TypeError, match="float32"):
        op(T.tensor4(dtype="float64"), T.tensor4(), T.matrix())
    with pytest.raises(TypeError, match="expects 2 maps"):
        op(T.tensor4(), T.matrix())
    with pytest.raises(TypeError, match="weights"):
        op(T.tensor4(), T.tensor4(), T.tensor3())
    with pytest.raises(TypeError, match="gradient"):
        TiledConvGrad(TAPS, ORIGINS, TRAILING)(T.tensor3(), T.tensor4(), T.tensor4(), T.matrix())
    with pytest.raises(ValueError, match="negative"):
        TiledConv(TAPS, (-1, 0), TRAILING)
    with pytest.raises(ValueError, match="does not exist"):
        TiledConv(((2, 0, 0),), ORIGINS, TRAILING)
    with pytest.raises(ValueError, match="tile_positions"):
        TiledConv(TAPS, ORIGINS, TRAILING, tile_positions=0)


@pytest.mark.parametrize("linker", sorted(LINKERS))
def test_wrong_shapes_are_refused_with_a_message(values, linker):
    maps, weights, _ = values
    A, B, W = T.tensor4("A"), T.tensor4("B"), T.matrix("W")
    fn = theano.function([A, B, W], tiled_conv([(A, 1, 0), (B, 0, 1)], TAPS, W),
                         mode=LINKERS[linker])
    with pytest.raises(ValueError, match="column count"):
        fn(maps[0], maps[1], weights[:, 1:])
    with pytest.raises(ValueError, match="disagree"):
        fn(maps[0], maps[1][:, :, 1:], weights)


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")),
                        [])
    except OSError:
        return []


# (-march, the CPU flag it needs): SSE only (TC_LANES 4), AVX2 (8), AVX-512 (16)
ARCHES = [("x86-64", "sse2"), ("haswell", "avx2"), ("skylake-avx512", "avx512f")]


@pytest.mark.parametrize("march,flag", ARCHES)
def test_the_kernel_on_each_instruction_set(tmp_path, march, flag):
    """tc_gemm built for each vector width this code supports, against NumPy:
    panels of 32 and 16 columns, the narrow tail, leftover rows, both strides
    (the forward's A and the weight gradient's transposed A) and accumulation."""
    import ctypes
    import shutil
    import subprocess
    from kernels import tiled_conv
    if flag not in _cpu_flags() or not shutil.which("g++"):
        pytest.skip("this CPU cannot run -march={} code (or no g++)".format(march))
    source = tmp_path / "kernel.cc"
    source.write_text("typedef long npy_intp;\n#include <string.h>\n" + tiled_conv._TILE_SUPPORT
                      + '\nextern "C" void gemm(long r, long n, long d, const float* a, long ars,'
                      ' long ads, const float* b, long ldb, float* c, long ldc, int add)'
                      ' { tc_gemm(r, n, d, a, ars, ads, b, ldb, c, ldc, add); }\n')
    lib = tmp_path / "kernel.so"
    subprocess.run(["g++", "-O3", "-march=" + march, "-shared", "-fPIC", str(source), "-o",
                    str(lib)], check=True, capture_output=True)
    gemm = ctypes.CDLL(str(lib)).gemm
    gemm.argtypes = [ctypes.c_long] * 3 + [ctypes.c_void_p, ctypes.c_long, ctypes.c_long,
                                           ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p,
                                           ctypes.c_long, ctypes.c_int]
    rng = numpy.random.RandomState(2)
    for rows, n, depth in [(29, 57, 13), (12, 32, 40), (5, 3, 7), (40, 16, 1)]:
        a = floatX(rng.randn(rows, depth))
        b = floatX(rng.randn(depth, n))
        c = floatX(rng.randn(rows, n))
        want = c.astype(numpy.float64) + a.astype(numpy.float64) @ b
        gemm(rows, n, depth, a.ctypes.data, depth, 1, b.ctypes.data, n, c.ctypes.data, n, 1)
        numpy.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-4)
        at = numpy.ascontiguousarray(a.T)  # (depth, rows): A read down its columns
        c2 = numpy.zeros((rows, n), numpy.float32)
        gemm(rows, n, depth, at.ctypes.data, 1, rows, b.ctypes.data, n, c2.ctypes.data, n, 0)
        numpy.testing.assert_allclose(c2, a.astype(numpy.float64) @ b, rtol=1e-5, atol=1e-4)
