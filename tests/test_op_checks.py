"""Misuse of the compiled ops in kernels/ is refused with a clear exception, never a
crash or wrong numbers: in ``make_node`` (what the graph knows), and, for what only
the values know, both in the C code (the ``c`` linker) and in the Python
``perform`` (the ``python`` linker). Also: the C-code cache version is a digest of
the emitted C text, and a compiler without OpenMP falls back to ``perform``.

A node "built around make_node" below is one ``theano.Apply`` made by hand, as a
graph whose checking node was pruned or rewritten can hold: it shows the C code
and ``perform`` refusing inputs that ``make_node`` would have refused.
"""
import warnings

import numpy
import pytest
import theano
import theano.tensor as T

import kernels
from kernels import fast_relu, gate as gate_module, lstm, patches as patches_module
from kernels.fast_relu import leaky_relu
from kernels.gate import GateGrad, gate
from kernels.lstm import LSTMScan, LSTMScanGrad
from kernels.patches import Patches, PatchesGrad
from lib.ops import relu
from tests.compiling import Borrowed

LINKERS = {"c": theano.Mode(linker="cvm", optimizer="fast_run"),
           "python": theano.Mode(linker="py", optimizer="fast_run")}
both_linkers = pytest.mark.parametrize("linker", sorted(LINKERS))


def compile_fn(inputs, outputs, linker):
    """``theano.function`` with ``linker``, checked to run the kernels' C code (``c``)
    or their ``perform`` (``python``), so that each test reaches the path it names."""
    fn = theano.function(inputs, outputs, mode=LINKERS[linker])
    if linker == "python":  # Theano's PerformLinker runs every node's perform
        assert isinstance(fn.maker.linker, theano.gof.link.PerformLinker)
    else:
        assert kernel_thunks(fn) and not any(hasattr(t, "perform") for t in kernel_thunks(fn))
    return fn


def kernel_thunks(fn):
    """The thunks of the kernels' ops in a function compiled with the cvm linker."""
    vm = (fn.fn if isinstance(fn, Borrowed) else fn).fn
    return [thunk for node, thunk in zip(vm.nodes, vm.thunks)
            if isinstance(node.op, kernels.CompiledOp)]


def around_make_node(op, inputs, outputs):
    """The outputs of a node of ``op`` built without its ``make_node``."""
    return theano.Apply(op, inputs, [o.type() for o in outputs]).outputs


def f32(*shape):
    return numpy.random.RandomState(sum(shape)).randn(*shape).astype(numpy.float32)


# ----- Patches --------------------------------------------------------------------------

TAPS = ((0, -1, 0), (1, 0, -1), (0, 0, 0))


@pytest.mark.parametrize("origins, trailing, extra", [((-1, 0), (0, 0), 0),
                                                      ((0, 0), (0, -2), 0),
                                                      ((0, 0), (0, 0), -1)])
def test_patches_refuse_negative_row_counts(origins, trailing, extra):
    for op in (Patches, PatchesGrad):
        with pytest.raises(ValueError, match="none may be negative"):
            op(TAPS, origins, trailing, extra)


@both_linkers
def test_patches_check_the_row_counts_again_before_writing(linker):
    """Counts made negative after construction are refused by the C code and perform."""
    op = Patches(TAPS, (1, 0), (0, 0))
    A, B = T.tensor4("A"), T.tensor4("B")
    P = op(A, B)
    op.origins = (-1, 0)
    fn = compile_fn([A, B], P, linker)
    with pytest.raises(ValueError, match="origin -1 .*>= 0|none may be negative"):
        fn(f32(2, 4, 3, 2), f32(2, 4, 3, 1))


def test_patches_make_node_refuses_wrong_maps():
    op = Patches(TAPS, (0, 0), (0, 0))
    A, B = T.tensor4("A"), T.tensor4("B")
    with pytest.raises(TypeError, match="expects 2 maps, got 1"):
        op(A)
    with pytest.raises(TypeError, match="every map must be a float32 tensor of 4 dimensions"):
        op(A, T.tensor3("B"))
    with pytest.raises(TypeError, match="got a 4-d float64"):
        op(A, T.dtensor4("B"))


