"""The compiled ops of the fast graphs against plain NumPy, and their gradients.

Each op is checked compiled to C and through its pure-Python ``perform`` (the
``py`` linker: what Theano runs where no C compiler is found)."""
import numpy
import pytest
import theano
import theano.tensor as T

from lib import floatX
from kernels.fast_relu import leaky_relu
from kernels.gate import gate
from lib.ops import relu
from kernels.patches import Patches

LINKERS = {"c": theano.Mode(linker="cvm", optimizer="fast_run"),
           "python": theano.Mode(linker="py", optimizer="fast_run")}

# Two maps of one 5 x 6 image: A has one extra leading row (origin 1), B one
# trailing row; taps with row and column offsets reaching outside the image.
TAPS = ((0, -2, -1), (1, 0, 0), (0, -1, 1), (1, -1, -3), (0, 0, 0), (1, 1, 2))
ORIGINS, TRAILING = (1, 0), (0, 1)


def numpy_patches(maps, taps, origins, trailing, extra_rows, bias_column):
    """Element by element, as the module docstring of kernels.patches defines it."""
    batch, width = maps[0].shape[0], maps[0].shape[2]
    height = maps[0].shape[1] - origins[0] - trailing[0]
    rows = []
    for b in range(batch):
        for r in range(height + extra_rows):
            for c in range(width):
                row = []
                for s, dr, dc in taps:
                    q, x = r + dr, c + dc
                    if 0 <= q < height and 0 <= x < width:
                        row.extend(maps[s][b, q + origins[s], x])
                    else:
                        row.extend([0.0] * maps[s].shape[3])
                rows.append(row + ([1.0] if bias_column else []))
    return numpy.array(rows, dtype=numpy.float32)


@pytest.fixture(scope="module")
def maps():
    rng = numpy.random.RandomState(0)
    return [floatX(rng.randn(2, 6, 6, 3)), floatX(rng.randn(2, 6, 6, 2))]


@pytest.fixture(scope="module", params=[(0, False, "c"), (1, True, "c"), (1, True, "python")])
def compiled(request):
    """(op, function maps, G -> (patches, gradient of sum(patches * G)) per map)."""
    extra_rows, bias, linker = request.param
    op = Patches(TAPS, ORIGINS, TRAILING, extra_rows, bias)
    A, B, G = T.tensor4("A"), T.tensor4("B"), T.matrix("G")
    P = op(A, B)
    fn = theano.function([A, B, G], [P] + T.grad((P * G).sum(), [A, B]), mode=LINKERS[linker])
    return op, fn


def test_patches_equal_numpy(compiled, maps):
    op, fn = compiled
    expected = numpy_patches(maps, TAPS, ORIGINS, TRAILING, op.extra_rows, op.bias_column)
    G = numpy.zeros(expected.shape, numpy.float32)
    numpy.testing.assert_array_equal(fn(maps[0], maps[1], G)[0], expected)


def numpy_scatter(maps, G, taps, origins, trailing, extra_rows):
    """Element by element: each patch entry's gradient goes back where it was copied from."""
    batch, width = maps[0].shape[0], maps[0].shape[2]
    height = maps[0].shape[1] - origins[0] - trailing[0]
    grads = [numpy.zeros_like(m) for m in maps]
    row = 0
    for b in range(batch):
        for r in range(height + extra_rows):
            for c in range(width):
                col = 0
                for s, dr, dc in taps:
                    ch = maps[s].shape[3]
                    q, x = r + dr, c + dc
                    if 0 <= q < height and 0 <= x < width:
                        grads[s][b, q + origins[s], x] += G[row, col:col + ch]
                    col += ch
                row += 1
    return grads


def test_patches_gradient_is_the_matching_scatter_add(compiled, maps):
    op, fn = compiled
    rows, cols = numpy_patches(maps, TAPS, ORIGINS, TRAILING, op.extra_rows,
                               op.bias_column).shape
    G = floatX(numpy.random.RandomState(1).randn(rows, cols))
    _, grad_a, grad_b = fn(maps[0], maps[1], G)
    expected = numpy_scatter(maps, G, TAPS, ORIGINS, TRAILING, op.extra_rows)
    numpy.testing.assert_allclose(grad_a, expected[0], rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(grad_b, expected[1], rtol=1e-5, atol=1e-5)
    assert not grad_a[:, 0].any() and not grad_b[:, -1].any()  # rows outside the image


@pytest.mark.parametrize("linker", sorted(LINKERS))
def test_patches_verify_grad(maps, linker):
    op = Patches(TAPS, ORIGINS, TRAILING, 1, True)
    weights = floatX(numpy.random.RandomState(2).randn(2 * 6 * 6, 3 * 3 + 2 * 3 + 1))
    theano.gradient.verify_grad(lambda a, b: (op(a, b) * weights).sum(),
                                [m.astype("float32") for m in maps],
                                rng=numpy.random.RandomState(3), eps=1e-2, abs_tol=1e-2,
                                rel_tol=1e-2, mode=LINKERS[linker])


def test_patches_reject_maps_of_different_image_sizes(maps):
    op = Patches(TAPS, ORIGINS, (0, 0), 0, False)   # B would then be 6 rows, A 5
    A, B = T.tensor4(), T.tensor4()
    with pytest.raises(ValueError, match="disagree"):
        theano.function([A, B], op(A, B))(maps[0], maps[1])


# ----- the gate -------------------------------------------------------------------------

@pytest.mark.parametrize("linker", sorted(LINKERS))
def test_gate_and_its_gradient_equal_numpy(linker):
    rng = numpy.random.RandomState(4)
    x = numpy.concatenate([numpy.linspace(-40, 40, 8 * 2001).reshape(-1, 8),
                           rng.randn(300, 8) * 3]).astype(numpy.float32)
    g = floatX(rng.randn(x.shape[0], 4))
    X, G = T.matrix(), T.matrix()
    out, grad = theano.function([X, G], [gate(X), theano.gradient.Lop(gate(X), X, G)],
                                mode=LINKERS[linker])(x, g)
    a, b = x[:, :4].astype(numpy.float64), x[:, 4:].astype(numpy.float64)
    t, s = numpy.tanh(a), 1 / (1 + numpy.exp(-b))
    numpy.testing.assert_allclose(out, t * s, rtol=1e-6, atol=2e-7)
    expected = numpy.concatenate([(1 - t * t) * s * g, t * s * (1 - s) * g], axis=1)
    numpy.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("linker", sorted(LINKERS))
def test_gate_verify_grad(linker):
    x = floatX(numpy.random.RandomState(5).randn(3, 2, 6))
    theano.gradient.verify_grad(gate, [x], rng=numpy.random.RandomState(6), eps=1e-3,
                                abs_tol=1e-3, rel_tol=1e-3, mode=LINKERS[linker])


# ----- the leaky ReLU -------------------------------------------------------------------

@pytest.mark.parametrize("linker", sorted(LINKERS))
def test_leaky_relu_is_bitwise_the_original_switch(linker):
    rng = numpy.random.RandomState(7)
    x = floatX(rng.randn(1000, 7))
    x[:10] = 0.0
    x[10:20] = 1e-40   # denormals
    g = floatX(rng.randn(1000, 7))
    X, G = T.matrix(), T.matrix()
    ours = theano.function([X, G], [leaky_relu(X), theano.gradient.Lop(leaky_relu(X), X, G)],
                           mode=LINKERS[linker])
    original = theano.function([X, G], [relu(X), theano.gradient.Lop(relu(X), X, G)])
    for a, b in zip(ours(x, g), original(x, g)):
        numpy.testing.assert_array_equal(a, b)
