"""Tests of train_mnist.py on a tiny model and a few synthetic images.

Every run uses the same tiny configuration, so Theano compiles its graphs once
(cached in ~/.theano) and the runs are shared through module-scoped fixtures:

* ``straight_run``: 2 epochs straight through, with every output switched on;
* ``interrupted_run``: the same 2 epochs, stopped by SIGINT twice (mid-epoch
  and on an epoch's last step) and resumed each time.
"""
import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys

import numpy
import pytest
from PIL import Image

import lib  # noqa: F401  (configures Theano)
import theano
import theano.tensor as T

import quantize
import train_mnist
from data import mnist
from lib.checkpoint import load_arrays
from lib.training import nll_per_example
from models import build as builder
from training.stopping import Deadline
from training.trainer import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_TRAIN, NUM_TEST, BATCH = 40, 30, 10
STEPS_PER_EPOCH = NUM_TRAIN // BATCH
MODEL = {"model": "pixelconv", "input_dim": 1, "num_layers": 2, "dim": 4, "q_levels": 4}
GRID_PIXELS = (5 * (28 + 2) + 2) * 2  # 5 images of 28 px, 2 px padding, enlarged 2x


# ----- helpers ----------------------------------------------------------------------

def bar_images(rng, num):
    """(num, 28, 28) uint8 images of one to three bright bars: easy to learn."""
    out = numpy.zeros((num, 28, 28), dtype=numpy.uint8)
    for image in out:
        for _ in range(rng.randint(1, 4)):
            pos, value = rng.randint(2, 24), rng.choice([128, 255])
            if rng.rand() < 0.5:
                image[pos:pos + 3, 4:24] = value
            else:
                image[4:24, pos:pos + 3] = value
    return out


def cli(data_dir, out_dir, *extra):
    """Arguments of a tiny run reading the synthetic IDX files, validating on their
    test images (tests/test_valid_split.py covers the held-out split)."""
    return ["--num-layers", "2", "--dim", "4", "--q-levels", "4", "--batch-size", str(BATCH),
            "--data-dir", str(data_dir), "--no-verify", "--no-download", "--no-progress",
            "--valid-split", "0", "--out-dir", str(out_dir)] + list(extra)


def call_main(argv, **hooks):
    """train_mnist.main(argv) -> (exit code, stdout, stderr); argparse exits included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = train_mnist.main(argv, **hooks)
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def global_step(trainer):
    return trainer.epoch * trainer.batches_per_epoch() + trainer.iteration


def sigint_at(*steps):
    """on_step hook sending a real SIGINT to this process after the given global steps."""
    def on_step(trainer):
        if global_step(trainer) in steps:
            # Without the trainer's handler this would abort the whole test session.
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
            os.kill(os.getpid(), signal.SIGINT)
    return on_step


def poison_at(step):
    """on_step hook filling the first parameter with NaN after global step ``step``."""
    def on_step(trainer):
        if global_step(trainer) == step:
            param = trainer.params[0]
            param.set_value(numpy.full_like(param.get_value(), numpy.nan))
    return on_step


def checkpoints(out_dir, ext=".npz"):
    return sorted(n for n in os.listdir(out_dir) if n.startswith("epoch_") and n.endswith(ext))


def read_history(out_dir):
    with open(os.path.join(out_dir, "history.json")) as f:
        return json.load(f)


def adam_steps(state):
    """Adam's step count: the one scalar among the optimizer's saved variables."""
    (steps,) = [v for k, v in state.items() if k.startswith("opt/") and v.ndim == 0]
    return float(steps)


def assert_finite_state(path):
    arrays = load_arrays(path)
    for name, value in arrays.items():
        assert numpy.all(numpy.isfinite(value)), name
    return arrays


# ----- shared data and runs ---------------------------------------------------------

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A folder with the four IDX files of a tiny synthetic dataset."""
    folder = tmp_path_factory.mktemp("data")
    rng = numpy.random.RandomState(0)
    for split, num in (("train", NUM_TRAIN), ("test", NUM_TEST)):
        image_name, label_name = mnist.SPLITS[split]
        mnist.write_idx(str(folder / (image_name + ".gz")), bar_images(rng, num))
        mnist.write_idx(str(folder / (label_name + ".gz")),
                             rng.randint(0, 10, num).astype(numpy.uint8))
    return folder


@pytest.fixture(scope="module")
def dataset(data_dir):
    return mnist.load_dataset(str(data_dir), verify=False, download=False)


