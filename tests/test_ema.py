"""Tests of the weight average (--ema) and the per-step learning-rate schedule
(--lr-decay, --lr-floor) of train_mnist.py, on test_train.py's tiny model and data.

Every run with averaging uses the same settings (SCHEDULE), so Theano builds
one graph for them; the runs are shared through module-scoped fixtures:

* ``ema_run``: 2 epochs (8 steps) straight through, recording every step;
* ``interrupted_ema_run``: the same, stopped by SIGINT twice and resumed.
"""
import re
import shutil

import numpy
import pytest

import evaluate
from lib.checkpoint import describe_weights, load_arrays, read_checkpoint, save_arrays
from lib.training import WeightAverage
from models import build as builder
from training import schedule
from tests.test_train import (STEPS_PER_EPOCH, call_main, checkpoints, cli, data_dir,  # noqa: F401
                              read_history, sigint_at)

LR, DECAY, FLOOR, EMA = 3e-3, 0.8, 1e-3, 0.8
SCHEDULE = ["--lr", str(LR), "--lr-decay", str(DECAY), "--lr-floor", str(FLOOR),
            "--ema", str(EMA)]


def recorder(steps):
    """on_step hook appending (rate of the step, float32 rate given to Adam, the raw
    parameters it left) to ``steps``."""
    def on_step(trainer):
        steps.append((trainer.last_rate, float(trainer.rate.get_value()),
                      {p.name: p.get_value() for p in trainer.params}))
    return on_step


def hand_average(params, decay):
    """The bias-corrected average of the parameter dicts ``params`` (one per step),
    in float64: sum_k (1 - d) d^(n-k) p_k / (1 - d^n)."""
    n = len(params)
    return {name: sum((1 - decay) * decay ** (n - k) * p[name].astype(numpy.float64)
                      for k, p in enumerate(params, 1)) / (1 - decay ** n)
            for name in params[0]}


def assert_close(actual, expected, names):
    for name in names:
        numpy.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-7,
                                      err_msg=name)


@pytest.fixture(scope="module")
def ema_run(data_dir, tmp_path_factory):  # noqa: F811
    out_dir = tmp_path_factory.mktemp("ema") / "run"
    steps = []
    code, out, err = call_main(cli(data_dir, out_dir, "--epochs", "2", "--samples-every", "1",
                                   *SCHEDULE), on_step=recorder(steps))
    assert code == 0, err
    return out_dir, steps


@pytest.fixture(scope="module")
def interrupted_ema_run(data_dir, tmp_path_factory):  # noqa: F811
    out_dir = tmp_path_factory.mktemp("ema_interrupted") / "run"
    code, out, err = call_main(cli(data_dir, out_dir, "--epochs", "2", "--samples-every", "1",
                                   *SCHEDULE), on_step=sigint_at(3))
    assert code == 130, err
    for stop in (sigint_at(4), None):  # mid-epoch, then on the epoch's last step
        code, out, err = call_main(["--resume", str(out_dir), "--no-progress"], on_step=stop)
        assert code == (130 if stop else 0), err
    return out_dir


# ----- the schedule -----------------------------------------------------------------

def expected_rate(step):
    return max(FLOOR, LR * DECAY ** step)


def test_rate_values():
    s = schedule.start({"lr": 1e-3, "lr_decay": 0.999977, "lr_floor": 0.0})
    assert schedule.rate_at(s, 0) == 1e-3
    assert schedule.rate_at(s, 100000) == pytest.approx(1e-3 * 0.999977 ** 100000)
    assert schedule.rate_at(s, 100000) == pytest.approx(1.0026e-4, rel=1e-4)
    s = schedule.start({"lr": 1e-3, "lr_decay": 0.5, "lr_floor": 2e-4})
    assert [schedule.rate_at(s, k) for k in range(4)] == [1e-3, 5e-4, 2.5e-4, 2e-4]
    constant = schedule.start({"lr": 1e-3})  # the settings of runs before schedules
    assert schedule.rate_at(constant, 10 ** 6) == 1e-3
    assert schedule.from_array(schedule.to_array(s)) == s
    with pytest.raises(ValueError, match="4 finite numbers"):
        schedule.from_array([0.0, 1e-3, numpy.nan, 0.0])