# Second map's shape against a first of (2, 5, 3, 2), both with origin 1, trailing 0.
DISAGREEING = {"batch": (3, 5, 3, 1), "width": (2, 5, 4, 1), "height": (2, 6, 3, 1)}


@both_linkers
@pytest.mark.parametrize("what", sorted(DISAGREEING))
def test_patches_refuse_maps_that_disagree(linker, what):
    A, B = T.tensor4("A"), T.tensor4("B")
    fn = compile_fn([A, B], Patches(TAPS, (1, 1), (0, 0))(A, B), linker)
    with pytest.raises(ValueError, match="disagree on batch, image height or width"):
        fn(f32(2, 5, 3, 2), f32(*DISAGREEING[what]))


@both_linkers
def test_patches_refuse_maps_shorter_than_origin_and_trailing(linker):
    A = T.tensor4("A")
    fn = compile_fn([A], Patches([(0, 0, 0)], (1,), (1,), extra_rows=2)(A), linker)
    with pytest.raises(ValueError, match="fewer"):
        fn(f32(2, 1, 3, 2))


@both_linkers
def test_patches_refuse_float64_maps_around_make_node(linker):
    A = T.dtensor4("A")
    P, = around_make_node(Patches([(0, 0, 0)], (0,), (0,)), [A], [T.fmatrix()])
    fn = compile_fn([A], P, linker)
    with pytest.raises(TypeError, match="float32"):
        fn(numpy.zeros((1, 2, 2, 1)))


def test_patches_grad_make_node_refuses_wrong_types():
    op = PatchesGrad(TAPS, (0, 0), (0, 0))
    G, A, B = T.fmatrix("G"), T.tensor4("A"), T.tensor4("B")
    with pytest.raises(TypeError, match="the gradient must be a float32 tensor of 2"):
        op(T.dmatrix("G"), A, B)
    with pytest.raises(TypeError, match="the gradient must be a float32 tensor of 2"):
        op(T.ftensor3("G"), A, B)
    with pytest.raises(TypeError, match="got a 4-d float64"):
        op(G, A, T.dtensor4("B"))
    with pytest.raises(TypeError, match="expects 2 maps, got 1"):
        op(G, A)


def patches_grad_fn(linker):
    """(gradient, A, B) -> the maps' gradients, of taps over maps with origin 1."""
    G, A, B = T.fmatrix("G"), T.tensor4("A"), T.tensor4("B")
    return compile_fn([G, A, B], PatchesGrad(TAPS, (1, 1), (0, 0))(G, A, B), linker)


@both_linkers
@pytest.mark.parametrize("what", sorted(DISAGREEING))
def test_patches_grad_refuses_maps_that_disagree(linker, what):
    """The gradient fits the first map; the second map is of another batch, width or
    height (a gradient graph whose forward node, which checks them, was pruned)."""
    fn = patches_grad_fn(linker)
    with pytest.raises(ValueError, match="disagree on batch, image height or width"):
        fn(f32(2 * 4 * 3, 2 + 1 + 2), f32(2, 5, 3, 2), f32(*DISAGREEING[what]))


@both_linkers
@pytest.mark.parametrize("shape", [(2 * 4 * 3 + 1, 5), (2 * 4 * 3, 4), (5, 2 * 4 * 3)])
def test_patches_grad_refuses_a_gradient_of_another_shape(linker, shape):
    fn = patches_grad_fn(linker)
    with pytest.raises(ValueError, match="patch matrix's shape"):
        fn(f32(*shape), f32(2, 5, 3, 2), f32(2, 5, 3, 1))


@both_linkers
def test_patches_grad_refuses_a_float64_gradient_around_make_node(linker):
    G, A = T.dmatrix("G"), T.ftensor4("A")
    out, = around_make_node(PatchesGrad([(0, 0, 0)], (0,), (0,)), [G, A], [A])
    fn = compile_fn([G, A], out, linker)
    with pytest.raises(TypeError, match="the gradient must be a float32 array of 2"):
        fn(numpy.ones((4, 1)), f32(1, 2, 2, 1))


# ----- the gate and its gradient ---------------------------------------------------------

