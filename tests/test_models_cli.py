"""Every model through the scripts: train_mnist.py --model ..., then generate.py."""
import os

import numpy
import pytest

import generate
from lib.checkpoint import read_checkpoint
from tests.test_train import call_main, cli, data_dir  # noqa: F401  (fixture)

RUNS = {  # run name -> extra train_mnist arguments
    "pixelconv": ["--model", "pixelconv"],
    "gated": ["--model", "gated"],
    "gated-class": ["--model", "gated", "--conditional", "class"],
    "gated-embedding": ["--model", "gated", "--conditional", "embedding", "--embed-dim", "4",
                        "--encoder-steps", "20"],
    "masked": ["--model", "masked", "--samples-every", "0"],
    "rowlstm": ["--model", "rowlstm", "--samples-every", "0"],
    "diagbilstm": ["--model", "diagbilstm", "--samples-every", "0"],
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
    has_encoder = any(".encoder." in n for n in arrays)
    assert has_encoder == (name == "gated-embedding")
    if "--samples-every" not in RUNS[name]:
        assert (out_dir / "epoch_001_samples.png").exists()
    assert (out_dir / "epoch_001_reconstructions.png").exists()


def test_generate_naive_and_cached_agree(trained, data_dir, tmp_path, capsys):  # noqa: F811
    name, out_dir, checkpoint = trained
    label = {"gated-class": ["--label", "7"],
             "gated-embedding": ["--like-test-index", "3", "--data-dir", str(data_dir),
                                 "--no-verify"]}.get(name, [])
    results = {}
    for sampler in ("naive", "cached"):
        out = str(tmp_path / (sampler + ".png"))
        code, io = run_generate(["--checkpoint", str(checkpoint), "--out", out, "--num", "3",
                                 "--height", "5", "--width", "6", "--sampler", sampler,
                                 "--seed", "2"] + label, capsys)
        assert code == 0, io.err
        results[sampler] = numpy.load(out[:-4] + ".npy")
    assert results["naive"].shape == (3, 5, 6)
    # cached where the model has one (pixelconv, gated), naive otherwise: same images
    numpy.testing.assert_array_equal(results["naive"], results["cached"])


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
    assert numpy.load(out[:-4] + ".npy").shape == (20, 4, 4)
    from PIL import Image
    assert Image.open(out).size == (2 * (2 * 6 + 2), 2 * (10 * 6 + 2))  # 10 rows of 2
    for argv, words in [(["--label", "12"], "--label must be a digit 0..9"),
                        ([], "choose a digit with --label"),
                        (["--labels", "some"], "--labels takes 'all'")]:
        code, io = run_generate(base + argv, capsys)
        assert code == 2 and words in io.err


def test_conditioning_a_model_that_cannot_take_it_is_refused(data_dir, tmp_path):  # noqa: F811
    code, out, err = call_main(cli(data_dir, tmp_path / "run", "--model", "masked",
                                   "--conditional", "class"))
    assert code == 1 and "only the gated model can be conditioned" in err


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
