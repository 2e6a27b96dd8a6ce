"""generate.py --complete (issue 28): the first N test images with their top rows given
and the rest drawn K times, for every kind of model, with both samplers; the picture, the
.npy, the conditions given to conditional models, and bad input."""
import os

import numpy
import pytest
from PIL import Image

import generate
import quantize
from data import mnist
from lib import floatX
from models import build as builder
from sampling import cached_evaluator
from sampling.cached import sample_cached
from tests.test_generate import assert_grid_shows

N, K, KEPT, SIZE = 2, 2, 10, 28

# (id, config): tiny models of every kind
CONFIGS = [
    ("pixelconv", {"model": "pixelconv", "num_layers": 3, "dim": 4, "q_levels": 4}),
    ("gated", {"model": "gated", "num_layers": 3, "dim": 4, "q_levels": 4}),
    ("gated-class", {"model": "gated", "num_layers": 3, "dim": 4, "q_levels": 4,
                     "conditional": "class"}),
    ("gated-embedding", {"model": "gated", "num_layers": 3, "dim": 4, "q_levels": 4,
                         "conditional": "embedding", "embed_dim": 3, "encoder_dim": 2,
                         "encoder_convs": 1}),
    ("masked", {"model": "masked", "num_layers": 1, "dim": 4, "q_levels": 4}),
    ("rowlstm", {"model": "rowlstm", "num_layers": 1, "dim": 4, "q_levels": 4}),
    ("diagbilstm", {"model": "diagbilstm", "num_layers": 1, "dim": 4, "q_levels": 4}),
]


def save_random_model(config, path):
    """Build ``config`` with large random weights, save it to ``path``; returns the net."""
    numpy.random.seed(0)
    net = builder.build(dict(config, input_dim=1))
    rng = numpy.random.RandomState(1)
    for p in net.all_params.get_params():
        p.set_value(floatX(rng.uniform(-0.6, 0.6, p.get_value().shape)))
    net.all_params.save_params(path, meta=net.config)
    return net


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    """A data folder with only a test split of 5 random images: (folder, images, labels)."""
    folder = tmp_path_factory.mktemp("data")
    rng = numpy.random.RandomState(0)
    images = rng.randint(0, 256, (5, SIZE, SIZE)).astype(numpy.uint8)
    labels = numpy.array([3, 1, 4, 1, 5], dtype=numpy.uint8)
    mnist.write_idx(str(folder / "t10k-images-idx3-ubyte.gz"), images)
    mnist.write_idx(str(folder / "t10k-labels-idx1-ubyte.gz"), labels)
    return str(folder), images, labels


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: c[0])
def checkpoint(request, tmp_path_factory):
    """(path, net) of a tiny random checkpoint of each kind."""
    path = str(tmp_path_factory.mktemp("ckpt") / "model.npz")
    return path, save_random_model(request.param[1], path)


def complete(path, folder, out, sampler="cached", extra=()):
    args = generate.parse_args(["--checkpoint", path, "--out", out, "--complete", str(N),
                                "--keep-rows", str(KEPT), "--num", str(K), "--data-dir",
                                folder, "--no-verify", "--no-progress", "--sampler",
                                sampler, "--seed", "5"] + list(extra))
    return generate.generate(args)


def test_completions_keep_the_given_rows_and_samplers_agree(checkpoint, test_split, tmp_path):
    path, net = checkpoint
    folder, images, labels = test_split
    cached = complete(path, folder, str(tmp_path / "c.png"))
    naive = complete(path, folder, str(tmp_path / "n.png"), sampler="naive")
    truth = quantize.to_targets(images[:N], 4)[..., None]          # (N, 28, 28, 1)
    assert cached.shape == (N * K, SIZE, SIZE, 1)
    # image n's completions are n*K .. n*K + K-1, each with its top rows
    numpy.testing.assert_array_equal(cached[:, :KEPT], numpy.repeat(truth[:, :KEPT], K, 0))
    numpy.testing.assert_array_equal(cached, naive)
    assert (cached[:, KEPT:] != numpy.repeat(truth[:, KEPT:], K, 0)).any()   # drawn
    assert (cached[0::K, KEPT:] != cached[1::K, KEPT:]).any()    # each its own draw


def test_conditional_models_get_the_label_or_the_visible_part(checkpoint, test_split,
                                                              tmp_path):
    """Class models are given each image's label; embedding models the embedding of
    the input with the hidden rows black, never of the whole image."""
    path, net = checkpoint
    if net.H is None:
        pytest.skip("unconditional")
    folder, images, labels = test_split
    bins = complete(path, folder, str(tmp_path / "c.png"))
    truth = quantize.to_targets(images[:N], 4)[..., None]
    if net.encoder is not None:
        visible = truth.copy()
        visible[:, KEPT:] = 0
        condition = net.embed(quantize.targets_to_inputs(visible, 4))
        whole = net.embed(quantize.targets_to_inputs(truth, 4))
        assert numpy.abs(condition - whole).max() > 1e-4
    else:
        condition = builder.one_hot(labels[:N])
    expected = sample_cached(cached_evaluator(net), N * K, SIZE, SIZE, seed=5,
                             progress=False, condition=numpy.repeat(condition, K, 0),
                             top_rows=numpy.repeat(truth[:, :KEPT], K, 0))
    numpy.testing.assert_array_equal(bins, expected)


