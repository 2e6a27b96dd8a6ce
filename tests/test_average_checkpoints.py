"""average_checkpoints.py: the mean of a run's checkpoints, and what it refuses."""
import contextlib
import io

import numpy
import pytest

import average_checkpoints
from lib.checkpoint import read_checkpoint, save_arrays
from models import build as builder

CONFIG = {"model": "masked", "conditional": "none", "input_dim": 1, "dim": 4,
          "num_layers": 2, "q_levels": 2}
DATA = {"dataset": "binarized-mnist", "binarization": "dynamic"}


@pytest.fixture(scope="module")
def names_and_shapes():
    """{name: shape} of CONFIG's parameters, as our checkpoints name them."""
    net = builder.build(CONFIG)
    return {n: v.shape for n, v in net.all_params.param_values().items()}


def write(path, shapes, seed, meta=None, state=False):
    """A checkpoint of random weights; ``state``: in a training state.npz's layout."""
    rng = numpy.random.RandomState(seed)
    arrays = {("param/" if state else "") + n: rng.randn(*s).astype(numpy.float32)
              for n, s in shapes.items()}
    if state:
        arrays["adam/step"] = numpy.array([seed], dtype=numpy.int64)
    save_arrays(str(path), arrays, meta=dict(CONFIG, **DATA) if meta is None else meta)
    return {n.replace("param/", ""): v for n, v in arrays.items() if not n.startswith("adam")}


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = average_checkpoints.main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def test_the_average_is_the_mean_of_every_parameter(tmp_path, names_and_shapes):
    weights = [write(tmp_path / "epoch_1.npz", names_and_shapes, 1),
               write(tmp_path / "epoch_2.npz", names_and_shapes, 2),
               write(tmp_path / "state.npz", names_and_shapes, 3, state=True)]
    out = tmp_path / "average.npz"
    code, stdout, err = run(["--out", str(out)] + [str(tmp_path / n) for n in
                                                    ("epoch_1.npz", "epoch_2.npz", "state.npz")])
    assert code == 0, err
    assert "mean of 3 checkpoints" in stdout and "--dataset binarized-mnist" in stdout
    arrays, meta = read_checkpoint(str(out))
    assert meta == dict(CONFIG, **DATA)  # evaluate.py and generate.py read the model from it
    assert sorted(arrays) == sorted(names_and_shapes)
    for name, value in arrays.items():
        assert value.dtype == numpy.float32
        expected = (weights[0][name].astype(numpy.float64) + weights[1][name]
                    + weights[2][name]) / 3
        numpy.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7)
    net = builder.build(CONFIG)  # the result loads into the model
    config, loaded = builder.read_network_checkpoint(str(out))
    builder.load_weights(net, loaded, str(out))
    assert config == CONFIG


@pytest.mark.parametrize("change, message", [
    ({"num_layers": 3}, "describe different models (num_layers 2 vs 3)"),
    ({"dataset": "mnist"}, "were trained on different data"),
])
def test_checkpoints_of_other_models_or_data_are_refused(tmp_path, names_and_shapes, change,
                                                         message):
    write(tmp_path / "a.npz", names_and_shapes, 1)
    write(tmp_path / "b.npz", names_and_shapes, 2, meta=dict(CONFIG, **dict(DATA, **change)))
    out = tmp_path / "average.npz"
    code, _, err = run(["--out", str(out), str(tmp_path / "a.npz"), str(tmp_path / "b.npz")])
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_bad_input_exits_2_and_writes_nothing(tmp_path, names_and_shapes):
    write(tmp_path / "a.npz", names_and_shapes, 1)
    a = str(tmp_path / "a.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a checkpoint")
    out = str(tmp_path / "average.npz")
    cases = [
        (["--out", out, a], "at least two checkpoints"),
        (["--out", str(tmp_path / "average.txt"), a, a], "--out must name an .npz file"),
        (["--out", a, a, str(tmp_path / "junk.npz")], "is one of the inputs"),
        (["--out", str(tmp_path / "missing" / "x.npz"), a, a], "does not exist"),
        (["--out", out, a, str(tmp_path / "junk.npz")], "junk.npz"),
        (["--out", out, a, str(tmp_path / "absent.npz")], "absent.npz"),
    ]
    for argv, message in cases:
        code, _, err = run(argv)
        assert code == 2 and message in err and "Traceback" not in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "junk.npz"]