def test_resume_precedence():
    saved = {"lr": 1e-3, "lr_decay": 0.5, "lr_floor": 0.0}
    running = schedule.start(saved)
    # nothing changed: the saved schedule goes on
    assert schedule.resumed(running, saved, dict(saved), 3) == running
    # another --lr: restart from it at the current step, with the decay in force
    new = schedule.resumed(running, saved, dict(saved, lr=4e-4), 3)
    assert new == {"origin": 3, "lr": 4e-4, "lr_decay": 0.5, "lr_floor": 0.0}
    # another --lr-decay alone: continue from the rate reached (1e-3 / 8 at step 3)
    new = schedule.resumed(running, saved, dict(saved, lr_decay=0.1), 3)
    assert new == {"origin": 3, "lr": 1.25e-4, "lr_decay": 0.1, "lr_floor": 0.0}
    assert schedule.rate_at(new, 4) == pytest.approx(1.25e-5)
    # a state from before schedules: a constant rate at the saved --lr until now
    old = {"lr": 1e-3, "lr_decay": 1.0, "lr_floor": 0.0}
    new = schedule.resumed(None, old, dict(old, lr_decay=0.5), 100)
    assert new["origin"] == 100 and new["lr"] == 1e-3


def test_every_step_takes_the_scheduled_rate(ema_run):
    out_dir, steps = ema_run
    assert len(steps) == 2 * STEPS_PER_EPOCH
    for k, (rate, given, _) in enumerate(steps):
        assert rate == pytest.approx(expected_rate(k), rel=1e-12)
        assert given == numpy.float32(expected_rate(k))  # what Adam's step used
    assert expected_rate(len(steps) - 1) == FLOOR  # the floor was reached
    history = read_history(out_dir)
    assert [h["lr"] for h in history] == pytest.approx(
        [expected_rate(STEPS_PER_EPOCH - 1), expected_rate(2 * STEPS_PER_EPOCH - 1)])
    assert [(h["lr_decay"], h["lr_floor"], h["steps"]) for h in history] == [
        (DECAY, FLOOR, STEPS_PER_EPOCH), (DECAY, FLOOR, 2 * STEPS_PER_EPOCH)]
    state = load_arrays(str(out_dir / "state.npz"))
    numpy.testing.assert_array_equal(state["lr_schedule"], [0, LR, DECAY, FLOOR])


# ----- the average ------------------------------------------------------------------

def test_average_equals_a_hand_computation(ema_run):
    out_dir, steps = ema_run
    params = [p for _, _, p in steps]
    names = sorted(params[0])
    state = load_arrays(str(out_dir / "state.npz"))
    assert int(state["ema_steps"]) == len(params)
    assert_close({n: state["ema/" + n] for n in names}, hand_average(params, EMA), names)
    assert_close({n: state["param/" + n] for n in names}, params[-1], names)  # raw weights
    # each epoch's checkpoint holds the average after its last step
    for epoch, name in enumerate(checkpoints(out_dir), 1):
        _, weights = builder.read_network_checkpoint(str(out_dir / name))
        assert_close(weights, hand_average(params[:epoch * STEPS_PER_EPOCH], EMA), names)
    history = read_history(out_dir)
    assert [(h["ema"], h["ema_steps"]) for h in history] == [
        (EMA, STEPS_PER_EPOCH), (EMA, 2 * STEPS_PER_EPOCH)]
    assert WeightAverage.weight(EMA, 1) == 1.0  # the first step replaces the start value


def test_checkpoints_and_state_record_the_average_they_hold(ema_run):
    out_dir, _ = ema_run
    for epoch, name in enumerate(checkpoints(out_dir), 1):
        _, meta = read_checkpoint(str(out_dir / name))
        assert (meta["ema"], meta["ema_steps"]) == (EMA, epoch * STEPS_PER_EPOCH)
        # not part of the model's config: the checkpoint builds the run's model
        config, _ = builder.read_network_checkpoint(str(out_dir / name))
        assert "ema" not in config and "ema_steps" not in config
    assert describe_weights(meta) == ("a moving average of the training steps' weights "
                                      "(--ema 0.8, over 8 steps)")
    _, meta = read_checkpoint(str(out_dir / "state.npz"))
    assert (meta["ema"], meta["ema_steps"]) == (EMA, 2 * STEPS_PER_EPOCH)


