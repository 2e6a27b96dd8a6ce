"""average_checkpoints.py: the mean of a run's checkpoints, and what it refuses."""
import contextlib
import gc
import io
import json
import sys

import numpy
import pytest

import average_checkpoints
from lib.checkpoint import describe_weights, read_checkpoint, save_arrays
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
    # evaluate.py and generate.py read the model from it, and it says what it holds
    assert meta == dict(CONFIG, mean_of=3, **DATA)
    assert describe_weights(meta) == "the mean of 3 checkpoints (average_checkpoints.py)"
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


# ----- what it refuses: duplicates, mixed splits, bad weights; the user's --out -------

SPLIT = {"valid_split": 10000, "train_limit": None}


def paths(*files):
    return [str(f) for f in files]


def assert_refused(code, err, *words):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert ".tmp-" not in err
    for word in words:
        assert word in err, (word, err)


def test_the_same_file_reached_twice_is_refused(tmp_path, names_and_shapes):
    (tmp_path / "A").mkdir()
    write(tmp_path / "A" / "x.npz", names_and_shapes, 1)
    write(tmp_path / "y.npz", names_and_shapes, 2)
    (tmp_path / "link.npz").symlink_to(tmp_path / "A" / "x.npz")
    out = tmp_path / "average.npz"
    for other in (tmp_path / "A" / ".." / "A" / "x.npz", tmp_path / "link.npz"):
        code, _, err = run(["--out", str(out)] + paths(tmp_path / "A" / "x.npz",
                                                       tmp_path / "y.npz", other))
        assert_refused(code, err, "are the same file", "give each checkpoint once")
    assert not out.exists()


def test_an_epoch_checkpoint_with_its_runs_state_is_refused(tmp_path, names_and_shapes):
    """A run's state.npz holds the weights of its last epoch_*.npz: counted twice."""
    write(tmp_path / "epoch_001.npz", names_and_shapes, 1)
    write(tmp_path / "epoch_002.npz", names_and_shapes, 2)
    write(tmp_path / "state.npz", names_and_shapes, 2, state=True)
    out = tmp_path / "average.npz"
    code, _, err = run(["--out", str(out)] + paths(*(tmp_path / n for n in (
        "epoch_001.npz", "epoch_002.npz", "state.npz"))))
    assert_refused(code, err, "epoch_002.npz and ", "state.npz hold the same weights")
    assert not out.exists()


@pytest.mark.parametrize("value", [numpy.nan, numpy.inf])
def test_weights_that_are_not_finite_are_refused(tmp_path, names_and_shapes, value):
    write(tmp_path / "a.npz", names_and_shapes, 1)
    weights = write(tmp_path / "b.npz", names_and_shapes, 2)
    name = sorted(weights)[-1]
    weights[name].flat[3] = value
    save_arrays(str(tmp_path / "b.npz"), weights, meta=dict(CONFIG, **DATA))
    out = tmp_path / "average.npz"
    code, _, err = run(["--out", str(out)] + paths(tmp_path / "a.npz", tmp_path / "b.npz"))
    assert_refused(code, err, "b.npz: {} holds NaN or infinite values".format(name),
                   "leave it out")
    assert not out.exists()


def test_parameters_that_are_not_the_models_are_refused(tmp_path, names_and_shapes):
    """Two inputs that agree with each other, not with the model they describe."""
    wrong = dict(names_and_shapes)
    name = sorted(wrong)[0]
    wrong[name] = tuple(d + 1 for d in wrong[name])
    write(tmp_path / "a.npz", wrong, 1)
    write(tmp_path / "b.npz", wrong, 2)
    out = tmp_path / "average.npz"
    code, _, err = run(["--out", str(out)] + paths(tmp_path / "a.npz", tmp_path / "b.npz"))
    assert_refused(code, err, "do not hold the parameters of the masked model they describe",
                   "{} {} instead of {}".format(name, wrong[name], names_and_shapes[name]))
    assert not out.exists()