@pytest.fixture(scope="module")
def straight_run(data_dir, tmp_path_factory):
    """Two epochs straight through, with samples and original-format checkpoints."""
    out_dir = tmp_path_factory.mktemp("straight") / "run"
    handler = signal.getsignal(signal.SIGINT)
    code, out, err = call_main(cli(data_dir, out_dir, "--epochs", "2", "--samples-every",
                                   "1", "--save-original-format"))
    assert code == 0, err
    assert signal.getsignal(signal.SIGINT) is handler  # the handler is restored
    return out_dir, out


@pytest.fixture(scope="module")
def interrupted_run(data_dir, tmp_path_factory):
    """The same two epochs, stopped by SIGINT after steps 3 and 4 and resumed each time.

    Returns the output folder and the state files seen after each interruption.
    """
    out_dir = tmp_path_factory.mktemp("interrupted") / "run"
    code, out, err = call_main(cli(data_dir, out_dir, "--epochs", "2", "--samples-every",
                                   "0"), on_step=sigint_at(3))
    assert code == 130, err  # Ctrl-C: stopped, not finished
    assert "train_mnist.py --resume {}".format(out_dir) in out
    stops = [load_arrays(str(out_dir / "state.npz"))]
    # The saved settings (2 epochs, the data folder, --no-verify) carry over.
    code, out, err = call_main(["--resume", str(out_dir), "--no-progress"],
                               on_step=sigint_at(4))
    assert code == 130, err
    assert "resumed at epoch 1, iteration 3" in out
    assert "--epochs 2" in out and "--data-dir {}".format(data_dir) in out
    stops.append(load_arrays(str(out_dir / "state.npz")))
    code, out, err = call_main(["--resume", str(out_dir), "--epochs", "2", "--data-dir",
                                str(data_dir), "--no-progress"])
    assert code == 0, err
    return out_dir, stops


# ----- 1. learning ------------------------------------------------------------------

def test_cost_falls_on_a_fixed_batch(dataset):
    config = dict(MODEL, batch_size=BATCH, valid_batch_size=200, lr=1e-3, grad_clip=1.0,
                  seed=7)
    trainer = Trainer(config, dataset, out_dir=None, progress=False)
    x, t = trainer.train_x[:BATCH], trainer.train_t[:BATCH]
    costs = [float(trainer.train_fn(x, t)) for _ in range(30)]
    assert all(math.isfinite(c) for c in costs)
    assert costs[-1] < costs[0] - 0.05, costs


# ----- 2. checkpoints reload --------------------------------------------------------

def test_epoch_checkpoint_reloads_to_the_same_validation_nll(straight_run, dataset):
    out_dir, _ = straight_run
    history = read_history(out_dir)
    assert len(history) == 2
    numpy.random.seed(99)  # fresh weights, unlike the run's
    net = builder.build(MODEL)
    X_r = T.itensor4("X_r")
    nll_fn = theano.function([net.X, X_r], nll_per_example(net.logits, X_r))
    x, t = quantize.quantize(dataset["test_images"][..., None], MODEL["q_levels"])
    for record, name in zip(history, checkpoints(out_dir)):
        for path in (out_dir / name, out_dir / name.replace(".npz", ".pkl")):
            net.model.load_params(str(path))
            nll = float(nll_fn(x, t).sum()) / t.size
            assert nll == pytest.approx(record["valid_nll"], rel=1e-6, abs=1e-7)
            assert name == "epoch_{:03d}_val_{:.5f}.npz".format(record["epoch"],
                                                                 record["valid_nll"])


# ----- 3. interrupt and resume ------------------------------------------------------

def test_interrupts_save_resumable_states(interrupted_run):
    _, (mid_epoch, epoch_end) = interrupted_run
    # Stopped mid-epoch after step 3 of 4: the epoch goes on from there.
    assert (int(mid_epoch["epoch"]), int(mid_epoch["iteration"])) == (0, 3)
    assert int(mid_epoch["epoch_cost_count"]) == 3
    assert adam_steps(mid_epoch) == 3  # Adam's step count
    # Stopped on an epoch's last step: the epoch is finished (validated, saved) first.
    assert (int(epoch_end["epoch"]), int(epoch_end["iteration"])) == (1, 0)
    assert adam_steps(epoch_end) == STEPS_PER_EPOCH


