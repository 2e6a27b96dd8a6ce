"""evaluate.py against hand computations on tiny checkpoints, and the classifier."""
import contextlib
import io
import json
import os

import numpy
import pytest

import evaluate
from conftest import write_random_mnist
from data import binarized, mnist
import quantize
from lib.checkpoint import save_arrays
from models import build as builder

NUM_TEST = 12


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Four IDX files of random 28x28 images (only the test split is read)."""
    return write_random_mnist(tmp_path_factory.mktemp("data"), {"train": 10, "test": NUM_TEST})


def tiny_checkpoint(tmp_path, config, split=None, name="tiny.npz"):
    """(net, path) of random weights for ``config``; ``split``: (valid_split,
    train_limit) recorded in the checkpoint (None: not recorded, as before)."""
    numpy.random.seed(3)
    net = builder.build(config)
    rng = numpy.random.RandomState(4)
    for p in net.all_params.get_params():  # random biases too
        p.set_value(rng.uniform(-0.5, 0.5, p.get_value().shape).astype(numpy.float32))
    path = str(tmp_path / name)
    meta = config if split is None else dict(config, valid_split=split[0],
                                             train_limit=split[1])
    save_arrays(path, net.all_params.param_values(), meta=meta)
    return net, path


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = evaluate.main(argv)
    return code, out.getvalue(), err.getvalue()


def figures_of(stdout):
    """The machine-readable last line as a dict."""
    return {k: float(v) for k, v in (pair.split("=") for pair in stdout.split("\n")[-2].split())}


def exact_figures(argv):
    """evaluate.evaluate's unrounded figures."""
    with contextlib.redirect_stdout(io.StringIO()):
        return dict(evaluate.evaluate(evaluate.parse_args(argv)))


def first_test_images(data_dir, limit):
    data = mnist.load_dataset(str(data_dir), verify=False, download=False)
    return data["test_images"][:limit], data["test_labels"][:limit]


def hand_nll(net, data_dir, limit, labels=None):
    """Mean -log p(true bin) over every sub-pixel of the first ``limit`` test images,
    from the logits in NumPy; ``labels``: the class condition, if any."""
    images, _ = first_test_images(data_dir, limit)
    return hand_nll_of_images(net, images, labels)


def hand_nll_of_images(net, images, labels=None):
    """hand_nll of uint8 images (n, 28, 28)."""
    inputs, targets = quantize.quantize(images[..., None], net.config["q_levels"])
    condition = None if labels is None else builder.one_hot(labels)
    logits = net.logits_fn(condition)(inputs).astype(numpy.float64)
    logits -= logits.max(axis=-1, keepdims=True)
    log_probs = logits - numpy.log(numpy.exp(logits).sum(axis=-1, keepdims=True))
    picked = numpy.take_along_axis(log_probs, targets[..., None].astype(int), axis=-1)
    return -picked.mean()


def test_nll_equals_a_hand_computation(tmp_path, data_dir):
    config = {"model": "pixelconv", "conditional": "none", "input_dim": 1, "dim": 4,
              "num_layers": 3, "q_levels": 3}
    net, path = tiny_checkpoint(tmp_path, config)
    code, out, err = run(["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify"])
    assert code == 0, err
    printed = figures_of(out)
    assert sorted(printed) == ["bits_per_dim", "nats_per_image", "nll"]
    figures = exact_figures(["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify"])
    expected = hand_nll(net, data_dir, NUM_TEST)
    assert figures["nll"] == pytest.approx(expected, rel=1e-5)
    assert figures["bits_per_dim"] == pytest.approx(expected / numpy.log(2), rel=1e-5)
    assert figures["nats_per_image"] == pytest.approx(expected * 784, rel=1e-5)
    assert printed["nll"] == pytest.approx(figures["nll"], abs=5e-5)