def write_run_config(folder, **settings):
    """A run's config.json for CONFIG in ``folder`` (train_mnist.py's keys)."""
    config = dict(CONFIG, batch_size=2, lr=0.001, seed=1, **DATA, **settings)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("split_a, split_b, words", [
    ({"valid_split": 10000, "train_limit": None}, {"valid_split": 5000, "train_limit": None},
     ["were trained on different data (valid_split 10000 vs 5000)"]),
    ({"valid_split": 10000, "train_limit": None}, {"valid_split": 10000, "train_limit": 1000},
     ["(train_limit None vs 1000)"]),
    # b's split is not recorded and no run's config.json sits beside it
    ({"valid_split": 10000, "train_limit": None}, None,
     ["b.npz does not record the training images it held out",
      "put its run's config.json beside it, or leave it out"]),
])
def test_checkpoints_of_other_splits_are_refused(tmp_path, names_and_shapes, split_a,
                                                 split_b, words):
    (tmp_path / "runs").mkdir()
    write(tmp_path / "a.npz", names_and_shapes, 1, meta=dict(CONFIG, **DATA, **split_a))
    write(tmp_path / "runs" / "b.npz", names_and_shapes, 2,
          meta=dict(CONFIG, **DATA, **(split_b or {})))
    out = tmp_path / "average.npz"
    code, _, err = run(["--out", str(out)] + paths(tmp_path / "a.npz",
                                                   tmp_path / "runs" / "b.npz"))
    assert_refused(code, err, *words)
    assert not out.exists()


def test_averaged_checkpoints_keep_their_common_ema(tmp_path, names_and_shapes):
    """Epochs of a run with --ema (different step counts, same decay) average, and the
    mean records that decay; with raw weights among them it records none."""
    for epoch, (decay, steps) in enumerate(((0.999, 10), (0.999, 20), (0.0, 0)), 1):
        write(tmp_path / "epoch_{}.npz".format(epoch), names_and_shapes, epoch,
              meta=dict(CONFIG, **DATA, ema=decay, ema_steps=steps))
    out = tmp_path / "average.npz"
    code, _, err = run(["--out", str(out)] + paths(tmp_path / "epoch_1.npz",
                                                   tmp_path / "epoch_2.npz"))
    assert code == 0, err
    meta = read_checkpoint(str(out))[1]
    assert meta == dict(CONFIG, **DATA, mean_of=2, ema=0.999)
    assert describe_weights(meta) == ("the mean of 2 checkpoints (average_checkpoints.py), "
                                      "each a moving average of its run's weights "
                                      "(--ema 0.999)")
    code, _, err = run(["--out", str(out), "--force"] + paths(
        tmp_path / "epoch_1.npz", tmp_path / "epoch_2.npz", tmp_path / "epoch_3.npz"))
    assert code == 0, err
    assert read_checkpoint(str(out))[1] == dict(CONFIG, **DATA, mean_of=3)


def test_older_checkpoints_take_the_split_of_their_runs_config(tmp_path, names_and_shapes):
    """Inputs without a recorded split, in run folders: their config.json says it, the
    runs must agree, and the average records it."""
    for seed, (run_name, held_out) in enumerate((("one", 5000), ("two", 5000), ("three", 0))):
        (tmp_path / run_name).mkdir()
        write_run_config(tmp_path / run_name, valid_split=held_out, train_limit=None)
        write(tmp_path / run_name / "epoch_001.npz", names_and_shapes, seed)
    out = tmp_path / "average.npz"
    code, _, err = run(["--out", str(out)] + paths(tmp_path / "one" / "epoch_001.npz",
                                                   tmp_path / "three" / "epoch_001.npz"))
    assert_refused(code, err, "(valid_split 5000 vs 0)")
    code, _, err = run(["--out", str(out)] + paths(tmp_path / "one" / "epoch_001.npz",
                                                   tmp_path / "two" / "epoch_001.npz"))
    assert code == 0, err
    assert read_checkpoint(str(out))[1] == dict(CONFIG, **DATA, valid_split=5000,
                                                train_limit=None, mean_of=2)


def snapshot(folder):
    """{name: (bytes, mode)} of the files in ``folder``."""
    return {p.name: (p.read_bytes(), p.stat().st_mode) for p in sorted(folder.iterdir())
            if p.is_file()}


