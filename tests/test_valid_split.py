"""train_mnist.py --valid-split: validation on training images held out of training.

Tiny runs on synthetic data (see tests/test_train.py): 40 training images, of
which the last VALID are held out, so an epoch has (40 - VALID) / BATCH steps.
"""
import contextlib
import io
import json
import shutil

import numpy
import pytest

import lib  # noqa: F401  (configures Theano)
import theano
import theano.tensor as T

import evaluate
import quantize
from data import binarized, mnist
from lib.checkpoint import SPLIT_KEYS, read_checkpoint, save_arrays
from lib.training import nll_per_example
from models import build as builder
from tests.test_binarized import write_fixed_files
from tests.test_train import (BATCH, MODEL, NUM_TEST, NUM_TRAIN, bar_images, call_main,
                              checkpoints, read_history)

VALID = 10


def tiny(data_dir, out_dir, *extra):
    """A tiny run without --valid-split (the default applies unless ``extra`` gives it)."""
    return ["--num-layers", "2", "--dim", "4", "--batch-size", str(BATCH), "--data-dir",
            str(data_dir), "--no-verify", "--no-download", "--no-progress", "--samples-every",
            "0", "--out-dir", str(out_dir)] + list(extra)


def write_split(folder, split, images, rng):
    image_name, label_name = mnist.SPLITS[split]
    mnist.write_idx(str(folder / image_name), images, gzip=False)
    mnist.write_idx(str(folder / label_name), rng.randint(0, 10, len(images))
                    .astype(numpy.uint8), gzip=False)


@pytest.fixture(scope="module")
def train_only_dir(tmp_path_factory):
    """A data folder holding MNIST's training files only (no test split)."""
    folder = tmp_path_factory.mktemp("train-only")
    rng = numpy.random.RandomState(0)
    write_split(folder, "train", bar_images(rng, NUM_TRAIN), rng)
    return folder


@pytest.fixture(scope="module")
def nll_of():
    """checkpoint path, uint8 images, Q_LEVELS -> the images' mean NLL in nats per
    sub-pixel under the checkpoint's weights."""
    compiled = {}

    def nll(path, images, q_levels):
        if q_levels not in compiled:
            net = builder.build(dict(MODEL, q_levels=q_levels))
            X_r = T.itensor4("X_r")
            compiled[q_levels] = net, theano.function([net.X, X_r],
                                                      nll_per_example(net.logits, X_r))
        net, fn = compiled[q_levels]
        net.model.load_params(str(path))
        x, t = quantize.quantize(images[..., None], q_levels)
        return float(fn(x, t).sum()) / t.size
    return nll


def test_default_split_is_10000_and_is_refused_when_it_leaves_nothing(train_only_dir, tmp_path):
    code, out, err = call_main(tiny(train_only_dir, tmp_path / "run"))
    assert code == 2 and "Traceback" not in err
    assert "--valid-split 10000 leaves no training images: the training split holds 40; " \
        "give a smaller --valid-split (or 0 to validate on the test images)" in err
    assert not (tmp_path / "run").exists()


def evaluate_run(argv):
    """evaluate.main(argv) -> (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = evaluate.main(argv)
    return code, out.getvalue(), err.getvalue()


def valid_nll(path, data_dir, *extra):
    """evaluate.py --split valid's unrounded NLL of checkpoint ``path``."""
    argv = ["--checkpoint", str(path), "--data-dir", str(data_dir), "--no-verify",
            "--split", "valid", "--no-progress"] + list(extra)
    with contextlib.redirect_stdout(io.StringIO()):
        return dict(evaluate.evaluate(evaluate.parse_args(argv)))["nll"]


