"""kernels.lstm against a plain NumPy loop over pixels, in C and in Python, and its gradient.

Each test runs the op twice: compiled to C (Theano's default linker) and through
its pure-Python ``perform`` (the ``py`` linker, what Theano runs where no C
compiler or BLAS is found).
"""
import numpy
import pytest
import theano
import theano.tensor as T

from kernels import lstm
from kernels.lstm import TAPS, lstm_scan

LINKERS = {"c": theano.Mode(linker="cvm", optimizer="fast_run"),
           "python": theano.Mode(linker="py", optimizer="fast_run")}


def sigmoid(x):
    return 1.0 / (1.0 + numpy.exp(-x))


def neighbours(mode, i, j):
    """The taps of pixel (i, j), in weight order, and its cell predecessor."""
    if mode == "row":
        return [(i - 1, j - 1), (i - 1, j), (i - 1, j + 1)], (i - 1, j)
    side = (i, j - 1) if mode == "l2r" else (i, j + 1)
    return [(i - 1, j), side], side


def loop_lstm(mode, gates, weights):
    """One pixel at a time, in float64, in an order where every neighbour comes first."""
    batch, height, width, four_h = gates.shape
    hd = four_h // 4
    h = numpy.zeros((batch, height, width, hd))
    c = numpy.zeros_like(h)
    columns = range(width) if mode != "r2l" else range(width - 1, -1, -1)
    for i in range(height):
        for j in columns:
            taps, pred = neighbours(mode, i, j)
            z = gates[:, i, j].astype(numpy.float64)
            for k, (y, x) in enumerate(taps):
                if 0 <= y < height and 0 <= x < width:
                    z = z + h[:, y, x] @ weights[k * hd:(k + 1) * hd]
            z = z.reshape((batch, hd, 4))
            c_prev = c[:, pred[0], pred[1]] if 0 <= pred[0] and 0 <= pred[1] < width else 0.0
            c[:, i, j] = sigmoid(z[..., 1]) * c_prev + sigmoid(z[..., 0]) * numpy.tanh(z[..., 3])
            h[:, i, j] = sigmoid(z[..., 2]) * numpy.tanh(c[:, i, j])
    return h


def random_inputs(mode, batch, height, width, hd, seed):
    rng = numpy.random.RandomState(seed)
    gates = rng.randn(batch, height, width, 4 * hd).astype(numpy.float32)
    weights = (0.5 * rng.randn(TAPS[mode] * hd, 4 * hd)).astype(numpy.float32)
    return gates, weights


@pytest.fixture(scope="module", params=[(m, linker) for m in lstm.MODES for linker in LINKERS])
def compiled(request):
    """(mode, function gates, weights, upstream gradient -> (h, d gates, d weights))."""
    mode, linker = request.param
    G, W, U = T.tensor4("G"), T.matrix("W"), T.tensor4("U")
    h = lstm_scan(mode, G, W)
    fn = theano.function([G, W, U], [h] + T.grad((h * U).sum(), [G, W]),
                         mode=LINKERS[linker])
    return mode, fn


@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (3, 8, 4, 2), (1, 1, 6, 1)])
def test_lstm_equals_the_pixel_loop(compiled, shape):
    mode, fn = compiled
    gates, weights = random_inputs(mode, *shape, seed=sum(shape))
    h = fn(gates, weights, numpy.zeros(shape[:3] + (shape[3],), numpy.float32))[0]
    numpy.testing.assert_allclose(h, loop_lstm(mode, gates, weights), rtol=1e-5, atol=2e-6)


def test_lstm_gradient_equals_finite_differences_of_the_loop(compiled):
    """d sum(h * U) / d gates and / d weights against central differences of the loop."""
    mode, fn = compiled
    gates, weights = random_inputs(mode, 2, 3, 4, 2, seed=9)
    upstream = numpy.random.RandomState(10).randn(2, 3, 4, 2).astype(numpy.float32)
    _, d_gates, d_weights = fn(gates, weights, upstream)
    rng = numpy.random.RandomState(11)
    eps = 1e-3
    for array, grad in ((gates, d_gates), (weights, d_weights)):
        for index in [tuple(rng.randint(0, n) for n in array.shape) for _ in range(12)]:
            shifted = []
            for sign in (1, -1):
                moved = [gates.astype(numpy.float64), weights.astype(numpy.float64)]
                target = moved[0] if array is gates else moved[1]
                target[index] += sign * eps
                shifted.append((loop_lstm(mode, *moved) * upstream).sum())
            numeric = (shifted[0] - shifted[1]) / (2 * eps)
            assert abs(grad[index] - numeric) <= 1e-3 + 1e-3 * abs(numeric), (mode, index)