def test_gate_make_node_refuses_wrong_types():
    with pytest.raises(TypeError, match="Gate: x must be a float32 tensor of at least 1"):
        gate(T.dmatrix())
    with pytest.raises(TypeError, match="got a 0-d float32"):
        gate(T.fscalar())
    with pytest.raises(TypeError, match="GateGrad: x must be a float32 tensor"):
        GateGrad()(T.dmatrix(), T.fmatrix())
    with pytest.raises(TypeError, match="GateGrad: gz, like x, must be a float32 tensor of 2"):
        GateGrad()(T.fmatrix(), T.dmatrix())
    with pytest.raises(TypeError, match="got a 1-d float32"):  # x (2, 5) with gz (5,)
        GateGrad()(T.fmatrix(), T.fvector())


@both_linkers
def test_gate_refuses_an_odd_last_axis(linker):
    X = T.fmatrix()
    fn = compile_fn([X], gate(X), linker)
    with pytest.raises(ValueError, match=r"last axis of x \(2, 5\) must have an even length"):
        fn(f32(2, 5))


@both_linkers
def test_gate_refuses_float64_around_make_node(linker):
    X = T.dmatrix()
    fn = compile_fn([X], around_make_node(gate, [X], [X])[0], linker)
    with pytest.raises(TypeError, match="Gate: x must be a float32 array"):
        fn(numpy.ones((2, 4)))


@both_linkers
@pytest.mark.parametrize("x_shape, gz_shape", [((2, 6), (3, 2)),     # right size, wrong shape
                                               ((2, 6), (2, 4)),     # wrong size
                                               ((4, 6), (2, 6))])    # twice the size: old check
def test_gate_grad_refuses_gz_of_another_shape(linker, x_shape, gz_shape):
    X, GZ = T.fmatrix(), T.fmatrix()
    fn = compile_fn([X, GZ], GateGrad()(X, GZ), linker)
    with pytest.raises(ValueError, match="must have the shape of x .* with the last axis halved"):
        fn(f32(*x_shape), f32(*gz_shape))


@both_linkers
def test_gate_grad_refuses_an_odd_last_axis(linker):
    X, GZ = T.fmatrix(), T.fmatrix()
    fn = compile_fn([X, GZ], GateGrad()(X, GZ), linker)
    with pytest.raises(ValueError, match="must have an even length"):
        fn(f32(2, 5), f32(2, 2))


@both_linkers
def test_gate_grad_refuses_gz_of_other_dimensions_around_make_node(linker):
    """The issue's x (2, 6) with gz (6,): equal sizes, which the old C check passed."""
    X, GZ = T.fmatrix(), T.fvector()
    fn = compile_fn([X, GZ], around_make_node(GateGrad(), [X, GZ], [X])[0], linker)
    with pytest.raises((TypeError, ValueError), match="gz"):
        fn(f32(2, 6), f32(6))


@both_linkers
def test_gate_grad_refuses_float64_gz_around_make_node(linker):
    X, GZ = T.fmatrix(), T.dmatrix()
    fn = compile_fn([X, GZ], around_make_node(GateGrad(), [X, GZ], [X])[0], linker)
    with pytest.raises(TypeError, match="gz.* must be a float32 array"):
        fn(f32(2, 6), numpy.ones((2, 3)))


# ----- the LSTM op and its gradient ------------------------------------------------------

def test_lstm_make_node_refuses_wrong_types():
    with pytest.raises(TypeError, match="gates must be a float32 tensor of 4 dimensions"):
        LSTMScan("row")(T.dtensor4(), T.fmatrix())
    with pytest.raises(TypeError, match="weights must be a float32 tensor of 2 dimensions"):
        LSTMScan("row")(T.ftensor4(), T.ftensor3())
    with pytest.raises(TypeError, match="dh must be a float32 tensor of 4 dimensions"):
        LSTMScanGrad("l2r")(T.fmatrix(), T.ftensor4(), T.ftensor4(), T.ftensor4(),
                            T.dtensor4())


@both_linkers
@pytest.mark.parametrize("gates_shape, weights_shape", [((1, 2, 3, 8), (4, 8)),  # 2 taps
                                                        ((1, 2, 3, 6), (3, 6))])  # 4h = 6
def test_lstm_refuses_gates_and_weights_that_do_not_fit(linker, gates_shape, weights_shape):
    G, W = T.ftensor4(), T.fmatrix()
    fn = compile_fn([G, W], LSTMScan("row")(G, W)[0], linker)
    with pytest.raises(ValueError, match="do not fit 3 taps"):
        fn(f32(*gates_shape), f32(*weights_shape))