def test_wrong_label_nll_of_a_class_conditional_checkpoint(tmp_path, data_dir):
    config = {"model": "gated", "conditional": "class", "input_dim": 1, "dim": 3,
              "num_layers": 3, "q_levels": 2}
    net, path = tiny_checkpoint(tmp_path, config)
    figures = exact_figures(["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify",
                             "--limit", "5"])
    _, labels = first_test_images(data_dir, 5)
    assert figures["nll"] == pytest.approx(hand_nll(net, data_dir, 5, labels), rel=1e-4)
    wrong = numpy.mean([hand_nll(net, data_dir, 5, (labels + k) % 10) for k in range(1, 10)])
    assert figures["wrong_label_nll"] == pytest.approx(wrong, rel=1e-4)
    assert abs(figures["wrong_label_nll"] - figures["nll"]) > 1e-6  # the labels matter
    skipped = exact_figures(["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify",
                             "--limit", "5", "--skip-wrong-labels"])
    assert sorted(skipped) == ["bits_per_dim", "nats_per_image", "nll"]
    assert skipped["nll"] == figures["nll"]


def test_sample_accuracy_needs_a_conditional_checkpoint(tmp_path, data_dir):
    config = {"model": "pixelconv", "conditional": "none", "input_dim": 1, "dim": 4,
              "num_layers": 3, "q_levels": 3}
    _, path = tiny_checkpoint(tmp_path, config)
    code, _, err = run(["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify",
                        "--sample-accuracy"])
    assert code == 2 and "conditional" in err


@pytest.mark.parametrize("dataset", ["mnist", "binarized-mnist"])
def test_valid_split_scores_the_training_images_a_run_held_out(tmp_path, data_dir, dataset):
    """--split valid: the last --valid-split training images, binarized (dynamic
    binarization) once with VALID_SEED as train_mnist.py's validation is; by default
    the split the checkpoint records, a smaller one on request."""
    config = {"model": "pixelconv", "conditional": "none", "input_dim": 1, "dim": 4,
              "num_layers": 3, "q_levels": 2 if dataset == "binarized-mnist" else 3}
    net, path = tiny_checkpoint(tmp_path, config, split=(4, None))
    argv = ["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify", "--dataset",
            dataset, "--split", "valid"]
    code, out, err = run(argv)
    assert code == 0, err
    assert "validation NLL on 4 images" in out
    assert "the last 4 of the 10 training images (its run: --valid-split 4, in {})".format(
        path) in out
    held_out = mnist.load_dataset(str(data_dir), verify=False, download=False,
                                  splits=("train",))["train_images"][-4:]
    if dataset == "binarized-mnist":
        held_out = binarized.binarize(held_out, numpy.random.RandomState(binarized.VALID_SEED))
    figures = exact_figures(argv)
    assert figures["nll"] == pytest.approx(hand_nll_of_images(net, held_out), rel=1e-5)
    assert exact_figures(argv + ["--valid-split", "4"]) == figures
    test_figures = exact_figures(argv[:-2])
    assert abs(test_figures["nll"] - figures["nll"]) > 1e-4  # not the test images
    if dataset == "mnist":  # a part of the held-out images
        smaller = exact_figures(argv + ["--valid-split", "2"])
        assert smaller["nll"] == pytest.approx(hand_nll_of_images(net, held_out[-2:]),
                                               rel=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["--valid-split", "0"], "--valid-split must be at least 1"),
    (["--temperature", "0"], "--temperature must be a finite number > 0"),
    (["--temperature", "nan"], "--temperature must be a finite number > 0"),
    (["--sample-accuracy", "--guidance", "-1"], "--guidance must be a finite number >= 0"),
    (["--guidance", "2"], "add --sample-accuracy"),
    (["--per-label", "0"], "--per-label must be at least 1"),
    (["--seed", "-1"], "--seed must be at least 0"),
])
def test_invalid_arguments_exit_2(argv, message):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        evaluate.parse_args(["--checkpoint", "x.npz"] + argv)
    assert exit_.value.code == 2 and message in err.getvalue()


def test_unreadable_checkpoint_is_reported(tmp_path, data_dir):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    code, _, err = run(["--checkpoint", str(bad), "--data-dir", str(data_dir), "--no-verify"])
    assert code == 2 and "bad.npz" in err


