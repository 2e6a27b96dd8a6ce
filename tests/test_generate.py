"""generate.py: outputs, config inference, original checkpoints and bad input."""
import os
import pickle

import numpy
import pytest

import generate
from lib import floatX
from models import build as builder
from tests.conftest import fixture_path

ORIGINAL = fixture_path("mnist_small_params_py2.pkl")


def run(argv, capsys):
    code = generate.main(argv + ["--no-progress"])
    return code, capsys.readouterr()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A 3-layer, DIM 4, Q_LEVELS 3 checkpoint in our format, with random weights."""
    numpy.random.seed(0)
    net = builder.build({"input_dim": 1, "dim": 4, "num_layers": 3, "q_levels": 3})
    for p in net.model.get_params():
        p.set_value(floatX(numpy.random.uniform(-0.5, 0.5, p.get_value().shape)))
    path = str(tmp_path_factory.mktemp("ckpt") / "tiny.npz")
    net.model.save_params(path)
    return path


def test_infers_the_configuration_from_parameter_shapes(tiny_checkpoint):
    from lib.checkpoint import load_arrays
    assert builder.infer_config(load_arrays(tiny_checkpoint)) == {
        "model": "pixelconv", "input_dim": 1, "dim": 4, "num_layers": 3, "q_levels": 3,
        "conditional": "none"}
    assert builder.infer_config(load_arrays(ORIGINAL)) == {
        "model": "pixelconv", "input_dim": 1, "dim": 8, "num_layers": 4, "q_levels": 4,
        "conditional": "none"}


def test_original_python2_checkpoint_generates_a_5x5_grid(tmp_path, capsys):
    out = str(tmp_path / "s.png")
    code, io = run(["--checkpoint", ORIGINAL, "--out", out, "--seed", "3"], capsys)
    assert code == 0, io.err
    pictures = numpy.load(str(tmp_path / "s.npy"))
    assert pictures.shape == (25, 28, 28) and pictures.dtype == numpy.uint8
    assert set(numpy.unique(pictures)) <= {0, 85, 170, 255}  # 4 levels on 0..255
    from PIL import Image
    assert Image.open(out).size == (2 * (5 * 30 + 2), 2 * (5 * 30 + 2))  # 5x5 grid


def test_same_seed_same_images_and_samplers_agree(tiny_checkpoint, tmp_path, capsys):
    outs = {}
    for name, sampler, seed in [("a", "cached", 1), ("b", "cached", 1), ("c", "naive", 1),
                                ("d", "cached", 2)]:
        out = str(tmp_path / (name + ".png"))
        code, io = run(["--checkpoint", tiny_checkpoint, "--out", out, "--num", "6",
                        "--height", "7", "--width", "9", "--sampler", sampler,
                        "--seed", str(seed)], capsys)
        assert code == 0, io.err
        outs[name] = numpy.load(out[:-4] + ".npy")
    assert outs["a"].shape == (6, 7, 9)
    numpy.testing.assert_array_equal(outs["a"], outs["b"])
    numpy.testing.assert_array_equal(outs["a"], outs["c"])
    assert (outs["a"] != outs["d"]).any()


def test_reconstruct_uses_test_images(tiny_checkpoint, tmp_path, capsys):
    import mnist_data
    rng = numpy.random.RandomState(0)
    folder = tmp_path / "data"
    folder.mkdir()
    for name, n in [("train", 4), ("t10k", 5)]:
        mnist_data.write_idx(str(folder / (name + "-images-idx3-ubyte.gz")),
                             rng.randint(0, 256, (n, 28, 28)).astype(numpy.uint8))
        mnist_data.write_idx(str(folder / (name + "-labels-idx1-ubyte.gz")),
                             rng.randint(0, 10, n).astype(numpy.uint8))
    out = str(tmp_path / "r.png")
    args = generate.parse_args(["--checkpoint", tiny_checkpoint, "--out", out,
                                "--reconstruct", "4", "--data-dir", str(folder), "--no-verify",
                                "--no-progress"])
    cached = generate.generate(args)
    args.sampler = "naive"
    naive = generate.generate(args)
    assert cached.shape == (4, 28, 28, 1)
    numpy.testing.assert_array_equal(cached, naive)


def assert_bad_input(argv, capsys, words, out):
    code, io = run(argv, capsys)
    assert code == 2
    assert words in io.err
    assert not os.path.exists(out) and not os.path.exists(out[:-4] + ".npy")


def test_missing_checkpoint(tmp_path, capsys):
    out = str(tmp_path / "s.png")
    assert_bad_input(["--checkpoint", str(tmp_path / "none.npz"), "--out", out], capsys,
                     "cannot read checkpoint", out)


def test_corrupt_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    out = str(tmp_path / "s.png")
    assert_bad_input(["--checkpoint", str(bad), "--out", out], capsys,
                     "not a readable .npz checkpoint", out)


class _Payload(object):
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_checkpoint_that_tries_to_run_code(tmp_path, capsys):
    victim = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    with open(str(evil), "wb") as f:
        pickle.dump({"MNIST.pixelCNN.pxCNN.vstack1.filter": _Payload(str(victim))}, f)
    out = str(tmp_path / "s.png")
    assert_bad_input(["--checkpoint", str(evil), "--out", out], capsys, "refusing to load", out)
    assert not victim.exists()


def test_num_below_one(tiny_checkpoint, tmp_path, capsys):
    out = str(tmp_path / "s.png")
    assert_bad_input(["--checkpoint", tiny_checkpoint, "--out", out, "--num", "0"], capsys,
                     "--num must be at least 1", out)


def test_unwritable_output(tiny_checkpoint, tmp_path, capsys):
    out = str(tmp_path / "no" / "such" / "dir" / "s.png")
    assert_bad_input(["--checkpoint", tiny_checkpoint, "--out", out], capsys,
                     "cannot write", out)


def test_overrides_that_do_not_fit_list_the_problem(tiny_checkpoint, tmp_path, capsys):
    out = str(tmp_path / "s.png")
    assert_bad_input(["--checkpoint", tiny_checkpoint, "--out", out, "--dim", "8"], capsys,
                     "mis-shaped", out)


@pytest.mark.parametrize("mode, name", [
    ([], "pixelconv.npz"),
    (["--labels", "all"], "gated_class.npz"),
    (["--label", "3"], "gated_class.npz"),
    (["--like-test-index", "0"], "gated_embedding.npz"),
    (["--interpolate", "1", "2"], "gated_embedding.npz"),
])
def test_without_checkpoint_the_shipped_one_for_the_mode_is_used(mode, name, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setattr(generate, "PRETRAINED", str(tmp_path))
    args = generate.parse_args(mode + ["--out", str(tmp_path / "s.png")])
    with pytest.raises(generate.UsageError, match=name):   # not shipped in tmp_path
        generate.load_checkpoint(args)
    (tmp_path / name).write_bytes(open(ORIGINAL, "rb").read())
    args = generate.parse_args(mode + ["--out", str(tmp_path / "s.png")])
    config, _ = generate.load_checkpoint(args)
    assert args.checkpoint == str(tmp_path / name) and config["model"] == "pixelconv"


def test_shipped_default_draws_digits(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(generate, "PRETRAINED", os.path.dirname(ORIGINAL))
    monkeypatch.setattr(generate, "default_checkpoint",
                        lambda args: ORIGINAL)
    out = str(tmp_path / "s.png")
    code, io = run(["--out", out, "--num", "2"], capsys)
    assert code == 0, io.err
    assert "loaded the shipped" in io.out and os.path.exists(out)