@both_linkers
def test_lstm_refuses_float64_gates_around_make_node(linker):
    G, W = T.dtensor4(), T.fmatrix()
    h = around_make_node(LSTMScan("r2l"), [G, W], [T.ftensor4()] * 3)[0]
    fn = compile_fn([G, W], h, linker)
    with pytest.raises(TypeError, match="gates must be a float32 array of 4"):
        fn(numpy.ones((1, 2, 2, 4)), f32(2, 4))


def lstm_grad_inputs(mode, batch, height, width, hd):
    """Arrays (weights, h, c, acts, dh) of fitting shapes."""
    state = (batch, height, width, hd)
    return [f32(lstm.TAPS[mode] * hd, 4 * hd), f32(*state), f32(*state),
            f32(*state[:3] + (4 * hd,)), f32(*state)]


@both_linkers
@pytest.mark.parametrize("wrong, shape", [(0, (4, 8)), (2, (1, 2, 3, 3)), (3, (1, 2, 3, 4)),
                                          (4, (1, 3, 3, 2))])
def test_lstm_grad_refuses_inputs_of_mismatched_shapes(linker, wrong, shape):
    ins = [T.fmatrix()] + [T.ftensor4() for _ in range(4)]
    fn = compile_fn(ins, LSTMScanGrad("row")(*ins), linker)
    values = lstm_grad_inputs("row", 1, 2, 3, 2)
    values[wrong] = f32(*shape)
    with pytest.raises(ValueError, match="mismatched shapes"):
        fn(*values)


@both_linkers
def test_lstm_grad_refuses_float64_dh_around_make_node(linker):
    ins = [T.fmatrix()] + [T.ftensor4() for _ in range(3)] + [T.dtensor4()]
    outs = around_make_node(LSTMScanGrad("l2r"), ins, [T.ftensor4(), T.fmatrix()])
    fn = compile_fn(ins, outs, linker)
    values = lstm_grad_inputs("l2r", 1, 2, 3, 2)
    with pytest.raises(TypeError, match="dh must be a float32 array of 4"):
        fn(*values[:4] + [values[4].astype(numpy.float64)])


def test_lstm_c_code_refuses_maps_too_large_for_its_int_indices():
    """C only (perform indexes with NumPy's 64 bits): 2^31 gate values, here a
    stride-0 view that holds 32 bytes, are refused before anything is copied."""
    G, W = T.ftensor4(), T.fmatrix()
    big = numpy.broadcast_to(numpy.zeros((1, 1, 1, 8), numpy.float32), (2 ** 14, 128, 128, 8))
    fn = compile_fn([G, W], LSTMScan("row")(G, W)[0], "c")
    with pytest.raises(ValueError, match="too large for the op's 32-bit indices"):
        fn(big, f32(6, 8))
    ins = [T.fmatrix()] + [T.ftensor4() for _ in range(4)]
    fn = compile_fn(ins, LSTMScanGrad("row")(*ins), "c")
    state = numpy.broadcast_to(numpy.zeros((1, 1, 1, 2), numpy.float32), big.shape[:3] + (2,))
    with pytest.raises(ValueError, match="too large for the op's 32-bit indices"):
        fn(f32(6, 8), state, state, big, state)


@pytest.mark.parametrize("output", [1, 2])
def test_lstm_cost_on_cell_or_gate_outputs_gets_the_intended_message(output):
    G, W = T.ftensor4(), T.fmatrix()
    h, c, acts = LSTMScan("row")(G, W)
    cost = h.sum() + [h, c, acts][output].sum()
    with pytest.raises(NotImplementedError, match="build the cost from the hidden states"):
        T.grad(cost, [G, W])


# ----- shape relations where the graph knows the shapes --------------------------------

def const(*shape):
    """A float32 constant of ``shape``: a graph input whose shape make_node knows."""
    return T.constant(numpy.zeros(shape, numpy.float32))


def single_batch(ndim):
    """A float32 variable whose first axis is broadcastable: its length is known, 1."""
    return T.TensorType("float32", (True,) + (False,) * (ndim - 1))()