def test_picture_shows_original_hidden_input_and_completions(test_split, tmp_path):
    path = str(tmp_path / "m.npz")
    save_random_model(CONFIGS[0][1], path)
    folder, images, _ = test_split
    out = str(tmp_path / "c.png")
    bins = complete(path, folder, out)
    shown = quantize.to_display(quantize.to_targets(images[:N], 4), 4)
    hidden = shown.copy()
    hidden[:, KEPT:] = 128
    drawn = quantize.to_display(bins[..., 0], 4)
    saved = numpy.load(str(tmp_path / "c.npy"))
    numpy.testing.assert_array_equal(saved, drawn)      # the .npy: the completions
    rows = [numpy.concatenate([shown[n:n + 1], hidden[n:n + 1], drawn[n * K:(n + 1) * K]])
            for n in range(N)]
    assert_grid_shows(numpy.asarray(Image.open(out)), numpy.concatenate(rows), N, K + 2)


@pytest.fixture(scope="module")
def binarized_checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("bin") / "binarized.npz")
    save_random_model({"model": "diagbilstm", "num_layers": 1, "dim": 4, "q_levels": 2},
                      path)
    return path


def write_amat(path, images):
    """Binary images (n, 28, 28) of 0/1 -> a .amat file, one image a line."""
    with open(path, "w") as f:
        for image in images:
            f.write(" ".join(str(v) for v in image.ravel()) + "\n")


def test_binarized_mnist_checkpoint_completes_the_fixed_test_images(binarized_checkpoint,
                                                                    tmp_path):
    folder = tmp_path / "amat"
    folder.mkdir()
    binary = numpy.random.RandomState(2).randint(0, 2, (3, SIZE, SIZE))
    write_amat(str(folder / "binarized_mnist_test.amat"), binary)
    for sampler in ("cached", "naive"):
        bins = complete(binarized_checkpoint, str(folder), str(tmp_path / "b.png"), sampler,
                        ["--dataset", "binarized-mnist"])
        numpy.testing.assert_array_equal(bins[:, :KEPT, :, 0],
                                         numpy.repeat(binary[:N, :KEPT], K, 0))
        assert set(numpy.unique(bins)) == {0, 1}
        if sampler == "cached":
            first = bins
    numpy.testing.assert_array_equal(first, bins)


def run(argv, capsys):
    code = generate.main(argv + ["--no-progress"])
    return code, capsys.readouterr()


@pytest.mark.parametrize("argv, words", [
    (["--complete", "0"], "--complete must be at least 1"),
    (["--complete", "2", "--keep-rows", "28"], "--keep-rows must be from 0 to 27"),
    (["--complete", "2", "--keep-rows", "-1"], "--keep-rows must be from 0 to 27"),
    (["--keep-rows", "5"], "--keep-rows applies to --complete only"),
    (["--complete", "2", "--height", "14"], "--complete draws at the test images' own size"),
    (["--complete", "2", "--reconstruct", "2"], "choose one of"),
    (["--complete", "6"], "more images than the test split's 5"),
    (["--complete", "2", "--dataset", "binarized-mnist"], "needs a checkpoint with Q_LEVELS 2"),
])
def test_bad_completion_options(argv, words, test_split, tmp_path, capsys):
    path = str(tmp_path / "m.npz")
    save_random_model(CONFIGS[0][1], path)
    out = str(tmp_path / "c.png")
    code, io = run(["--checkpoint", path, "--out", out, "--data-dir", test_split[0],
                    "--no-verify"] + argv, capsys)
    assert code == 2, io.err
    assert words in io.err and len(io.err.strip().splitlines()) == 1
    assert not os.path.exists(out) and not os.path.exists(out[:-4] + ".npy")


def test_class_model_on_unlabelled_binarized_images_is_refused(tmp_path, capsys):
    path = str(tmp_path / "class.npz")
    save_random_model({"model": "gated", "num_layers": 3, "dim": 4, "q_levels": 2,
                       "conditional": "class"}, path)
    folder = tmp_path / "amat"
    folder.mkdir()
    write_amat(str(folder / "binarized_mnist_test.amat"), numpy.zeros((3, SIZE, SIZE), int))
    code, io = run(["--checkpoint", path, "--out", str(tmp_path / "c.png"), "--complete", "2",
                    "--dataset", "binarized-mnist", "--data-dir", str(folder), "--no-verify"],
                   capsys)
    assert code == 2 and "have no labels" in io.err


@pytest.mark.parametrize("kept, words", [(0, "no row given (--keep-rows 0), the rest"),
                                         (1, "row 0 given, the rest"),
                                         (10, "rows 0..9 given, the rest")])
def test_the_rows_given_are_named_as_given(kept, words, test_split, tmp_path, capsys):
    path = str(tmp_path / "m.npz")
    save_random_model(CONFIGS[0][1], path)
    code, io = run(["--checkpoint", path, "--out", str(tmp_path / "c.png"), "--data-dir",
                    test_split[0], "--no-verify", "--complete", "1", "--num", "1",
                    "--keep-rows", str(kept)], capsys)
    assert code == 0, io.err
    assert "completing the first 1 test images: " + words in io.out and "..-1" not in io.out
