"""Every model through the scripts: train_mnist.py --model ..., then generate.py.

Each model is trained once (module-scoped fixture, one epoch on the tiny synthetic
data of tests.test_train) and its checkpoint is shared by the tests.
"""
import os

import numpy
import pytest

import generate
from lib.checkpoint import read_checkpoint
from models.build import PREFIX
from sampling import has_cached_sampler
from tests.test_generate import assert_grid_shows
from tests.test_pixel_rnn import numpy_logits
from tests.test_train import call_main, cli, data_dir  # noqa: F401  (fixture)

RUNS = {  # run name -> extra train_mnist arguments
    "pixelconv": ["--model", "pixelconv"],
    "gated": ["--model", "gated"],
    "gated-class": ["--model", "gated", "--conditional", "class"],
    "gated-embedding": ["--model", "gated", "--conditional", "embedding", "--embed-dim", "4",
                        "--encoder-steps", "20", "--encoder-dim", "5", "--encoder-convs", "3",
                        "--condition-map", "2"],
    "masked": ["--model", "masked", "--samples-every", "0"],
    # one LSTM layer (the paper's 1-layer Diagonal BiLSTM): the scans compile slowly
    "rowlstm": ["--model", "rowlstm", "--samples-every", "0", "--num-layers", "1"],
    "diagbilstm": ["--model", "diagbilstm", "--samples-every", "0", "--num-layers", "1"],
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def trained(request, data_dir, tmp_path_factory):  # noqa: F811
    """(run name, output folder, epoch checkpoint) after one epoch on the tiny data."""
    out_dir = tmp_path_factory.mktemp(request.param) / "run"
    code, out, err = call_main(cli(data_dir, out_dir, "--epochs", "1", *RUNS[request.param]))
    assert code == 0, err
    [checkpoint] = sorted(out_dir.glob("epoch_001_val_*.npz"))
    return request.param, out_dir, checkpoint


def net_params(config):
    from models import build as builder
    return builder.build(config).all_params.get_params()


def run_generate(argv, capsys):
    code = generate.main(argv + ["--no-progress"])
    return code, capsys.readouterr()


def test_checkpoint_describes_its_model(trained):
    name, out_dir, checkpoint = trained
    arrays, meta = read_checkpoint(str(checkpoint))
    assert meta["model"] == RUNS[name][1]
    assert meta["conditional"] == {"gated-class": "class", "gated-embedding": "embedding"}.get(
        name, "none")
    nll = float(checkpoint.name[len("epoch_001_val_"):-len(".npz")])
    assert numpy.isfinite(nll) and nll > 0
    assert len(arrays) == len(net_params(meta))  # the checkpoint holds exactly the model
    # the embedding run also has a condition map of 2 channels over the 28 x 28 image
    assert meta.get("condition_map", 0) == (2 if name == "gated-embedding" else 0)
    if name == "gated-embedding":
        assert arrays[PREFIX + ".condmap.P"].shape == (28, 28, 2)
    has_encoder = any(".encoder." in n for n in arrays)
    assert has_encoder == (name == "gated-embedding")
    if has_encoder:  # the encoder is sized as asked: three convolutions of 5 maps
        assert (meta["encoder_dim"], meta["encoder_convs"]) == (5, 3)
        assert arrays["MNIST.pixelCNN.encoder.conv3.filter"].shape == (5, 5, 3, 3)
    if "--samples-every" not in RUNS[name]:
        assert (out_dir / "epoch_001_samples.png").exists()
    assert (out_dir / "epoch_001_reconstructions.png").exists()


def reference_draws(config, weights, num, height, width, seed):
    """Raster-order sampling written out for a grey 'masked', 'rowlstm' or 'diagbilstm'
    model: at each pixel, the softmax of the float64 NumPy logits given the pixels drawn
    before it, inverted at that pixel's own number of
    ``numpy.random.default_rng(seed).random((height, width, num))``. Returns bins
    (num, height, width)."""
    q = config["q_levels"]
    u = numpy.random.default_rng(seed).random((height, width, num))
    bins = numpy.zeros((num, height, width), dtype=int)
    for i in range(height):
        for j in range(width):
            image = (bins / (q - 1.0))[..., None]                       # (num, H, W, 1)
            logits = numpy_logits(config["model"], weights, PREFIX, image, q,
                                  config["num_layers"])[:, i, j, 0]     # (num, q)
            p = numpy.exp(logits - logits.max(axis=1, keepdims=True))
            cdf = numpy.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
            bins[:, i, j] = numpy.minimum((cdf < u[i, j, :, None]).sum(axis=1), q - 1)
    return bins


def test_generate_draws_the_models_samples(trained, data_dir, tmp_path, capsys):  # noqa: F811
    """pixelconv and gated: the cached sampler draws the naive sampler's images. masked,
    rowlstm and diagbilstm: the images drawn (by the naive sampler, which generate.py
    then says, where a model has no cached one) are those of a NumPy reference sampler
    on the checkpoint's weights (tests.test_pixel_rnn.numpy_logits)."""
    name, out_dir, checkpoint = trained
    arrays, config = read_checkpoint(str(checkpoint))
    label = {"gated-class": ["--label", "7"],
             "gated-embedding": ["--like-test-index", "3", "--data-dir", str(data_dir),
                                 "--no-verify"]}.get(name, [])
    reference = config["model"] in ("masked", "rowlstm", "diagbilstm")
    results = {}
    for sampler in ("cached",) if reference else ("cached", "naive"):
        out = str(tmp_path / (sampler + ".png"))
        code, io = run_generate(["--checkpoint", str(checkpoint), "--out", out, "--num", "3",
                                 "--height", "5", "--width", "6", "--sampler", sampler,
                                 "--seed", "2"] + label, capsys)
        assert code == 0, io.err
        if sampler == "cached" and not has_cached_sampler(config):
            assert "with the naive sampler (this model has no cached one)" in io.out
        results[sampler] = numpy.load(out[:-4] + ".npy")            # (3, 5, 6), 0..255
    assert results["cached"].shape == (3, 5, 6)
    if not reference:
        numpy.testing.assert_array_equal(results["naive"], results["cached"])
        return
    q = config["q_levels"]
    bins = numpy.rint(results["cached"] / 255.0 * (q - 1)).astype(int)
    numpy.testing.assert_array_equal(numpy.round(bins * 255.0 / (q - 1)), results["cached"])
    numpy.testing.assert_array_equal(bins, reference_draws(config, arrays, 3, 5, 6, seed=2))


def test_class_grid_and_label_errors(trained, tmp_path, capsys):
    name, out_dir, checkpoint = trained
    if name not in ("gated-class", "pixelconv"):
        pytest.skip("label handling is checked on one conditional and one plain model")
    out = str(tmp_path / "grid.png")
    base = ["--checkpoint", str(checkpoint), "--out", out, "--height", "4", "--width", "4"]
    if name == "pixelconv":
        code, io = run_generate(base + ["--label", "3"], capsys)
        assert code == 2 and "need a class-conditional checkpoint" in io.err
        return
    code, io = run_generate(base + ["--labels", "all", "--num", "20"], capsys)
    assert code == 0, io.err
    images = numpy.load(out[:-4] + ".npy")
    assert images.shape == (20, 4, 4)
    from PIL import Image
    picture = numpy.asarray(Image.open(out))
    assert_grid_shows(picture, images, 10, 2)  # one row per digit
    assert (picture[:, :-2 * (2 * 6 + 2)] < 128).any()  # their labels in a margin
    for argv, words in [(["--label", "12"], "--label must be a digit 0..9"),
                        ([], "choose a digit with --label"),
                        (["--labels", "some"], "--labels takes 'all'")]:
        code, io = run_generate(base + argv, capsys)
        assert code == 2 and words in io.err


def test_conditioning_a_model_that_cannot_take_it_is_refused(data_dir, tmp_path):  # noqa: F811
    code, out, err = call_main(cli(data_dir, tmp_path / "run", "--model", "masked",
                                   "--conditional", "class"))
    assert code == 2 and "only the gated model can be conditioned" in err


def test_embedding_generation(trained, data_dir, tmp_path, capsys):  # noqa: F811
    """--like a picture, --interpolate between two test images, and their errors."""
    name, out_dir, checkpoint = trained
    if name not in ("gated-embedding", "gated-class"):
        pytest.skip("checked on the embedding model, and refused on the class model")
    from PIL import Image
    digit = str(tmp_path / "digit.png")
    Image.fromarray(numpy.tile(numpy.arange(28, dtype=numpy.uint8) * 9, (28, 1))).save(digit)
    base = ["--checkpoint", str(checkpoint), "--height", "4", "--width", "5",
            "--data-dir", str(data_dir), "--no-verify"]
    out = str(tmp_path / "e.png")
    if name == "gated-class":
        code, io = run_generate(base + ["--out", out, "--like", digit], capsys)
        assert code == 2 and "has no image encoder" in io.err
        return
    code, io = run_generate(base + ["--out", out, "--like", digit, "--num", "3"], capsys)
    assert code == 0, io.err
    assert numpy.load(out[:-4] + ".npy").shape == (3, 4, 5)
    assert "note:" not in io.out  # a grey picture needs no conversion
    colour = str(tmp_path / "colour.png")
    Image.open(digit).convert("RGB").save(colour)
    code, io = run_generate(base + ["--out", out, "--like", colour, "--num", "3"], capsys)
    assert code == 0, io.err
    assert "note: " + colour + " is a RGB picture; using its grey levels" in io.out
    code, io = run_generate(base + ["--out", out, "--interpolate", "0", "1", "--steps", "3",
                                    "--num", "2"], capsys)
    assert code == 0, io.err
    assert numpy.load(out[:-4] + ".npy").shape == (6, 4, 5)
    assert Image.open(out).size == (2 * (3 * 7 + 2), 2 * (2 * 6 + 2))  # 2 rows of 3
    big = str(tmp_path / "big.png")
    Image.fromarray(numpy.zeros((30, 30), numpy.uint8)).save(big)
    bad_out = str(tmp_path / "bad.png")
    for argv, words in [(["--like", big], "needs a 28x28 picture"),
                        (["--like", str(tmp_path / "none.png")], "cannot read picture"),
                        (["--like-test-index", "999"], "outside 0..29"),
                        ([], "conditioned on image embeddings"),
                        (["--label", "3"], "need a class-conditional checkpoint")]:
        code, io = run_generate(base + ["--out", bad_out] + argv, capsys)
        assert code == 2 and words in io.err, (argv, io.err)
        assert not os.path.exists(bad_out)
    # its condition map covers 28 x 28 positions, no more
    code, io = run_generate(["--checkpoint", str(checkpoint), "--out", bad_out, "--height",
                             "29", "--like-test-index", "0", "--data-dir", str(data_dir),
                             "--no-verify"], capsys)
    assert code == 2 and "condition map of 28 x 28 positions" in io.err, io.err
    assert not os.path.exists(bad_out)