def test_a_resumed_epoch_counts_the_seconds_before_the_interruption(interrupted_run):
    out_dir, (mid_epoch, epoch_end) = interrupted_run
    before = float(mid_epoch["epoch_seconds"])  # steps 1-3 of epoch 1, first process
    assert before > 0
    assert float(epoch_end["epoch_seconds"]) == 0  # saved as epoch 2 began
    first = read_history(out_dir)[0]["epoch_seconds"]
    assert first > before  # step 4 in the second process, added to steps 1-3


def test_resumed_run_equals_straight_run(straight_run, interrupted_run):
    straight = load_arrays(str(straight_run[0] / "state.npz"))
    resumed = load_arrays(str(interrupted_run[0] / "state.npz"))
    assert sorted(straight) == sorted(resumed)
    assert any(k.startswith("opt/") for k in straight)
    assert adam_steps(straight) == 2 * STEPS_PER_EPOCH
    for key in straight:
        numpy.testing.assert_allclose(resumed[key], straight[key], rtol=0, atol=1e-6,
                                      err_msg=key)
    keys = ("epoch", "train_nll", "valid_nll")
    numpy.testing.assert_allclose(
        [[h[k] for k in keys] for h in read_history(interrupted_run[0])],
        [[h[k] for k in keys] for h in read_history(straight_run[0])], rtol=1e-6)
    assert checkpoints(interrupted_run[0]) == checkpoints(straight_run[0])


def test_time_budget_stop_resumes_to_the_straight_run(straight_run, data_dir, tmp_path,
                                                      monkeypatch):
    """A run whose --time-budget runs out mid-epoch saves a state; resumed, it ends
    with the same parameters as the run that went straight through."""
    out_dir = tmp_path / "run"
    steps = []
    monkeypatch.setattr(Deadline, "__call__", lambda self: len(steps) >= 3)
    code, out, err = call_main(cli(data_dir, out_dir, "--epochs", "2", "--samples-every", "1",
                                   "--save-original-format", "--time-budget", "600"),
                               on_step=lambda trainer: steps.append(global_step(trainer)))
    assert code == 0, err
    assert "The time budget is spent" in out and "--resume {}".format(out_dir) in out
    state = load_arrays(str(out_dir / "state.npz"))
    assert (int(state["epoch"]), int(state["iteration"])) == (0, 3)
    monkeypatch.undo()
    code, out, err = call_main(["--resume", str(out_dir), "--no-progress"])
    assert code == 0, err
    assert "Done: 2 epochs" in out
    straight = load_arrays(str(straight_run[0] / "state.npz"))
    resumed = load_arrays(str(out_dir / "state.npz"))
    for key in straight:
        numpy.testing.assert_allclose(resumed[key], straight[key], rtol=0, atol=1e-6,
                                      err_msg=key)


def test_deadline_keeps_a_reserve():
    deadline = Deadline(10, start=1000.0)   # 600 s, reserve 60 s
    assert deadline.end == pytest.approx(1540.0)
    deadline = Deadline(600, start=0.0)     # reserve capped at 3 minutes
    assert deadline.end == pytest.approx(36000.0 - 180.0)


# ----- 4. NaN -----------------------------------------------------------------------

@pytest.mark.parametrize("state_every, message", [
    ("0", "the training cost became nan"),         # caught by the next step's cost
    ("2", "became NaN or infinite"),               # caught before the state is saved
])
def test_nan_stops_and_keeps_the_last_good_state(data_dir, tmp_path, state_every, message):
    out_dir = tmp_path / "run"
    poisoned_step = STEPS_PER_EPOCH + 2  # epoch 2, iteration 2
    code, out, err = call_main(cli(data_dir, out_dir, "--epochs", "2", "--samples-every",
                                   "0", "--state-every", state_every),
                               on_step=poison_at(poisoned_step))
    assert code == 1
    assert message in err and "Traceback" not in err
    assert "state.npz" in err
    state = assert_finite_state(str(out_dir / "state.npz"))
    assert (int(state["epoch"]), int(state["iteration"])) == (1, 0)
    assert checkpoints(out_dir) != [] and len(checkpoints(out_dir)) == 1
    last_good = load_arrays(str(out_dir / checkpoints(out_dir)[0]))
    for name, value in last_good.items():
        numpy.testing.assert_array_equal(state["param/" + name], value)
    assert [h["epoch"] for h in read_history(out_dir)] == [1]


# ----- 5. command line --------------------------------------------------------------