def test_binarized_dataset_needs_two_levels(tmp_path):
    """--dataset binarized-mnist scores only Q_LEVELS 2 checkpoints."""
    _, path = tiny_checkpoint(tmp_path, {"model": "pixelconv", "input_dim": 1, "dim": 4,
                                         "num_layers": 2, "q_levels": 4,
                                         "conditional": "none"})
    code, _, err = run(["--checkpoint", path, "--dataset", "binarized-mnist",
                        "--data-dir", str(tmp_path)])
    assert code == 2 and "needs a checkpoint with Q_LEVELS 2; this one has 4" in err


@pytest.mark.parametrize("conditional", ["class", "embedding"])
def test_sample_accuracy_scores_the_intended_digits(tmp_path, data_dir, monkeypatch, conditional):
    """The samples reach the classifier as 4-level (n, 28, 28, 1) images, and the share
    and per-digit counts compare its answers with the digits asked for: here a
    classifier that always answers 0."""
    config = {"model": "gated", "conditional": conditional, "input_dim": 1, "dim": 3,
              "num_layers": 2, "q_levels": 4, "embed_dim": 2}
    _, path = tiny_checkpoint(tmp_path, config)
    seen = []

    def always_zero(path, q_levels):
        def classify(images):
            seen.append(images)
            return numpy.zeros(len(images), dtype=int)
        return classify

    calls = []

    def recorded(sampler):
        def call(*args, **kwargs):
            calls.append((sampler.__name__, kwargs["temperature"]))
            return sampler(*args, **kwargs)
        return call

    monkeypatch.setattr(evaluate, "load_classifier", always_zero)
    for name in ("sample", "sample_with_guidance"):
        monkeypatch.setattr(evaluate.sampling, name, recorded(getattr(evaluate.sampling, name)))
    # class: guided draws; embedding: plain ones (guidance is refused there, see below)
    guidance = ["--guidance", "2"] if conditional == "class" else []
    code, out, err = run(["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify",
                          "--sample-accuracy", "--per-label", "2", "--like-samples", "7",
                          "--temperature", "0.5", "--no-progress"] + guidance)
    assert code == 0, err
    (drawn,) = seen
    sampler = "sample_with_guidance" if guidance else "sample"
    assert calls == [(sampler, 0.5)] and figures_of(out)["temperature"] == 0.5
    assert figures_of(out).get("guidance") == (2.0 if guidance else None)
    if conditional == "embedding":
        code, _, err = run(["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify",
                            "--sample-accuracy", "--guidance", "2"])
        assert code == 2 and "--guidance needs a class-conditional checkpoint" in err
    _, labels = first_test_images(data_dir, NUM_TEST)
    wanted = numpy.repeat(numpy.arange(10), 2) if conditional == "class" else labels[:7]
    assert drawn.shape == (len(wanted), 28, 28, 1)
    assert set(numpy.unique(drawn)) <= set(quantize.targets_to_inputs(numpy.arange(4), 4))
    name = "label_accuracy" if conditional == "class" else "like_accuracy"
    assert figures_of(out)[name] == pytest.approx((wanted == 0).mean(), abs=1e-4)
    by_digit = dict(pair.split(":") for pair in
                    out.split(name + " by digit: ")[1].split("\n")[0].split())
    assert by_digit == {str(d): "{}/{}".format((wanted == d).sum() if d == 0 else 0,
                                               (wanted == d).sum())
                        for d in range(10) if (wanted == d).any()}


CLASS_CONFIG = {"model": "gated", "conditional": "class", "input_dim": 1, "dim": 3,
                "num_layers": 2, "q_levels": 4}
EMBEDDING_CONFIG = dict(CLASS_CONFIG, conditional="embedding", embed_dim=2)


def always_zero(path, q_levels):
    """A stand-in for load_classifier: a classifier that always answers 0."""
    return lambda images: numpy.zeros(len(images), dtype=int)


class Stop(Exception):
    """Raised by a stand-in sampler to end a run early."""