@pytest.mark.parametrize("linker", sorted(LINKERS))
@pytest.mark.parametrize("mode", lstm.MODES)
def test_lstm_verify_grad(mode, linker):
    gates, weights = random_inputs(mode, 2, 4, 3, 2, seed=12)
    theano.gradient.verify_grad(lambda g, w: lstm_scan(mode, g, w).sum() * 0.5
                                + (lstm_scan(mode, g, w) ** 2).sum(),
                                [gates, weights], rng=numpy.random.RandomState(13),
                                mode=LINKERS[linker], eps=1e-2, abs_tol=1e-2, rel_tol=1e-2)


def test_lstm_rejects_weights_of_the_wrong_shape():
    G, W = T.tensor4("G"), T.matrix("W")
    fn = theano.function([G, W], lstm_scan("row", G, W))
    gates, weights = random_inputs("l2r", 1, 3, 3, 2, seed=0)   # 2 taps, row needs 3
    with pytest.raises(ValueError, match="do not fit"):
        fn(gates, weights)


@pytest.mark.parametrize("shape", [(0, 3, 4, 2), (2, 0, 4, 2), (2, 3, 0, 2), (2, 3, 4, 0)])
def test_lstm_on_an_empty_input(compiled, shape):
    """No batch, rows, columns or units: empty states, a zero weight gradient."""
    mode, fn = compiled
    gates, weights = random_inputs(mode, *shape, seed=3)
    h, d_gates, d_weights = fn(gates, weights, numpy.zeros(shape, numpy.float32))
    assert h.shape == shape and d_gates.shape == gates.shape
    assert d_weights.shape == weights.shape and not d_weights.any()


@pytest.mark.parametrize("mode", lstm.MODES)
def test_lstm_parallel_loops_equal_numpy(mode):
    """Above n * G = 16384 (pixels of a step times 4h) the C loops run in parallel
    (OpenMP); every step of the longest ones here is past all the loops' thresholds
    (gather, gates, backward scatter: n * taps * h > 16384 too). Against the NumPy
    version of the op (its perform)."""
    G, W, U = T.tensor4("G"), T.matrix("W"), T.tensor4("U")
    h = lstm_scan(mode, G, W)
    fn = theano.function([G, W, U], [h] + T.grad((h * U).sum(), [G, W]), mode=LINKERS["c"])
    batch, size, hd = 16, 8, 72     # n = 16 * 8 = 128 pixels in a row or a long diagonal
    assert batch * size * 4 * hd > 16384 and batch * size * lstm.TAPS[mode] * hd > 16384
    gates, weights = random_inputs(mode, batch, size, size, hd, seed=21)
    weights *= 0.2  # keep the 72-unit recurrence away from saturation
    upstream = numpy.random.RandomState(22).randn(batch, size, size, hd).astype(numpy.float32)
    h_c, d_gates_c, d_weights_c = fn(gates, weights, upstream)
    h_np, c_np, acts_np = lstm.forward_numpy(mode, gates, weights)
    d_gates_np, d_weights_np = lstm.backward_numpy(mode, weights, h_np, c_np, acts_np, upstream)
    numpy.testing.assert_allclose(h_c, h_np, rtol=1e-5, atol=2e-6)
    numpy.testing.assert_allclose(d_gates_c, d_gates_np, rtol=1e-5, atol=5e-6)
    numpy.testing.assert_allclose(d_weights_c, d_weights_np, rtol=1e-5, atol=5e-5)


def test_lstm_has_no_c_code_without_blas(monkeypatch):
    """With no BLAS to link, the op declines to give C code, so Theano runs perform()."""
    monkeypatch.setattr(lstm, "ldflags", lambda *args, **kwargs: [])
    G, W = T.tensor4("G"), T.matrix("W")
    node = lstm.LSTMScan("row")(G, W)[0].owner
    with pytest.raises(theano.gof.utils.MethodNotDefined):
        node.op.c_code(node, "n", ["g", "w"], ["h", "c", "a"], {"fail": "{}"})
    assert node.op.c_code_cache_version_apply(node) == ()  # and no cached module either
