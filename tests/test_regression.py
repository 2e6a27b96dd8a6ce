"""Regression against outputs recorded from the original code (tests/fixtures/README.md)."""
import numpy
import pytest
import theano
import theano.tensor as T

from lib import CheckpointError
from lib.training import clipped_adam
from quantize import quantize
from tests.compiling import compile_light
from tests.conftest import build_as_original, fixture_path, load_json

RTOL, ATOL = 1e-4, 1e-6  # the fixtures README's tolerances


def config_of(recorded):
    c = recorded["config"]
    return c["DIM"], c["num_layers"], c["Q_LEVELS"]


@pytest.fixture(scope="module")
def small(small_fixture):
    """The small model with the recorded weights and one compiled function that returns
    probs, cost and gradients and applies one clipped Adam step."""
    recorded, arrays = small_fixture
    model, layer, X, X_r, probs, cost = build_as_original(*config_of(recorded))
    params = model.get_params()
    updates, adam_state = clipped_adam(cost, params, learning_rate=1e-3, grad_clip=1.0)
    step = theano.function([X, X_r], [probs, cost] + T.grad(cost, params), updates=updates)

    def run(load):
        """Load weights with ``load(model)``, reset Adam, run one step."""
        load(model)
        for v in adam_state:
            v.set_value(numpy.zeros_like(v.get_value()))
        out = step(arrays["X"], arrays["X_r"])
        return out[0], out[1], dict(zip([p.name for p in params], out[2:])), \
            {p.name: p.get_value() for p in params}

    return recorded, arrays, model, layer, run