def test_describe_weights_of_raw_and_older_checkpoints():
    raw = "the raw weights of the last training step"
    assert describe_weights({"model": "masked", "ema": 0.0, "ema_steps": 0}) == raw
    # averaging asked for, but stopped before its first step: still the raw weights
    assert describe_weights({"model": "masked", "ema": 0.9, "ema_steps": 0}) == raw
    for older in ({"model": "masked"}, None):  # written before the record existed
        assert describe_weights(older).startswith("not recorded")


def test_resumed_run_equals_straight_run(ema_run, interrupted_ema_run):
    straight = load_arrays(str(ema_run[0] / "state.npz"))
    resumed = load_arrays(str(interrupted_ema_run / "state.npz"))
    assert sorted(straight) == sorted(resumed)
    assert any(k.startswith("ema/") for k in straight)
    for key in straight:
        numpy.testing.assert_allclose(resumed[key], straight[key], rtol=0, atol=1e-6,
                                      err_msg=key)
    keys = ("epoch", "train_nll", "valid_nll", "lr", "ema_steps")
    numpy.testing.assert_allclose(
        [[h[k] for k in keys] for h in read_history(interrupted_ema_run)],
        [[h[k] for k in keys] for h in read_history(ema_run[0])], rtol=1e-6)
    assert checkpoints(interrupted_ema_run) == checkpoints(ema_run[0])


