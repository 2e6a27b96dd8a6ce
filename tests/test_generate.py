"""generate.py: outputs, config inference, original checkpoints and bad input."""
import os
import pickle
from types import SimpleNamespace

import numpy
import pytest

import generate
from lib import floatX
from lib.checkpoint import load_arrays
from models import build as builder
from sampling.cached import sample_cached
from sampling.cached_pixel_conv import CachedPixelConv
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


def assert_grid_shows(picture, images, rows, cols):
    """picture (P, Q) uint8 ends (on the right; a label margin may come first) with the
    grid of images (num, h, w) uint8: rows x cols, 2 px apart, every pixel enlarged 2x."""
    num, h, w = images.shape
    grid_width = 2 * (cols * (w + 2) + 2)
    assert picture.shape[0] == 2 * (rows * (h + 2) + 2) and picture.shape[1] >= grid_width
    grid = picture[:, picture.shape[1] - grid_width:]
    for k, image in enumerate(images):
        top, left = 2 * (2 + (k // cols) * (h + 2)), 2 * (2 + (k % cols) * (w + 2))
        numpy.testing.assert_array_equal(grid[top:top + 2 * h, left:left + 2 * w],
                                         image.repeat(2, axis=0).repeat(2, axis=1),
                                         err_msg="image {}".format(k))


def assert_all_different(images):
    """No two of images (num, ...) are the same."""
    assert len({image.tobytes() for image in images}) == len(images)


def display(bins, q_levels):
    """Bins -> 0..255 grey levels, bin b at round(255 b / (q_levels - 1))."""
    return numpy.round(numpy.asarray(bins) * 255.0 / (q_levels - 1)).astype(numpy.uint8)


def test_infers_the_configuration_from_parameter_shapes(tiny_checkpoint):
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
    assert_all_different(pictures)
    # the images the recorded weights of the same model draw for seed 3
    with numpy.load(fixture_path("mnist_small.npz")) as recorded:
        weights = {k[len("param/"):]: recorded[k] for k in recorded.files
                   if k.startswith("param/")}
    bins = sample_cached(CachedPixelConv(weights, "MNIST.pixelCNN.pxCNN", 4, 1, 4), 25, 28, 28,
                         seed=3, progress=False)
    numpy.testing.assert_array_equal(pictures, display(bins[..., 0], 4))
    from PIL import Image
    assert_grid_shows(numpy.asarray(Image.open(out)), pictures, 5, 5)


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
    assert set(numpy.unique(outs["a"])) == {0, 128, 255}  # 3 levels on 0..255
    assert_all_different(outs["a"])  # each image its own random numbers
    numpy.testing.assert_array_equal(outs["a"], outs["b"])
    numpy.testing.assert_array_equal(outs["a"], outs["c"])
    assert (outs["a"] != outs["d"]).any()


def write_test_split(folder, count=5):
    """Random test images (count, 28, 28) uint8 and labels as IDX files in ``folder``."""
    from data import mnist
    rng = numpy.random.RandomState(0)
    folder.mkdir()
    images = rng.randint(0, 256, (count, 28, 28)).astype(numpy.uint8)
    mnist.write_idx(str(folder / "t10k-images-idx3-ubyte.gz"), images)
    mnist.write_idx(str(folder / "t10k-labels-idx1-ubyte.gz"),
                    rng.randint(0, 10, count).astype(numpy.uint8))
    return images


def test_reconstruct_draws_a_colour_model_on_grey_in_every_channel(tmp_path):
    """A colour checkpoint is given each test image's grey bins on all three
    channels; the cached and naive samplers agree on the draw."""
    numpy.random.seed(0)
    net = builder.build({"input_dim": 3, "dim": 4, "num_layers": 3, "q_levels": 3})
    for p in net.model.get_params():
        p.set_value(floatX(numpy.random.uniform(-0.5, 0.5, p.get_value().shape)))
    checkpoint = str(tmp_path / "colour.npz")
    net.model.save_params(checkpoint)
    folder = tmp_path / "data"
    images = write_test_split(folder)
    args = generate.parse_args(["--checkpoint", checkpoint, "--out", str(tmp_path / "r.png"),
                                "--reconstruct", "2", "--data-dir", str(folder),
                                "--no-verify", "--no-progress"])
    plain = SimpleNamespace(config={"q_levels": 3, "input_dim": 3}, encoder=None, H=None)
    given, condition = generate.reconstruction_inputs(args, plain)
    truth = (images[:2].astype(numpy.float64) * 3 / 256).astype(numpy.uint8)  # 3 bins
    numpy.testing.assert_array_equal(given, numpy.repeat(truth[..., None], 3, axis=-1))
    assert condition is None
    cached = generate.generate(args)
    args.sampler = "naive"
    assert cached.shape == (2, 28, 28, 3)
    numpy.testing.assert_array_equal(cached, generate.generate(args))


def test_reconstruct_uses_test_images(tiny_checkpoint, tmp_path, capsys):
    folder = tmp_path / "data"
    # only the test split's two files: --reconstruct needs no training images
    images = write_test_split(folder)
    out = str(tmp_path / "r.png")
    args = generate.parse_args(["--checkpoint", tiny_checkpoint, "--out", out,
                                "--reconstruct", "4", "--data-dir", str(folder), "--no-verify",
                                "--no-progress"])
    cached = generate.generate(args)
    args.sampler = "naive"
    naive = generate.generate(args)
    assert cached.shape == (4, 28, 28, 1)
    numpy.testing.assert_array_equal(cached, naive)
    # each pixel drawn given the true pixels before it: the first 4 test images in
    # 3 bins (floor(3 v / 256)), seed 0
    truth = (images[:4].astype(numpy.float64) * 3 / 256).astype(numpy.uint8)[..., None]
    evaluator = CachedPixelConv(load_arrays(tiny_checkpoint), builder.PREFIX, 3, 1, 3)
    numpy.testing.assert_array_equal(
        cached, sample_cached(evaluator, 4, 28, 28, seed=0, given=truth, progress=False))
    args.reconstruct = 6
    with pytest.raises(generate.UsageError, match="more images than the test split's 5"):
        generate.generate(args)


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


@pytest.mark.parametrize("argv, words", [
    (["--temperature", "nan"], "--temperature must be a finite number > 0"),
    (["--temperature", "inf"], "--temperature must be a finite number > 0"),
    (["--temperature", "0"], "--temperature must be a finite number > 0"),
    (["--seed", "-1"], "--seed must be at least 0"),
])
def test_bad_values_are_refused(tiny_checkpoint, tmp_path, capsys, argv, words):
    out = str(tmp_path / "s.png")
    assert_bad_input(["--checkpoint", tiny_checkpoint, "--out", out] + argv, capsys, words, out)


def test_help_explains_every_option_once(capsys):
    with pytest.raises(SystemExit) as exit_:
        generate.parse_args(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "exit codes" in text
    for action in generate.build_parser()._actions:
        assert action.help, action.option_strings


# ----- issue 29: bad input, lost files, interruptions -------------------------------------

def test_classifier_file_is_named_as_such(tmp_path, capsys):
    from lib.checkpoint import save_arrays
    path = str(tmp_path / "classifier.npz")
    save_arrays(path, {"classifier.fc2.b": numpy.zeros(10, numpy.float32)},
                meta={"model": "classifier", "q_levels": 4})
    out = str(tmp_path / "s.png")
    code, io = run(["--checkpoint", path, "--out", out], capsys)
    assert code == 2 and len(io.err.strip().splitlines()) == 1
    assert "the digit classifier's file" in io.err and "not a generative model" in io.err
    assert not os.path.exists(out)


@pytest.mark.parametrize("argv, words", [
    (["--dim", "0"], "--dim must be at least 1, got 0"),
    (["--num-layers", "0"], "--num-layers must be at least 1"),
    (["--num-layers", "1"], "num_layers >= 2, got 1"),     # pixelconv's own minimum
    (["--input-dim", "2"], "--input-dim must be 1 (grey) or 3 (colour)"),
    (["--q-levels", "1"], "--q-levels must be from 2 to 256"),
    (["--reconstruct", "2", "--height", "20"], "--reconstruct draws at the test images' own"),
    (["--reconstruct", "2", "--width", "9"], "leave out --height and --width"),
])
def test_model_overrides_and_sizes_that_cannot_work(tiny_checkpoint, tmp_path, capsys, argv,
                                                    words):
    out = str(tmp_path / "s.png")
    code, io = run(["--checkpoint", tiny_checkpoint, "--out", out] + argv, capsys)
    assert code == 2, io.err
    assert words in io.err and len(io.err.strip().splitlines()) == 1
    assert "Traceback" not in io.err and not os.path.exists(out)


def test_more_images_than_memory_holds_are_refused_before_drawing(tiny_checkpoint, tmp_path,
                                                                  capsys, monkeypatch):
    def no_drawing(*args, **kwargs):
        raise AssertionError("sampling started")

    monkeypatch.setattr("sampling.sample", no_drawing)
    out = str(tmp_path / "s.png")
    code, io = run(["--checkpoint", tiny_checkpoint, "--out", out, "--num", "1000000000"],
                   capsys)
    assert code == 2 and len(io.err.strip().splitlines()) == 1
    assert "1,000,000,000 images of 28 x 28 need at least" in io.err
    assert "available" in io.err and not os.path.exists(out)
    # the estimate grows with the images and, for the naive sampler, with the image area
    config = {"input_dim": 1, "dim": 4, "num_layers": 3}
    cached = generate.memory_needed(10, 28, 28, config, "cached")
    assert generate.memory_needed(20, 28, 28, config, "cached") == 2 * cached
    assert generate.memory_needed(10, 28, 28, config, "naive") > cached


def test_ctrl_c_exits_130_without_a_traceback_and_writes_nothing(tiny_checkpoint, tmp_path,
                                                                 capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("sampling.sample", interrupted)
    out = str(tmp_path / "s.png")
    code, io = run(["--checkpoint", tiny_checkpoint, "--out", out, "--num", "2"], capsys)
    assert code == 130 and io.err.strip() == "interrupted; nothing was written"
    assert os.listdir(str(tmp_path)) == []


def test_out_that_is_a_folder_is_refused_before_sampling_and_keeps_the_npy(
        tiny_checkpoint, tmp_path, capsys, monkeypatch):
    (tmp_path / "x.png").mkdir()
    npy = tmp_path / "x.npy"
    npy.write_bytes(b"the user's own file")
    monkeypatch.setattr("sampling.sample", lambda *a, **k: pytest.fail("sampling started"))
    code, io = run(["--checkpoint", tiny_checkpoint, "--out", str(tmp_path / "x.png")], capsys)
    assert code == 2 and "it is a folder" in io.err
    assert npy.read_bytes() == b"the user's own file"


def test_read_only_folder_is_refused_before_sampling(tiny_checkpoint, tmp_path, capsys,
                                                     monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    monkeypatch.setattr("sampling.sample", lambda *a, **k: pytest.fail("sampling started"))
    monkeypatch.setattr(os, "access", lambda path, mode: os.path.abspath(path) != str(folder))
    code, io = run(["--checkpoint", tiny_checkpoint, "--out", str(folder / "s.png")], capsys)
    assert code == 2 and "is not writable" in io.err


@pytest.mark.parametrize("failure, exit_code, words", [
    (OSError(28, "No space left on device"), 1, "No space left"),
    (KeyboardInterrupt(), 130, "interrupted; nothing was written")])
def test_a_failed_write_leaves_the_users_files_as_they_were(tiny_checkpoint, tmp_path, capsys,
                                                            monkeypatch, failure, exit_code,
                                                            words):
    """The .npy is written first; when the picture then fails (or Ctrl-C comes), the
    user's earlier .npy and .png are still there, unchanged, and no temporary file is
    left."""
    from lib import checkpoint
    png, npy = tmp_path / "x.png", tmp_path / "x.npy"
    png.write_bytes(b"old picture")
    npy.write_bytes(b"old arrays")
    real = checkpoint.atomic_write

    def failing_for_the_picture(path, write):
        if path.endswith("x.png"):
            raise failure
        return real(path, write)

    monkeypatch.setattr(checkpoint, "atomic_write", failing_for_the_picture)
    code, io = run(["--checkpoint", tiny_checkpoint, "--out", str(png), "--num", "2"], capsys)
    assert code == exit_code and words in io.err
    assert png.read_bytes() == b"old picture" and npy.read_bytes() == b"old arrays"
    assert sorted(os.listdir(str(tmp_path))) == ["x.npy", "x.png"]
    # and without the failure both are replaced
    monkeypatch.setattr(checkpoint, "atomic_write", real)
    code, io = run(["--checkpoint", tiny_checkpoint, "--out", str(png), "--num", "2"], capsys)
    assert code == 0 and numpy.load(str(npy)).shape == (2, 28, 28)
    assert sorted(os.listdir(str(tmp_path))) == ["x.npy", "x.png"]


def png_header_only(path, width, height):
    """A PNG file of ``width`` x ``height`` 8-bit grey pixels: its header and no pixel data
    (enough for Pillow to read the size)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xffffffff)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side, words", [(14000, "far too large to read"),
                                         (10000, "is 10000x10000 pixels")])
def test_huge_like_picture_is_refused_in_one_line(tmp_path, side, words):
    path = str(tmp_path / "huge.png")
    png_header_only(path, side, side)
    with pytest.raises(generate.UsageError, match=words) as err:
        generate.read_picture(path, 4)
    assert "\n" not in str(err.value)


def test_16_bit_picture_is_scaled_not_clipped(tmp_path):
    """The same digit saved with 8 and with 16 bits per pixel gives the same bins."""
    from PIL import Image
    grey = numpy.random.RandomState(0).randint(0, 256, (28, 28)).astype(numpy.uint8)
    grey[0, :4] = [0, 1, 128, 255]
    Image.fromarray(grey).save(str(tmp_path / "8.png"))
    Image.fromarray((grey.astype(numpy.uint16) * 257), "I;16").save(str(tmp_path / "16.png"))
    assert Image.open(str(tmp_path / "16.png")).mode in ("I", "I;16")   # really 16-bit
    for q in (4, 256):
        expected = generate.read_picture(str(tmp_path / "8.png"), q)
        numpy.testing.assert_array_equal(generate.read_picture(str(tmp_path / "16.png"), q),
                                         expected)
    assert len(numpy.unique(expected)) > 4


def test_32_bit_float_picture_is_refused(tmp_path):
    from PIL import Image
    path = str(tmp_path / "f.tiff")
    Image.fromarray(numpy.full((28, 28), 0.5, numpy.float32), "F").save(path)
    with pytest.raises(generate.UsageError, match="save it as an 8-bit greyscale picture"):
        generate.read_picture(path, 4)