def load_recorded(arrays):
    return lambda model: model.set_param_values(
        {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")})


@pytest.mark.parametrize("name", ["mnist_small.json", "mnist_dim32_l10_shapes.json",
                                  "mnist_dim32_l12_shapes.json"])
def test_parameter_names_order_and_shapes(name):
    recorded = load_json(name)
    model = build_as_original(*config_of(recorded))[0]
    assert [p.name for p in model.get_params()] == recorded["param_order"]
    shapes = {p.name: list(p.get_value().shape) for p in model.get_params()}
    assert shapes == recorded["param_shapes"]
    total = sum(int(numpy.prod(s)) for s in recorded["param_shapes"].values())
    assert model.count_params() == total
    if "total_params" in recorded:  # what the original printed
        assert model.count_params() == recorded["total_params"]


@pytest.mark.parametrize("name", ["mnist_small.json", "mnist_dim32_l10_shapes.json",
                                  "mnist_dim32_l12_shapes.json"])
def test_conv_output_shapes_before_cropping(name):
    recorded = load_json(name)
    c = recorded["config"]
    model, layer, X, X_r, probs, cost = build_as_original(*config_of(recorded))
    names = list(recorded["conv_output_shapes"])
    assert sorted(names) == sorted(layer.convs)
    # Only the shapes are asked for; the light optimizer compiles them in a fraction
    # of the default mode's time.
    shapes_fn = compile_light([X], [layer.convs[n].output().shape for n in names] +
                              [probs.shape])
    x = numpy.zeros((c["batch"], c["height"], c["width"]), dtype="float32")
    got = [list(s) for s in shapes_fn(x)]
    assert dict(zip(names, got[:-1])) == recorded["conv_output_shapes"]
    assert got[-1] == recorded["probs_shape"]


def test_inputs_are_quantised_like_the_original(small_fixture):
    recorded, arrays = small_fixture
    x, targets = quantize(arrays["raw_uint8"], recorded["config"]["Q_LEVELS"])
    numpy.testing.assert_array_equal(x, arrays["X"])
    numpy.testing.assert_array_equal(targets, arrays["X_r"])


def test_outputs_cost_gradients_and_one_adam_step(small):
    recorded, arrays, model, layer, run = small
    probs, cost, grads, after = run(load_recorded(arrays))
    assert probs.shape == tuple(recorded["probs_shape"])
    numpy.testing.assert_allclose(probs, arrays["probs"], rtol=RTOL, atol=ATOL)
    numpy.testing.assert_allclose(cost, arrays["cost"], rtol=RTOL, atol=ATOL)
    numpy.testing.assert_allclose(cost, recorded["cost_nats_per_subpixel"], rtol=RTOL)
    assert set(grads) == {k[len("grad/"):] for k in arrays if k.startswith("grad/")}
    for name, g in grads.items():
        numpy.testing.assert_allclose(g, arrays["grad/" + name], rtol=RTOL, atol=ATOL,
                                      err_msg=name)
    for name, value in after.items():
        numpy.testing.assert_allclose(value, arrays["adam_step1/" + name], rtol=0, atol=ATOL,
                                      err_msg=name)


def test_python2_checkpoint_of_the_original_gives_the_same_outputs(small):
    recorded, arrays, model, layer, run = small
    probs, cost, grads, after = run(lambda m: m.load_params(
        fixture_path("mnist_small_params_py2.pkl")))
    numpy.testing.assert_allclose(probs, arrays["probs"], rtol=RTOL, atol=ATOL)
    numpy.testing.assert_allclose(cost, arrays["cost"], rtol=RTOL, atol=ATOL)
    for name, value in after.items():
        numpy.testing.assert_allclose(value, arrays["adam_step1/" + name], rtol=0, atol=ATOL)


def test_our_checkpoint_round_trips_to_the_same_outputs(small, tmp_path):
    recorded, arrays, model, layer, run = small
    load_recorded(arrays)(model)
    path = str(tmp_path / "ours.npz")
    model.save_params(path)
    for p in model.get_params():  # scramble, then load back
        p.set_value(numpy.ones_like(p.get_value()))
    probs, cost, grads, after = run(lambda m: m.load_params(path))
    numpy.testing.assert_allclose(probs, arrays["probs"], rtol=RTOL, atol=ATOL)


def test_original_format_written_by_us_loads_in_the_original_way(small, tmp_path):
    import pickle
    recorded, arrays, model, layer, run = small
    load_recorded(arrays)(model)
    path = str(tmp_path / "orig.pkl")
    model.save_params(path, original_format=True)
    with open(path, "rb") as f:
        loaded = pickle.load(f)  # what the original load_params does
    assert set(loaded) == set(recorded["param_order"])
    for name in loaded:
        numpy.testing.assert_array_equal(loaded[name], arrays["param/" + name])


def test_initialiser_reproduces_the_recorded_weights():
    """Same seed, same draws: the original initialiser (numpy.random after seed 1234)."""
    recorded, arrays = load_json("mnist_small.json"), numpy.load(fixture_path("mnist_small.npz"))
    numpy.random.seed(1234)
    model = build_as_original(*config_of(recorded))[0]
    for p in model.get_params():
        numpy.testing.assert_allclose(p.get_value(), arrays["param/" + p.name], rtol=1e-6,
                                      err_msg=p.name)


def test_mismatched_checkpoint_lists_every_problem(small_fixture, tmp_path):
    recorded, arrays = small_fixture
    model = build_as_original(*config_of(recorded))[0]
    values = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    del values["MNIST.pixelCNN.pxCNN.vstack2.b"]
    del values["MNIST.pixelCNN.pxCNN.v2h3.filter"]
    values["MNIST.pixelCNN.pxCNN.extra.b"] = numpy.zeros(3, "float32")
    values["MNIST.pixelCNN.pxCNN.hstack1.filter"] = numpy.zeros((8, 9, 1, 5), "float32")
    path = str(tmp_path / "bad.npz")
    numpy.savez(path, **values)
    before = {p.name: p.get_value() for p in model.get_params()}
    with pytest.raises(CheckpointError) as err:
        model.load_params(path)
    message = str(err.value)
    for text in ("missing (2)", "vstack2.b", "v2h3.filter", "unexpected (1)", "extra.b",
                 "mis-shaped (1)", "hstack1.filter: checkpoint (8, 9, 1, 5) vs model (8, 9, 1, 7)"):
        assert text in message
    for p in model.get_params():  # nothing half-loaded
        numpy.testing.assert_array_equal(p.get_value(), before[p.name])


def test_model_print_params_lists_every_parameter_and_the_total():
    """One line per parameter in the original's order with its number of values, then
    the total (the recorded shapes of the small model)."""
    recorded = load_json("mnist_small.json")
    model = build_as_original(*config_of(recorded))[0]
    lines = []
    total = model.print_params(out=lines.append)
    sizes = [int(numpy.prod(recorded["param_shapes"][name])) for name in recorded["param_order"]]
    assert total == sum(sizes)
    assert lines[:-2] == ["{} ({})".format(name, size)
                          for name, size in zip(recorded["param_order"], sizes)]
    assert lines[-2] == "total number of parameters: {}".format(total)