def test_defaults_are_the_originals():
    args, given = train_mnist.parse_args([])
    assert given == {}
    assert (args.num_layers, args.dim, args.q_levels) == (10, 32, 4)
    assert (args.batch_size, args.valid_batch_size) == (100, 200)
    assert (args.lr, args.grad_clip) == (1e-3, 1.0)
    assert args.dataset == "mnist" and args.resume is None


def test_help_explains_every_option():
    code, out, _ = call_main(["--help"])
    assert code == 0
    for option in ("--num-layers", "--dim", "--q-levels", "--batch-size",
                   "--valid-batch-size", "--lr", "--grad-clip", "--epochs", "--seed",
                   "--out-dir", "--train-limit", "--valid-limit", "--data-dir", "--dataset",
                   "--resume", "--save-original-format", "--no-verify", "--no-download"):
        assert option in out, option
    for action in train_mnist.build_parser()._actions:
        assert action.help, action.option_strings


@pytest.mark.parametrize("argv, option", [
    (["--q-levels", "1"], "Q_LEVELS"),
    (["--num-layers", "1"], "--num-layers must be at least 2 for --model pixelconv"),
    (["--model", "rowlstm", "--num-layers", "0"], "at least 1 for --model rowlstm"),
    (["--model", "masked", "--num-layers", "-1"], "at least 0 for --model masked"),
    (["--batch-size", "0"], "--batch-size"),
    (["--lr", "0"], "--lr"),
    (["--train-limit", "0"], "--train-limit"),
    (["--encoder-convs", "0"], "--encoder-convs must be at least 1"),
    (["--encoder-dim", "0"], "--encoder-dim must be at least 1"),
    (["--condition-map", "-1"], "--condition-map must be at least 0"),
    (["--model", "gated", "--condition-map", "4"], "--condition-map needs a condition"),
    (["--dataset", "cifar"], "--dataset"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2 ** 32)], "--seed"),
    (["--resume", "somewhere", "--out-dir", "elsewhere"], "--out-dir"),
])
def test_invalid_arguments_exit_2(argv, option):
    code, out, err = call_main(argv)
    assert code == 2
    assert "error" in err and option in err