def test_held_out_images_validate_and_the_test_split_is_not_read(train_only_dir, tmp_path,
                                                                  nll_of):
    out_dir = tmp_path / "run"
    steps = []
    code, out, err = call_main(tiny(train_only_dir, out_dir, "--epochs", "2", "--q-levels",
                                    "4", "--valid-split", str(VALID)),
                               on_step=lambda t: steps.append((t.epoch, t.iteration,
                                                               len(t.train_x), len(t.valid_x))))
    assert code == 0, err
    # (40 - 10) / 10 = 3 steps an epoch: the held-out images are not trained on
    assert steps == [(e, i, NUM_TRAIN - VALID, VALID) for e in (0, 1) for i in (1, 2, 3)]
    assert "validation: {0} of the last {0} training images, held out".format(VALID) in out
    assert "{} training images".format(NUM_TRAIN - VALID) in out
    history = read_history(out_dir)
    assert [h["valid_set"] for h in history] == ["held-out", "held-out"]
    images = mnist.load_dataset(str(train_only_dir), verify=False, download=False,
                                splits=("train",))["train_images"]
    for record, name in zip(history, checkpoints(out_dir)):
        held_out = nll_of(out_dir / name, images[-VALID:], 4)
        assert held_out == pytest.approx(record["valid_nll"], rel=1e-6)
        assert abs(nll_of(out_dir / name, images[:VALID], 4) - held_out) > 1e-5
    with open(str(out_dir / "config.json")) as f:
        assert json.load(f)["valid_split"] == VALID
    # every checkpoint and the state record the split; evaluate.py scores the same images
    for name in checkpoints(out_dir) + ["state.npz"]:
        meta = read_checkpoint(str(out_dir / name))[1]
        assert (meta["valid_split"], meta["train_limit"]) == (VALID, None)
    last = out_dir / checkpoints(out_dir)[-1]
    assert valid_nll(last, train_only_dir) == pytest.approx(history[-1]["valid_nll"], rel=1e-5)
    # one written before the split was recorded: read from the run's config.json beside it
    arrays, meta = read_checkpoint(str(last))
    older = out_dir / "older.npz"
    save_arrays(str(older), arrays, meta={k: v for k, v in meta.items() if k not in SPLIT_KEYS})
    assert valid_nll(older, train_only_dir) == pytest.approx(history[-1]["valid_nll"], rel=1e-5)
    code, out, err = evaluate_run(["--checkpoint", str(last), "--data-dir", str(train_only_dir),
                                   "--no-verify", "--split", "valid", "--valid-split",
                                   str(VALID + 1)])
    assert code == 2 and "would score 1 image {} was trained on".format(last) in err


def test_valid_limit_takes_the_first_held_out_images(train_only_dir, tmp_path, nll_of):
    """... and --train-limit: recorded, so evaluate.py may score any image the run
    never trained on (here the last 40 - 20), no other."""
    out_dir = tmp_path / "run"
    code, out, err = call_main(tiny(train_only_dir, out_dir, "--epochs", "1", "--q-levels",
                                    "4", "--valid-split", str(VALID), "--valid-limit", "4",
                                    "--train-limit", "20"))
    assert code == 0, err
    assert "validation: 4 of the last {} training images".format(VALID) in out
    images = mnist.load_dataset(str(train_only_dir), verify=False, download=False,
                                splits=("train",))["train_images"]
    (record,) = read_history(out_dir)
    path = out_dir / checkpoints(out_dir)[0]
    nll = nll_of(path, images[-VALID:][:4], 4)
    assert nll == pytest.approx(record["valid_nll"], rel=1e-6)
    assert read_checkpoint(str(path))[1]["train_limit"] == 20
    assert valid_nll(path, train_only_dir, "--valid-split", "20") == pytest.approx(
        nll_of(path, images[-20:], 4), rel=1e-5)
    code, out, err = evaluate_run(["--checkpoint", str(path), "--data-dir", str(train_only_dir),
                                   "--no-verify", "--split", "valid", "--valid-split", "21"])
    assert code == 2 and "would score 1 image" in err and "or give at most 20" in err


def test_fixed_binarization_validates_on_the_valid_file(tmp_path, nll_of):
    data_dir = tmp_path / "amat"
    data_dir.mkdir()
    bits = write_fixed_files(data_dir, {"train": 30, "valid": VALID})
    out_dir = tmp_path / "run"
    code, out, err = call_main(tiny(data_dir, out_dir, "--epochs", "1", "--dataset",
                                    "binarized-mnist", "--valid-split", str(VALID)))
    assert code == 0, err
    assert "fixed binarization" in out
    (record,) = read_history(out_dir)
    assert record["valid_set"] == "held-out"
    valid = (bits["valid"] * 255).astype(numpy.uint8).reshape(-1, 28, 28)
    nll = nll_of(out_dir / checkpoints(out_dir)[0], valid, 2)
    assert nll == pytest.approx(record["valid_nll"], rel=1e-6)
    # the run and its checkpoints record which binarization they were trained on
    with open(str(out_dir / "config.json")) as f:
        assert json.load(f)["binarization"] == binarized.FIXED
    meta = read_checkpoint(str(out_dir / checkpoints(out_dir)[0]))[1]
    assert (meta["dataset"], meta["binarization"]) == ("binarized-mnist", binarized.FIXED)