def test_an_existing_out_is_kept_unless_force(tmp_path, names_and_shapes):
    write(tmp_path / "a.npz", names_and_shapes, 1)
    write(tmp_path / "b.npz", names_and_shapes, 2)
    out = tmp_path / "average.npz"
    out.write_bytes(b"the user's file")
    inputs = paths(tmp_path / "a.npz", tmp_path / "b.npz")
    before = snapshot(tmp_path)
    code, _, err = run(["--out", str(out)] + inputs)
    assert_refused(code, err, "--out {} exists: give --force".format(out))
    assert snapshot(tmp_path) == before
    code, _, err = run(["--out", str(out), "--force"] + inputs)
    assert code == 0, err
    assert sorted(read_checkpoint(str(out))[0]) == sorted(names_and_shapes)


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_a_read_only_out_or_a_runs_state_is_never_replaced(tmp_path, names_and_shapes, force):
    write(tmp_path / "a.npz", names_and_shapes, 1)
    write(tmp_path / "b.npz", names_and_shapes, 2)
    (tmp_path / "run").mkdir()
    write(tmp_path / "run" / "state.npz", names_and_shapes, 3, state=True)
    read_only = tmp_path / "shipped.npz"
    write(read_only, names_and_shapes, 4)
    read_only.chmod(0o444)
    inputs = paths(tmp_path / "a.npz", tmp_path / "b.npz")
    before, in_run = snapshot(tmp_path), snapshot(tmp_path / "run")
    code, _, err = run(["--out", str(read_only)] + force + inputs)
    assert_refused(code, err, "--out {} exists and is read-only: it is kept".format(read_only))
    code, _, err = run(["--out", str(tmp_path / "run" / "state.npz")] + force + inputs)
    assert_refused(code, err, "is a run's resumable state", "write the average to another file")
    assert snapshot(tmp_path) == before and snapshot(tmp_path / "run") == in_run


def test_a_failed_write_names_the_users_path_and_leaves_nothing(tmp_path, names_and_shapes,
                                                                monkeypatch):
    import lib.checkpoint
    write(tmp_path / "a.npz", names_and_shapes, 1)
    write(tmp_path / "b.npz", names_and_shapes, 2)

    def replace(source, target):
        raise PermissionError(13, "Permission denied", source)

    monkeypatch.setattr(lib.checkpoint.os, "replace", replace)
    out = tmp_path / "average.npz"
    code, _, err = run(["--out", str(out)] + paths(tmp_path / "a.npz", tmp_path / "b.npz"))
    assert_refused(code, err, "cannot write --out {}: Permission denied".format(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz"]


@pytest.mark.parametrize("stage", ["reading", "writing"])
def test_ctrl_c_exits_130_in_one_line_and_changes_no_file(tmp_path, names_and_shapes,
                                                          monkeypatch, stage):
    """Interrupted while reading an input or writing the average (over an existing
    --out, with --force): one line, exit 130, the folder as it was."""
    from numpy.lib import format as npy_format
    write(tmp_path / "a.npz", names_and_shapes, 1)
    write(tmp_path / "b.npz", names_and_shapes, 2)
    out = tmp_path / "average.npz"
    out.write_bytes(b"the user's file")
    before = snapshot(tmp_path)
    name = "read_array" if stage == "reading" else "write_array"
    original, calls = getattr(npy_format, name), []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt()
        return original(*args, **kwargs)

    monkeypatch.setattr(npy_format, name, interrupted)
    ignored = []  # what Python would print as "Exception ignored in ..."
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    code, stdout, err = run(["--out", str(out), "--force"] + paths(tmp_path / "a.npz",
                                                                   tmp_path / "b.npz"))
    gc.collect()  # a zip file left open would complain by now ("seek of closed file")
    assert len(calls) == 3 and ignored == []
    assert code == 130 and stdout == ""
    assert err == "aborted (Ctrl-C) before {} was written; no file was changed\n".format(out)
    assert snapshot(tmp_path) == before