def test_unwritable_out_dir_is_reported_before_training(data_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = subprocess.run(
        [sys.executable, "train_mnist.py"] + cli(data_dir, blocker / "run"),
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "cannot write to output folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Compiling" not in proc.stdout  # nothing was compiled, let alone trained


def test_missing_dataset_is_reported(tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    code, out, err = call_main(cli(empty, tmp_path / "run"))
    assert code == 2
    assert "train-images-idx3-ubyte" in err and "Traceback" not in err
    assert "Compiling" not in out
    assert not (tmp_path / "run").exists()  # a failed start leaves no folder behind


def test_data_folder_that_is_a_file_is_named(tmp_path):
    not_a_folder = tmp_path / "mnist.tar"
    not_a_folder.write_text("")
    code, out, err = call_main(cli(not_a_folder, tmp_path / "run"))
    assert code == 2 and "is a file, not a folder" in err


def test_ctrl_c_while_compiling_saves_nothing_and_says_so(data_dir, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(train_mnist, "Trainer", interrupted)
    code, out, err = call_main(cli(data_dir, tmp_path / "run"))
    assert code == 130
    assert "nothing was saved" in err and "state is kept" not in err
    assert not (tmp_path / "run").exists()


def test_resume_refuses_settings_it_cannot_change(straight_run, data_dir):
    out_dir, _ = straight_run
    before = (out_dir / "state.npz").read_bytes()
    code, out, err = call_main(["--resume", str(out_dir), "--dim", "8", "--grad-clip", "0.5"])
    assert code == 2
    assert "cannot change --dim, --grad-clip" in err and "Compiling" not in out
    # the same value as saved is no change, and more epochs are allowed
    code, out, err = call_main(["--resume", str(out_dir), "--dim", "4", "--epochs", "2",
                                "--no-progress"])
    assert code == 0 and "already holds 2 epochs" in out, err
    assert (out_dir / "state.npz").read_bytes() == before


def test_resume_may_lower_the_learning_rate(straight_run, tmp_path):
    """--lr on --resume: the next epochs take smaller steps, config.json keeps the
    new rate and history.json records each epoch's."""
    import shutil
    out_dir = tmp_path / "copy"
    shutil.copytree(str(straight_run[0]), str(out_dir))
    code, out, err = call_main(["--resume", str(out_dir), "--epochs", "3", "--lr", "1e-5",
                                "--samples-every", "0", "--no-progress"])
    assert code == 0, err
    assert "learning rate 1e-05 from here on (it was 0.001)" in out
    assert [h["lr"] for h in read_history(out_dir)] == [1e-3, 1e-3, 1e-5]
    with open(str(out_dir / "config.json")) as f:
        assert json.load(f)["lr"] == 1e-5
    weights = [builder.read_network_checkpoint(str(out_dir / name))[1]
               for name in checkpoints(out_dir)]

    def moved(a, b):
        return sum(float(numpy.abs(a[k] - b[k]).sum()) for k in a)
    # Adam's steps scale with the rate: epoch 3 (1e-5) moves about 1/100 as far as epoch 2
    assert 0 < moved(weights[2], weights[1]) < 0.1 * moved(weights[1], weights[0])


def test_damaged_state_is_found_before_compiling(straight_run, tmp_path):
    import shutil
    out_dir = tmp_path / "copy"
    shutil.copytree(str(straight_run[0]), str(out_dir))
    state = out_dir / "state.npz"
    state.write_bytes(state.read_bytes()[:1000])
    code, out, err = call_main(["--resume", str(out_dir), "--epochs", "3"])
    assert code == 2 and "Compiling" not in out
    assert "state.npz" in err and "epoch_002_val_" in err and "Traceback" not in err


def test_fresh_run_refuses_a_folder_holding_a_run(straight_run, data_dir):
    out_dir, _ = straight_run
    before = (out_dir / "state.npz").read_bytes()
    code, _, err = call_main(cli(data_dir, out_dir))
    assert code == 2 and "--resume" in err
    assert (out_dir / "state.npz").read_bytes() == before


def test_resume_needs_a_run(tmp_path):
    code, _, err = call_main(["--resume", str(tmp_path)])
    assert code == 2 and "no resumable run" in err


# ----- 6. per-epoch outputs ---------------------------------------------------------

def test_per_epoch_outputs(straight_run):
    out_dir, out = straight_run
    assert "Training: epoch 1, iter 1, cost" in out
    assert len(checkpoints(out_dir)) == 2 and len(checkpoints(out_dir, ".pkl")) == 2
    for epoch in (1, 2):
        for kind in ("samples", "reconstructions"):
            with Image.open(str(out_dir / "epoch_{:03d}_{}.png".format(epoch, kind))) as im:
                assert im.size == (GRID_PIXELS, GRID_PIXELS)
    history = read_history(out_dir)
    assert [h["epoch"] for h in history] == [1, 2]
    for h in history:
        assert h["valid_bits_per_dim"] == pytest.approx(h["valid_nll"] / math.log(2))
        assert h["valid_nats_per_image"] == pytest.approx(h["valid_nll"] * 784)
        assert 0 < h["valid_nll"] < 2 and math.isfinite(h["train_nll"])
        assert "{:.5f} bits/dim".format(h["valid_bits_per_dim"]) in out
    with Image.open(str(out_dir / "curves.png")) as im:
        assert im.format == "PNG" and im.size[0] > 100
    with open(str(out_dir / "config.json")) as f:
        assert json.load(f)["num_layers"] == 2


# ----- 7. binarized MNIST -----------------------------------------------------------

def test_binarized_mnist_trains_on_fresh_bits_every_epoch(data_dir, tmp_path):
    """--dataset binarized-mnist: Q_LEVELS 2, training bits drawn afresh per epoch,
    the same test bits for every validation."""
    seen = {}

    def record(trainer):
        seen.setdefault(trainer.epoch, (trainer.train_t.copy(), trainer.valid_t.copy()))
    out_dir = tmp_path / "run"
    argv = cli(data_dir, out_dir)
    del argv[argv.index("--q-levels"):argv.index("--q-levels") + 2]
    code, out, err = call_main(argv + ["--dataset", "binarized-mnist", "--epochs", "2",
                                       "--samples-every", "0"], on_step=record)
    assert code == 0, err
    assert "dynamic binarization" in out and "not the same" in out
    (train1, valid1), (train2, valid2) = seen[0], seen[1]
    assert set(numpy.unique(train1)) == {0, 1} and (train1 != train2).any()
    numpy.testing.assert_array_equal(valid1, valid2)
    with open(str(out_dir / "config.json")) as f:
        assert json.load(f)["q_levels"] == 2
    code, _, err = call_main(argv + ["--dataset", "binarized-mnist", "--q-levels", "4"])
    assert code == 2 and "leave out --q-levels 4" in err