def test_checkpoint_scores_what_its_history_says(ema_run, data_dir, capsys):  # noqa: F811
    out_dir, steps = ema_run
    for record, name in zip(read_history(out_dir), checkpoints(out_dir)):
        code = evaluate.main(["--checkpoint", str(out_dir / name), "--data-dir",
                              str(data_dir), "--no-verify", "--no-progress"])
        assert code == 0
        out = capsys.readouterr().out
        found = re.search(r"NLL on \d+ images: ([0-9.]+) nats/sub-pixel", out)
        assert float(found.group(1)) == pytest.approx(record["valid_nll"], abs=1e-5)
        assert "weights: a moving average of the training steps' weights (--ema 0.8, " \
            "over {} steps)".format(record["ema_steps"]) in out
    # the raw weights score otherwise: the history's figure is the average's
    raw = out_dir.parent / "raw.npz"
    arrays, meta = read_checkpoint(str(out_dir / checkpoints(out_dir)[-1]))
    save_arrays(str(raw), steps[-1][2], meta=dict(meta, ema=0.0, ema_steps=0))
    assert evaluate.main(["--checkpoint", str(raw), "--data-dir", str(data_dir),
                          "--no-verify", "--no-progress"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"NLL on \d+ images: ([0-9.]+) nats/sub-pixel", out)
    assert abs(float(found.group(1)) - read_history(out_dir)[-1]["valid_nll"]) > 1e-4
    assert "weights: the raw weights of the last training step" in out


# ----- changing them on --resume ----------------------------------------------------

def test_ema_may_start_in_a_resumed_run(data_dir, tmp_path):  # noqa: F811
    """A run without averaging, from a state written before schedules existed,
    resumed with --ema: the average covers the steps from there on."""
    out_dir = tmp_path / "run"
    code, out, err = call_main(cli(data_dir, out_dir, "--epochs", "1", "--samples-every", "0"))
    assert code == 0, err
    arrays, meta = read_checkpoint(str(out_dir / "state.npz"))
    assert not any(k.startswith("ema") for k in arrays)
    del arrays["lr_schedule"]  # as states were before this
    save_arrays(str(out_dir / "state.npz"), arrays, meta=meta)
    steps = []
    code, out, err = call_main(["--resume", str(out_dir), "--epochs", "2", "--ema", str(EMA),
                                "--no-progress"], on_step=recorder(steps))
    assert code == 0, err
    assert "--ema 0.8 from here on (it was 0.0)" in out
    assert "averaging the weights (--ema 0.8) from iteration 1 of epoch 2 on" in out
    params = [p for _, _, p in steps]
    assert [rate for rate, _, _ in steps] == [1e-3] * STEPS_PER_EPOCH  # constant as before
    state = load_arrays(str(out_dir / "state.npz"))
    names = sorted(params[0])
    assert int(state["ema_steps"]) == STEPS_PER_EPOCH
    assert_close({n: state["ema/" + n] for n in names}, hand_average(params, EMA), names)
    _, weights = builder.read_network_checkpoint(str(out_dir / checkpoints(out_dir)[-1]))
    assert_close(weights, hand_average(params, EMA), names)
    assert [h["ema"] for h in read_history(out_dir)] == [0.0, EMA]


def test_resume_with_another_rate_restarts_the_schedule_and_may_stop_averaging(
        ema_run, tmp_path):
    out_dir = tmp_path / "copy"
    shutil.copytree(str(ema_run[0]), str(out_dir))
    steps = []
    code, out, err = call_main(["--resume", str(out_dir), "--epochs", "3", "--lr", "2e-3",
                                "--ema", "0", "--samples-every", "0", "--no-progress"],
                               on_step=recorder(steps))
    assert code == 0, err
    assert "learning rate 0.002 from here on (it was 0.003)" in out
    origin = 2 * STEPS_PER_EPOCH
    assert [rate for rate, _, _ in steps] == pytest.approx(
        [max(FLOOR, 2e-3 * DECAY ** k) for k in range(STEPS_PER_EPOCH)])
    state = load_arrays(str(out_dir / "state.npz"))
    numpy.testing.assert_array_equal(state["lr_schedule"], [origin, 2e-3, DECAY, FLOOR])
    assert not any(k.startswith("ema") for k in state)  # averaging stopped
    record = read_history(out_dir)[-1]
    assert (record["ema"], record["lr"]) == (0.0, pytest.approx(max(FLOOR, 2e-3 * DECAY ** 3)))
    _, weights = builder.read_network_checkpoint(str(out_dir / checkpoints(out_dir)[-1]))
    for name, value in weights.items():  # the raw weights again, and recorded as such
        numpy.testing.assert_array_equal(value, state["param/" + name])
    _, meta = read_checkpoint(str(out_dir / checkpoints(out_dir)[-1]))
    assert (meta["ema"], meta["ema_steps"]) == (0.0, 0)


def test_resume_with_another_decay_starts_the_average_afresh(ema_run, tmp_path):
    """The state's average (of --ema 0.8) is dropped when --resume gives --ema 0.5:
    the new one covers the resumed steps only, and the record says so."""
    out_dir = tmp_path / "copy"
    shutil.copytree(str(ema_run[0]), str(out_dir))
    steps = []
    code, out, err = call_main(["--resume", str(out_dir), "--epochs", "3", "--ema", "0.5",
                                "--samples-every", "0", "--no-progress"],
                               on_step=recorder(steps))
    assert code == 0, err
    assert ("the average of --ema 0.8 is dropped: averaging the weights (--ema 0.5) from "
            "iteration 1 of epoch 3 on") in out
    params = [p for _, _, p in steps]
    names = sorted(params[0])
    state = load_arrays(str(out_dir / "state.npz"))
    assert int(state["ema_steps"]) == STEPS_PER_EPOCH
    assert_close({n: state["ema/" + n] for n in names}, hand_average(params, 0.5), names)
    _, meta = read_checkpoint(str(out_dir / checkpoints(out_dir)[-1]))
    assert (meta["ema"], meta["ema_steps"]) == (0.5, STEPS_PER_EPOCH)


@pytest.mark.parametrize("argv, message", [
    (["--ema", "1"], "--ema must be below 1"),
    (["--ema", "-0.5"], "--ema must be at least 0"),
    (["--lr-decay", "0"], "--lr-decay must be in (0, 1]"),
    (["--lr-decay", "1.01"], "--lr-decay must be in (0, 1]"),
    (["--lr-floor", "-1"], "--lr-floor must be at least 0"),
    (["--lr", "1e-4", "--lr-floor", "1e-3"], "--lr-floor 0.001 is above --lr 0.0001"),
])
def test_invalid_schedule_and_average_exit_2(argv, message):
    code, out, err = call_main(argv)
    assert code == 2 and message in err, err


def test_a_state_with_an_average_is_read_as_the_average(ema_run):
    """generate.py / evaluate.py given a run's state.npz take the weights the run
    validated (the average), as its checkpoints hold them."""
    out_dir, _ = ema_run
    arrays, meta = read_checkpoint(str(out_dir / "state.npz"))
    _, weights = builder.network_of(arrays, meta, "state.npz")
    _, last = builder.read_network_checkpoint(str(out_dir / checkpoints(out_dir)[-1]))
    assert sorted(weights) == sorted(last)
    for name in weights:
        numpy.testing.assert_array_equal(weights[name], last[name], err_msg=name)