def test_a_run_from_before_the_split_keeps_validating_on_the_test_images(tmp_path, nll_of):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rng = numpy.random.RandomState(1)
    write_split(data_dir, "train", bar_images(rng, NUM_TRAIN), rng)
    write_split(data_dir, "test", bar_images(rng, NUM_TEST), rng)
    out_dir = tmp_path / "run"
    code, out, err = call_main(tiny(data_dir, out_dir, "--epochs", "1", "--q-levels", "4",
                                    "--valid-split", "0"))
    assert code == 0, err
    assert "validation: {} test images (--valid-split 0)".format(NUM_TEST) in out
    config_path = out_dir / "config.json"
    config = json.loads(config_path.read_text())
    for key in ("valid_split", "binarization"):  # as an older run saved it
        del config[key]
    config_path.write_text(json.dumps(config))
    old = tmp_path / "old"
    shutil.copytree(str(out_dir), str(old))
    first = str(old / checkpoints(old)[0])  # as an older run saved it, without the split
    arrays, meta = read_checkpoint(first)
    save_arrays(first, arrays, meta={k: v for k, v in meta.items() if k not in SPLIT_KEYS})
    code, out, err = call_main(["--resume", str(old), "--valid-split", str(VALID)])
    assert code == 2 and "cannot change --valid-split" in err
    code, out, err = call_main(["--resume", str(old), "--epochs", "2", "--no-progress"])
    assert code == 0, err
    history = read_history(old)
    assert history[-1]["valid_set"] == "test"
    test_images = mnist.load_dataset(str(data_dir), verify=False, download=False,
                                     splits=("test",))["test_images"]
    nll = nll_of(old / checkpoints(old)[-1], test_images, 4)
    assert nll == pytest.approx(history[-1]["valid_nll"], rel=1e-6)
    assert json.loads((old / "config.json").read_text())["valid_split"] == 0
    # it trained on every training image: evaluate.py --split valid refuses it, the
    # older checkpoint by its run's config.json (which has no valid_split: 0)
    assert "valid_split" not in read_checkpoint(first)[1]
    for name in checkpoints(old):
        code, out, err = evaluate_run(["--checkpoint", str(old / name), "--data-dir",
                                       str(data_dir), "--no-verify", "--split", "valid"])
        assert code == 2 and "held no training image out (--valid-split 0 in " in err


def test_help_describes_the_split():
    code, out, _ = call_main(["--help"])
    assert code == 0 and "--valid-split N" in out and "binarized_mnist_valid.amat" in out


def test_dynamic_binarization_holds_out_grey_images_binarized_once(train_only_dir, tmp_path):
    seen = []
    out_dir = tmp_path / "run"
    code, out, err = call_main(tiny(train_only_dir, out_dir, "--epochs", "2", "--dataset",
                                    "binarized-mnist", "--valid-split", str(VALID)),
                               on_step=lambda t: seen.append((t.train_t.copy(),
                                                              t.valid_t.copy())))
    assert code == 0, err
    assert "dynamic binarization" in out
    (train1, valid1), (train2, valid2) = seen[0], seen[-1]
    assert train1.shape[0] == NUM_TRAIN - VALID and valid1.shape[0] == VALID
    assert (train1 != train2).any()  # training bits drawn afresh each epoch
    numpy.testing.assert_array_equal(valid1, valid2)  # validation bits drawn once
    images = mnist.load_dataset(str(train_only_dir), verify=False, download=False,
                                splits=("train",))["train_images"]
    expected = binarized.binarize(images[-VALID:], numpy.random.RandomState(
        binarized.VALID_SEED))
    numpy.testing.assert_array_equal(valid1[..., 0], expected // 255)
    assert [h["valid_set"] for h in read_history(out_dir)] == ["held-out"] * 2