def test_an_unusable_classifier_is_refused_before_the_nll_passes(tmp_path, data_dir,
                                                                monkeypatch):
    _, path = tiny_checkpoint(tmp_path, CLASS_CONFIG)
    not_one = str(tmp_path / "pixelcnn.npz")
    save_arrays(not_one, {"a": numpy.zeros(3, numpy.float32)}, meta={"model": "pixelconv"})
    other_levels = str(tmp_path / "classifier8.npz")
    save_arrays(other_levels, {"a": numpy.zeros(3, numpy.float32)},
                meta={"model": "classifier", "q_levels": 8})

    def no_nll_pass(net):
        raise AssertionError("the NLL pass started")

    monkeypatch.setattr(evaluate, "compile_nll", no_nll_pass)
    for classifier, words in ((str(tmp_path / "missing.npz"), "No such file"),
                              (not_one, "is not a classifier"),
                              (other_levels, "the classifier reads 8 grey levels")):
        code, _, err = run(["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify",
                            "--sample-accuracy", "--classifier", classifier])
        assert code == 2 and words in err and err.count("\n") == 1


def test_draws_are_made_in_chunks_whatever_their_number(tmp_path, data_dir, monkeypatch):
    """--per-label 100000000 asks for 10^9 draws: each sampler call gets DRAW_CHUNK of
    them (here 4, and a stand-in sampler), not all at once."""
    _, path = tiny_checkpoint(tmp_path, CLASS_CONFIG)
    monkeypatch.setattr(evaluate, "load_classifier", always_zero)
    monkeypatch.setattr(evaluate, "DRAW_CHUNK", 4)
    calls, stop_after = [], [3]

    def sample(net, num, height, width, seed, condition, temperature, progress):
        calls.append((num, seed, condition.argmax(axis=1).tolist()))
        if len(calls) == stop_after[0]:
            raise Stop()
        return numpy.zeros((num, height, width, 1), dtype=numpy.int32)

    monkeypatch.setattr(evaluate.sampling, "sample", sample)
    argv = ["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify",
            "--skip-wrong-labels", "--sample-accuracy", "--seed", "7", "--no-progress"]
    with pytest.raises(Stop):
        exact_figures(argv + ["--per-label", "100000000"])
    assert calls == [(4, 7, [0] * 4), (4, [7, 1], [0] * 4), (4, [7, 2], [0] * 4)]
    # a number of draws that is no multiple of the chunk: every digit, counted once
    calls.clear()
    stop_after[0] = None
    code, out, err = run(argv + ["--per-label", "1"])
    assert code == 0, err
    assert [c[0] for c in calls] == [4, 4, 2]
    assert [d for c in calls for d in c[2]] == list(range(10))
    assert figures_of(out)["label_accuracy"] == pytest.approx(0.1, abs=1e-4)
    assert "label_accuracy by digit: 0:1/1 1:0/1" in out


def test_ctrl_c_exits_130_with_one_line(tmp_path, data_dir, monkeypatch):
    _, path = tiny_checkpoint(tmp_path, CLASS_CONFIG)
    monkeypatch.setattr(evaluate, "load_classifier", always_zero)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt()

    monkeypatch.setattr(evaluate.sampling, "sample", interrupted)
    code, _, err = run(["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify",
                        "--skip-wrong-labels", "--sample-accuracy", "--no-progress"])
    assert code == 130 and "aborted" in err and err.count("\n") == 1


def test_fewer_test_images_than_like_samples_is_said(tmp_path, data_dir, monkeypatch):
    _, path = tiny_checkpoint(tmp_path, EMBEDDING_CONFIG)
    monkeypatch.setattr(evaluate, "load_classifier", always_zero)
    code, out, err = run(["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify",
                          "--sample-accuracy", "--like-samples", "100", "--limit", "5",
                          "--no-progress"])
    assert code == 0, err
    assert "only 5 test images (--limit 5), so 5 draws are scored, not --like-samples 100" \
        in err
    assert sum(int(pair.split("/")[1]) for pair in
               out.split("like_accuracy by digit: ")[1].split("\n")[0].split()) == 5


def test_the_nll_of_an_embedding_checkpoint_is_labelled_as_conditional(tmp_path, data_dir):
    """It is conditioned on f(x) of the image scored, so it is not the image's likelihood."""
    _, path = tiny_checkpoint(tmp_path, EMBEDDING_CONFIG)
    code, out, err = run(["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify",
                          "--limit", "3", "--no-progress"])
    assert code == 0, err
    assert sorted(figures_of(out)) == ["bits_per_dim_given_fx", "nats_per_image_given_fx",
                                       "nll_given_fx"]
    assert "given its own embedding f(x) (a conditional figure, not the image's likelihood)" \
        in out