def test_make_node_checks_the_shape_relations_it_knows():
    with pytest.raises(ValueError, match="disagree on batch"):
        Patches(TAPS, (1, 1), (0, 0))(const(2, 5, 3, 2), single_batch(4))
    with pytest.raises(ValueError, match="fewer rows"):
        Patches([(0, 0, 0)], (1,), (1,))(const(2, 1, 3, 2))
    with pytest.raises(ValueError, match="patch matrix's shape"):   # 5 columns, not 4
        PatchesGrad(TAPS, (1, 1), (0, 0))(const(24, 4), const(2, 5, 3, 2), const(2, 5, 3, 1))
    with pytest.raises(ValueError, match="disagree on batch"):
        PatchesGrad(TAPS, (1, 1), (0, 0))(T.fmatrix(), const(2, 5, 3, 2), single_batch(4))
    with pytest.raises(ValueError, match="must have an even length"):
        gate(const(2, 5))
    with pytest.raises(ValueError, match="with the last axis halved"):
        GateGrad()(const(2, 6), single_batch(2))
    with pytest.raises(ValueError, match="do not fit 3 taps"):
        LSTMScan("row")(const(1, 2, 3, 8), const(4, 8))
    with pytest.raises(ValueError, match="mismatched shapes"):
        LSTMScanGrad("row")(T.fmatrix(), const(2, 2, 3, 2), T.ftensor4(), T.ftensor4(),
                            single_batch(4))


def test_make_node_accepts_what_it_cannot_tell_apart():
    """Unknown lengths pass make_node (the values are checked when they come)."""
    M, X4 = T.fmatrix(), T.ftensor4()
    Patches(TAPS, (1, 1), (0, 0))(const(2, 5, 3, 2), X4)
    PatchesGrad(TAPS, (1, 1), (0, 0))(const(24, 5), const(2, 5, 3, 2), X4)
    GateGrad()(const(2, 6), M)
    LSTMScanGrad("row")(const(6, 8), X4, X4, const(1, 2, 3, 8), X4)


# ----- the leaky ReLU's C code in float64 -----------------------------------------------

@both_linkers
def test_leaky_relu_in_float64_is_bitwise_the_original_switch(linker):
    """The C code once computed float64 inputs in float32."""
    rng = numpy.random.RandomState(0)
    x, g = rng.randn(500) * 1e3, rng.randn(500)
    X, G = T.dvector(), T.dvector()
    ours = theano.function([X, G], [leaky_relu(X), theano.gradient.Lop(leaky_relu(X), X, G)],
                           mode=LINKERS[linker])
    original = theano.function([X, G], [relu(X), theano.gradient.Lop(relu(X), X, G)])
    for a, b in zip(ours(x, g), original(x, g)):
        assert a.dtype == numpy.float64
        numpy.testing.assert_array_equal(a, b)


# ----- the C-code cache version -------------------------------------------------------

def kernel_nodes():
    """One node of each op with its own C code, and the modules whose strings it emits."""
    M, V, X4 = T.fmatrix(), T.fvector(), T.ftensor4()
    return [(Patches(TAPS, (0, 0), (0, 0), 1, True)(X4, X4).owner,
             patches_module, ["_SUPPORT", "_C_PATCHES", "C_CHECKS"]),
            (PatchesGrad(TAPS, (0, 0), (0, 0))(M, X4, X4)[0].owner,
             patches_module, ["_SUPPORT", "_C_PATCHES_GRAD", "C_CHECKS"]),
            (gate(M).owner, gate_module, ["MATH_SUPPORT", "C_CHECKS"]),
            (GateGrad()(M, M).owner, gate_module, ["MATH_SUPPORT", "C_CHECKS"]),
            (LSTMScan("row")(X4, M)[0].owner, lstm, ["_C_FORWARD", "_C_SUPPORT", "GATE_MATH"]),
            (LSTMScanGrad("l2r")(M, X4, X4, X4, X4)[0].owner, lstm,
             ["_C_BACKWARD", "_C_SUPPORT", "C_CHECKS"]),
            (leaky_relu(V).owner, fast_relu, ["C_TYPES"])]


def version_of(node):
    return node.op.c_code_cache_version_apply(node)