@pytest.mark.parametrize("model", ["masked", "rowlstm", "diagbilstm"])
def test_the_faithful_graph_scores_what_the_fast_one_does(tmp_path, data_dir, model):
    """``--graph faithful`` evaluates in the original layout; the figures agree."""
    config = {"model": model, "input_dim": 1, "dim": 4, "num_layers": 1, "q_levels": 4}
    _, path = tiny_checkpoint(tmp_path, config)
    base = ["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify", "--limit", "4"]
    fast = exact_figures(base)
    faithful = exact_figures(base + ["--graph", "faithful"])
    assert fast.keys() == faithful.keys()
    for key in fast:
        assert fast[key] == pytest.approx(faithful[key], rel=1e-5), key
    assert evaluate.load_network(path, "faithful").layer.__class__.__name__ in (
        "MaskedPixelCNN", "RowLSTMPixelRNN", "DiagonalBiLSTMPixelRNN")


# ----- --split valid: the checkpoint's own split, never its training images -----------

PIXELCONV = {"model": "pixelconv", "conditional": "none", "input_dim": 1, "dim": 4,
             "num_layers": 3, "q_levels": 3}


def valid_argv(path, data_dir, *extra):
    return ["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify", "--split",
            "valid", "--no-progress"] + list(extra)


def no_nll_pass(net):
    raise AssertionError("the NLL pass was compiled")


def assert_refused(code, out, err, words):
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "nll=" not in out
    for word in words:
        assert word in err, (word, err)


@pytest.mark.parametrize("split, extra, scored, words", [
    # held out the last 4 of the 10 training images, trained on the first 6
    ((4, None), ["--valid-split", "5"], None,
     ["--valid-split 5 would score 1 image ", "trained on the first 6 of the 10 training "
      "images", "Leave --valid-split out to score the 4 it held out"]),
    ((4, None), ["--valid-split", "10"], None, ["--valid-split 10 would score 6 images"]),
    # trained on every training image
    ((0, None), [], None, ["held no training image out (--valid-split 0 in ",
                           "Score it with --split test", "train with --valid-split N"]),
    ((0, None), ["--valid-split", "3"], None, ["held no training image out"]),
    # validated on the test images, but trained on the first 6 only: the last 4 are unseen
    ((0, 6), [], None, ["held no training image out", "and trained on the first 6",
                        "Give --valid-split N", "minus 6"]),
    ((0, 6), ["--valid-split", "4"], 4, []),
    ((0, 6), ["--valid-split", "5"], None, ["would score 1 image ",
                                            "Give at most --valid-split 4"]),
    # held out 2 and trained on the first 5 of the other 8
    ((2, 5), ["--valid-split", "5"], 5, []),
    ((2, 5), ["--valid-split", "6"], None,
     ["would score 1 image ", "--valid-split 2 --train-limit 5",
      "Leave --valid-split out to score the 2 it held out, or give at most 5"]),
])
def test_a_split_reaching_into_the_training_images_is_refused_before_compiling(
        tmp_path, data_dir, monkeypatch, split, extra, scored, words):
    _, path = tiny_checkpoint(tmp_path, PIXELCONV, split=split)
    if scored is None:
        monkeypatch.setattr(evaluate, "compile_nll", no_nll_pass)
    code, out, err = run(valid_argv(path, data_dir, *extra))
    if scored is None:
        assert_refused(code, out, err, words)
    else:
        assert code == 0, err
        assert "validation NLL on {} images".format(scored) in out