def test_cache_version_is_a_digest_of_the_emitted_c_code(monkeypatch, tmp_path):
    """Each node's version follows the C text its op emits, held in memory, and not the
    module's file on disk (which may be edited while a run goes on)."""
    for node, module, strings in kernel_nodes():
        version = version_of(node)
        assert version and version == version_of(node), node.op
        if isinstance(node.op, kernels.CompiledOp):
            assert version == kernels.code_version(*node.op.emitted_code(node)), node.op
        edited = tmp_path / "edited.py"
        edited.write_text(open(module.__file__).read().replace("1.0f", "1.00f"))
        with monkeypatch.context() as patch:
            patch.setattr(module, "__file__", str(edited))
            assert version_of(node) == version, node.op
        for name in strings:
            with monkeypatch.context() as patch:
                old = getattr(module, name)
                new = ({"float32": "float", "float64": "long double"} if name == "C_TYPES"
                       else old.replace("{", "{ ", 1))
                assert new != old
                patch.setattr(module, name, new)
                assert version_of(node) != version, (node.op, name)


def test_leaky_relu_c_code_changes_with_the_dtype():
    """The scalar C code depends on the node only through its dtype; both are hashed."""
    f32_node = fast_relu.leaky_relu.scalar_op.make_node(theano.scalar.float32())
    f64_node = fast_relu.leaky_relu.scalar_op.make_node(theano.scalar.float64())
    codes = [fast_relu.leaky_relu.scalar_op.c_code(n, "n", ["x"], ["z"], {})
             for n in (f32_node, f64_node)]
    assert codes[0] != codes[1] and "float y_" in codes[0] and "double y_" in codes[1]


# ----- a compiler without OpenMP ------------------------------------------------------

# Compiled for one test only: an explicit on_unused_input keeps tests.compiling.CompileOnce
# from handing these perform-running functions to later tests.
UNSHARED = dict(mode=LINKERS["c"], on_unused_input="raise")

@pytest.fixture
def compiler_without_openmp(monkeypatch):
    """The kernels' C compile fails (an option the compiler refuses stands for
    -fopenmp) and the OpenMP probe says the compiler has none; returns the warnings'
    match. Only this test's process state is touched."""
    monkeypatch.setattr(kernels, "_OPENMP", {})
    monkeypatch.setattr(kernels.OpenMPOp, "test_gxx_support", staticmethod(lambda: False))
    for base in (gate_module._GateBase, patches_module._PatchesBase):
        monkeypatch.setattr(base, "c_compile_args", lambda self: ["-fopenmp-not-here"])
    return "cannot build OpenMP code"


def test_without_openmp_the_ops_run_their_perform(compiler_without_openmp):
    X, GZ, A = T.fmatrix(), T.fmatrix(), T.ftensor4()
    x, gz = f32(3, 8), f32(3, 4)
    with pytest.warns(RuntimeWarning, match=compiler_without_openmp):
        fn = theano.function([X, GZ], [gate(X), GateGrad()(X, GZ)], **UNSHARED)
    thunks = kernel_thunks(fn)
    assert len(thunks) == 2 and all(hasattr(t, "perform") for t in thunks)
    out, grad = fn(x, gz)
    a, b = x[:, :4].astype(numpy.float64), x[:, 4:].astype(numpy.float64)
    t, s = numpy.tanh(a), 1 / (1 + numpy.exp(-b))
    numpy.testing.assert_allclose(out, t * s, rtol=1e-6)
    numpy.testing.assert_allclose(grad, numpy.concatenate([(1 - t * t) * s * gz,
                                                           t * s * (1 - s) * gz], axis=1),
                                  rtol=1e-5, atol=1e-6)
    # Known now: the next op goes to perform without compiling or warning again.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn2 = theano.function([A], Patches([(0, 0, 0)], (0,), (0,))(A), **UNSHARED)
    numpy.testing.assert_array_equal(fn2(f32(1, 2, 2, 3)), f32(1, 2, 2, 3).reshape(4, 3))


def test_a_compile_error_with_openmp_present_is_not_hidden(compiler_without_openmp,
                                                          monkeypatch):
    monkeypatch.setattr(kernels.OpenMPOp, "test_gxx_support", staticmethod(lambda: True))
    X = T.fmatrix()
    with pytest.raises(Exception, match="Compilation failed"):
        theano.function([X], gate(X), **UNSHARED)