def write_run_config(folder, **settings):
    """A run's config.json in ``folder`` for PIXELCONV (train_mnist.py's keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(PIXELCONV, batch_size=2, lr=0.001, seed=1, dataset="mnist", **settings)
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder / "config.json")


@pytest.mark.parametrize("where, settings, scored, words", [
    (None, None, None, ["tiny.npz does not record the training images it held out",
                        "no config.json of its run sits beside it",
                        "Put its run's config.json beside it, or score it with --split test"]),
    ("beside", {"valid_split": 4, "train_limit": None}, 4, []),
    ("run folder", {"valid_split": 3, "train_limit": None}, 3, []),
    ("run folder", {"valid_split": 0, "train_limit": None}, None,
     ["held no training image out (--valid-split 0 in ", "tiny_run/config.json"]),
    # a run from before --valid-split existed validated on the test images
    ("beside", {"train_limit": None}, None, ["held no training image out"]),
    ("beside", {"valid_split": 4, "train_limit": None, "num_layers": 5}, None,
     ["is another run's (num_layers 5 here, 3 in the checkpoint)",
      "Put its run's config.json beside it"]),
])
def test_an_older_checkpoints_split_is_read_from_its_runs_config(
        tmp_path, data_dir, monkeypatch, where, settings, scored, words):
    """Checkpoints written before the split was recorded: their run's config.json in
    their folder (a run's epoch_*.npz) or in <name>_run/ (pretrained/<name>.npz)."""
    _, path = tiny_checkpoint(tmp_path, PIXELCONV)
    source = None
    if where is not None:
        source = write_run_config(tmp_path if where == "beside" else tmp_path / "tiny_run",
                                  **settings)
    if scored is None:
        monkeypatch.setattr(evaluate, "compile_nll", no_nll_pass)
    code, out, err = run(valid_argv(path, data_dir))
    if scored is None:
        assert_refused(code, out, err, words)
    else:
        assert code == 0, err
        assert "validation NLL on {} images".format(scored) in out
        assert "(its run: --valid-split {}, in {})".format(scored, source) in out


def test_the_shipped_checkpoints_splits_come_from_their_runs():
    """pixelconv's run trained on all 60,000 training images; its checkpoint predates
    the recorded split, so the split is read from pretrained/pixelconv_run/. The
    binarized PixelCNN held out the last 10,000 and its checkpoint (written since)
    records that itself, in agreement with its run's config.json."""
    from lib.checkpoint import read_checkpoint
    from training import run_folder
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name, held_out, recorded_inside in (("pixelconv", 0, False),
                                            ("binarized_masked", 10000, True)):
        path = os.path.join(root, "pretrained", name + ".npz")
        run_config = os.path.join(root, "pretrained", name + "_run", "config.json")
        arrays, meta = read_checkpoint(path)
        config, _ = builder.network_of(arrays, meta, path)
        split, source = run_folder.recorded_split(path, meta, config)
        assert split == {"valid_split": held_out, "train_limit": None}
        assert source == (path if recorded_inside else run_config)
        run = run_folder.read_config(os.path.dirname(run_config))
        assert (run["valid_split"], run["train_limit"]) == (held_out, None)


def test_weights_that_are_not_finite_are_refused_before_compiling(tmp_path, data_dir,
                                                                  monkeypatch):
    net, path = tiny_checkpoint(tmp_path, PIXELCONV)
    weights = net.all_params.param_values()
    name = sorted(weights)[0]
    weights[name].flat[0] = numpy.nan
    save_arrays(path, weights, meta=PIXELCONV)
    monkeypatch.setattr(evaluate, "compile_nll", no_nll_pass)
    code, out, err = run(["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify"])
    assert_refused(code, out, err, [name + " holds NaN or infinite values",
                                    "use an earlier checkpoint"])


def test_an_nll_that_is_not_finite_is_an_error(tmp_path, data_dir):
    """Finite weights so large that the logits overflow: no figure, exit 2."""
    net, path = tiny_checkpoint(tmp_path, PIXELCONV)
    save_arrays(path, {n: numpy.full_like(v, 1e30) for n, v in
                       net.all_params.param_values().items()}, meta=PIXELCONV)
    code, out, err = run(["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify",
                          "--limit", "2", "--no-progress"])
    assert_refused(code, out, err, ["the test NLL of {} is ".format(path),
                                    "use an earlier checkpoint of its run"])


def test_the_classifier_file_is_named_as_such(tmp_path):
    path = str(tmp_path / "classifier.npz")
    save_arrays(path, {"a": numpy.zeros(3, numpy.float32)},
                meta={"model": "classifier", "q_levels": 4})
    code, out, err = run(["--checkpoint", path])
    assert_refused(code, out, err, ["holds train_classifier.py's digit classifier",
                                    "give --checkpoint a model of train_mnist.py"])
