"""compress.py and codec/: round trips for every model kind, across processes; the code
length against the fixed-point probabilities; damaged files, other checkpoints, other
numerics and bad input refused; Ctrl-C leaves nothing behind.

Models are tiny and randomly initialised (no Theano function is compiled: the codec
runs the cached evaluators in NumPy), images a few pixels wide.
"""
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy
import pytest
from PIL import Image

import compress
import quantize
from codec import batches, coder, container, model as models
from conftest import write_random_mnist
from lib.checkpoint import save_arrays
from models import build as builder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST_DIR = os.environ.get("MNIST_DIR")
SHIPPED = os.path.join(ROOT, "pretrained", "binarized_diagbilstm.npz")

KINDS = {
    "pixelconv-grey-q4": dict(model="pixelconv", input_dim=1, dim=4, num_layers=3, q_levels=4),
    "pixelconv-colour-q4": dict(model="pixelconv", input_dim=3, dim=6, num_layers=3,
                                q_levels=4),
    "gated-grey-q2": dict(model="gated", input_dim=1, dim=4, num_layers=3, q_levels=2),
    "gated-colour-q4": dict(model="gated", input_dim=3, dim=6, num_layers=3, q_levels=4),
    "gated-class-q4": dict(model="gated", input_dim=1, dim=4, num_layers=3, q_levels=4,
                           conditional="class", condition_map=2),
    "masked-grey-q2": dict(model="masked", input_dim=1, dim=4, num_layers=1, q_levels=2),
    "masked-colour-q4": dict(model="masked", input_dim=3, dim=6, num_layers=1, q_levels=4),
    "rowlstm-grey-q2": dict(model="rowlstm", input_dim=1, dim=4, num_layers=1, q_levels=2),
    "rowlstm-colour-q2": dict(model="rowlstm", input_dim=3, dim=6, num_layers=1, q_levels=2),
    "diagbilstm-grey-q2": dict(model="diagbilstm", input_dim=1, dim=4, num_layers=1,
                               q_levels=2),
    "diagbilstm-colour-q4": dict(model="diagbilstm", input_dim=3, dim=6, num_layers=1,
                                 q_levels=4),
}


def write_checkpoint(path, config, seed):
    """Random weights (biases too, so that predictions are far from uniform)."""
    config = dict(config)
    config.setdefault("conditional", "none")
    numpy.random.seed(seed)
    net = builder.build(config)
    rng = numpy.random.RandomState(seed + 1)
    weights = {name: rng.uniform(-0.5, 0.5, value.shape).astype(numpy.float32)
               for name, value in net.all_params.param_values().items()}
    save_arrays(str(path), weights, meta=config)
    return str(path)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    return {kind: write_checkpoint(folder / (kind + ".npz"), config, 10 + k)
            for k, (kind, config) in enumerate(sorted(KINDS.items()))}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Random MNIST-format files (read with --no-verify-data)."""
    return str(write_random_mnist(tmp_path_factory.mktemp("mnist"), {"train": 5, "test": 6}))


def run(argv):
    """compress.main in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = compress.main(argv + ["--no-progress"] if argv[0] != "info" else argv)
    return code, out.getvalue(), err.getvalue()


def random_bins(config, num=3, height=5, width=6, seed=0):
    rng = numpy.random.RandomState(seed)
    return rng.randint(0, config["q_levels"], (num, height, width, config["input_dim"])
                       ).astype(numpy.uint8)


def labels_for(config, num, seed=0):
    if config.get("conditional") != "class":
        return None
    return numpy.random.RandomState(seed).randint(0, 10, num).astype(numpy.uint8)


# ----- the coder ----------------------------------------------------------------------
def test_fixed_point_weights_are_positive_and_sum_to_the_total():
    rng = numpy.random.RandomState(0)
    logits = numpy.concatenate([rng.normal(0, 3, (500, 4)), [[0, 800, -800, 0], [0, 0, 0, 0]],
                                rng.normal(0, 60, (500, 4))]).astype(numpy.float32)
    weights = coder.fixed_point(coder.probabilities(logits))
    assert weights.min() >= 1
    assert (weights.sum(axis=1) == coder.TOTAL).all()
    assert weights[500].tolist() == [1, coder.TOTAL - 3, 1, 1]


def test_constriction_codes_with_exactly_the_given_weights():
    """Weights far from what a rescaling quantizer would give: symbol 0 at 1 / 2**24 costs
    24 bits, so any other quantization would show in the length."""
    weights = numpy.array([[1, coder.TOTAL - 1], [coder.TOTAL - 2, 2]] * 100, dtype=numpy.int64)
    symbols = numpy.array([0, 1] * 100, dtype=numpy.int32)
    encoder = coder.constriction.stream.queue.RangeEncoder()
    encoder.encode(symbols, coder.FAMILY, (weights - 1).astype(numpy.float64))
    bits = 32 * len(encoder.get_compressed())
    information = coder.information(weights, symbols)
    assert information == pytest.approx(100 * (24 + 23))
    assert information <= bits <= information + 64


def test_code_length_is_the_information_of_the_fixed_point_probabilities(checkpoints):
    model = models.load(checkpoints["pixelconv-grey-q4"])
    bins = random_bins(model.config, num=40, height=8, width=7)
    coded, nll, info = batches.encode(model, bins, None, batch_size=15, progress=False)
    bits = 32 * sum(len(words) for _, words in coded)
    assert info <= bits <= info + 64 * len(coded)          # the range coder's ends
    assert abs(info - nll) <= 1e-3 * bins.size            # 24-bit weights lose next to nothing
    assert nll > 0.5 * bins.size                          # random images: far from free


# ----- round trips --------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_round_trip_for_every_model_kind(checkpoints, kind):
    model = models.load(checkpoints[kind])
    bins = random_bins(model.config, num=5)
    labels = labels_for(model.config, 5)
    coded, _, _ = batches.encode(model, bins, labels, batch_size=2, progress=False)
    assert len(coded) == 3                                # 2 + 2 + 1 images
    decoded, decoded_labels = batches.decode(model, coded, bins.shape, 2, progress=False)
    assert numpy.array_equal(decoded, bins)
    if labels is None:
        assert decoded_labels is None
    else:
        assert numpy.array_equal(decoded_labels, labels)


def test_another_model_cannot_decode_a_batch(checkpoints, tmp_path):
    model = models.load(checkpoints["masked-grey-q2"])
    other = models.load(write_checkpoint(tmp_path / "other.npz", KINDS["masked-grey-q2"], 99))
    bins = random_bins(model.config, num=4, height=6, width=6)
    coded, _, _ = batches.encode(model, bins, None, batch_size=4, progress=False)
    with pytest.raises(batches.MismatchError, match="batch 1 of 1"):
        batches.decode(other, coded, bins.shape, 4, progress=False)


def cli_jobs(checkpoints, data_dir, folder):
    """[(encode argv, decode argv, expected bins, expected labels, check)] covering every
    kind and every input: .npy of 0..255 images (quantized by the tool) or bins,
    PNG files, MNIST test images (random files, and the real ones where present)."""
    jobs = []
    rng = numpy.random.RandomState(5)
    for kind in sorted(KINDS):
        config = KINDS[kind]
        shape = (3, 5, 6) if config["input_dim"] == 1 else (3, 5, 6, 3)
        raw = rng.randint(0, 256, shape).astype(numpy.uint8)
        numpy.save(str(folder / (kind + ".npy")), raw)
        encode = ["encode", "--checkpoint", checkpoints[kind], "--npy",
                  str(folder / (kind + ".npy")), "--out", str(folder / (kind + ".pxc")),
                  "--batch-size", "2", "--workers", "2" if kind.startswith("diag") else "1"]
        labels = None
        if config.get("conditional") == "class":
            encode += ["--labels", "3,1,4"]
            labels = numpy.array([3, 1, 4], dtype=numpy.uint8)
        decode = ["decode", str(folder / (kind + ".pxc")), "--out",
                  str(folder / (kind + "_out.npy")), "--workers", "2"]
        jobs.append((encode, decode, quantize.to_targets(raw, config["q_levels"]), labels,
                     kind + "_out.npy"))
    # bins as given
    bins = rng.randint(0, 2, (4, 7, 5)).astype(numpy.uint8)
    numpy.save(str(folder / "bins.npy"), bins)
    jobs.append((["encode", "--checkpoint", checkpoints["rowlstm-grey-q2"], "--npy",
                  str(folder / "bins.npy"), "--bins", "--out", str(folder / "bins.pxc")],
                 ["decode", str(folder / "bins.pxc"), "--out", str(folder / "bins_out.npy")],
                 bins, None, "bins_out.npy"))
    # PNG files in, a folder of PNGs out (grey and colour)
    for kind, shape in (("pixelconv-grey-q4", (6, 4)), ("gated-colour-q4", (6, 4, 3))):
        pngs = folder / (kind + "_pngs")
        pngs.mkdir()
        raw = rng.randint(0, 256, (2,) + shape).astype(numpy.uint8)
        for k, image in enumerate(raw):
            Image.fromarray(image).save(str(pngs / "digit{}.png".format(k)))
        jobs.append((["encode", "--checkpoint", checkpoints[kind], "--png", str(pngs),
                      "--out", str(folder / (kind + "_png.pxc"))],
                     ["decode", str(folder / (kind + "_png.pxc")), "--out",
                      str(folder / (kind + "_decoded"))],
                     quantize.to_targets(raw, 4), None, kind + "_decoded"))
    # MNIST test images: binarized for a two-level model, quantized for a 4-level one,
    # with their labels for a class-conditional one
    sources = [(data_dir, "random")] + ([(MNIST_DIR, "real")] if MNIST_DIR else [])
    for folder_of_data, name in sources:
        from data import binarized, mnist
        test = mnist.load_dataset(folder_of_data, verify=False, splits=("test",))
        grey, digits = test["test_images"][:2], test["test_labels"][:2]
        two = quantize.to_targets(binarized.binarize(
            test["test_images"], numpy.random.RandomState(binarized.TEST_SEED))[:2], 2)
        for kind, expected, labels in (("diagbilstm-grey-q2", two, None),
                                       ("pixelconv-grey-q4", quantize.to_targets(grey, 4), None),
                                       ("gated-class-q4", quantize.to_targets(grey, 4), digits)):
            stem = "{}_{}_test".format(kind, name)
            jobs.append((["encode", "--checkpoint", checkpoints[kind], "--test", "2",
                          "--data-dir", folder_of_data, "--no-verify-data",
                          "--out", str(folder / (stem + ".pxc"))],
                         ["decode", str(folder / (stem + ".pxc")), "--out",
                          str(folder / (stem + ".npy"))], expected, labels, stem + ".npy"))
    return jobs


def run_in_subprocess(argvs):
    """Run compress.main on each argv in one new Python process: the exit codes."""
    script = ("import json, sys; sys.path.insert(0, {root!r}); import compress; "
              "codes = [compress.main(a + ['--no-progress']) for a in json.loads(sys.argv[1])]; "
              "print('CODES=' + json.dumps(codes))").format(root=ROOT)
    out = subprocess.run([sys.executable, "-c", script, json.dumps(argvs)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("CODES=")]
    assert lines, out.stderr
    return json.loads(lines[-1][len("CODES="):]), out


def test_round_trips_across_processes(checkpoints, data_dir, tmp_path):
    """Encoded in one process, decoded in another: every kind, every input."""
    jobs = cli_jobs(checkpoints, data_dir, tmp_path)
    codes, out = run_in_subprocess([job[0] for job in jobs])
    assert codes == [0] * len(jobs), out.stderr
    assert "quantized by compress.py to 4 levels" in out.stdout
    assert "binarized as evaluate.py binarizes them" in out.stdout
    codes, out = run_in_subprocess([job[1] for job in jobs])
    assert codes == [0] * len(jobs), out.stderr
    for _, _, expected, labels, name in jobs:
        path = tmp_path / name
        if path.is_dir():   # PNGs of the bins' display values, under their own names
            q = 4
            got = numpy.stack([numpy.asarray(Image.open(str(path / "digit{}.png".format(k))))
                               for k in range(len(expected))])
            assert numpy.array_equal(got, quantize.to_display(expected, q)), name
            continue
        decoded = numpy.load(str(path))
        assert decoded.dtype == numpy.uint8 and numpy.array_equal(decoded, expected), name
        labels_file = str(path)[:-len(".npy")] + "_labels.npy"
        if labels is not None:
            assert numpy.array_equal(numpy.load(labels_file), labels), name
        else:
            assert not os.path.exists(labels_file)


@pytest.mark.skipif(not MNIST_DIR, reason="needs the real MNIST ($MNIST_DIR)")
def test_the_shipped_model_codes_real_digits_near_their_nll(tmp_path):
    path = str(tmp_path / "two.pxc")
    code, out, err = run(["encode", "--test", "2", "--checkpoint", SHIPPED, "--out", path,
                          "--data-dir", MNIST_DIR, "--verify", "--workers", "1"])
    assert code == 0, err
    assert "verified" in out
    header, coded = container.read(path)
    payload = 32 * sum(len(words) for _, words in coded)
    assert header["information_bits"] <= payload <= header["information_bits"] + 64
    assert header["nll_bits"] / (2 * 784) < 0.2           # about 0.146 bits per pixel
    assert header["model"]["sha256"] == models.sha256_of(SHIPPED)
    code, _, err = run(["decode", path, "--out", str(tmp_path / "two.npy"), "--workers", "1"])
    assert code == 0, err


# ----- damaged files, other checkpoints, other numerics --------------------------------
@pytest.fixture
def encoded(checkpoints, tmp_path):
    """(file, checkpoint, expected bins) of 5 random images in 3 batches."""
    config = KINDS["masked-grey-q2"]
    bins = random_bins(config, num=5, height=6, width=5)[..., 0]
    numpy.save(str(tmp_path / "in.npy"), bins)
    path = str(tmp_path / "in.pxc")
    code, _, err = run(["encode", "--checkpoint", checkpoints["masked-grey-q2"], "--npy",
                        str(tmp_path / "in.npy"), "--bins", "--out", path, "--batch-size", "2",
                        "--workers", "1"])
    assert code == 0, err
    return path, checkpoints["masked-grey-q2"], bins


def decode_to(tmp_path, path, *extra):
    out = str(tmp_path / "out.npy")
    code, stdout, err = run(["decode", path, "--out", out, "--workers", "1"] + list(extra))
    return code, err, out


def rewrite(path, change_header=None, change_batches=None):
    """Rewrite a file with its header or batches changed and a valid file checksum."""
    with open(path, "rb") as f:
        header, coded = container.unpack(f.read())
    if change_header:
        change_header(header)
    if change_batches:
        change_batches(coded)
    container.save(path, container.pack(header, coded))


def test_a_flipped_payload_byte_is_detected(encoded, tmp_path):
    path, _, _ = encoded
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[-40] ^= 0x10                      # in the last batch's words
    with open(path, "wb") as f:
        f.write(bytes(data))
    code, err, out = decode_to(tmp_path, path)
    assert code == 2 and "damaged" in err and "nothing was decoded" in err
    assert not os.path.exists(out)


def test_a_truncated_file_is_detected(encoded, tmp_path):
    path, _, _ = encoded
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:-7])
    code, err, out = decode_to(tmp_path, path)
    assert code == 2 and "damaged (truncated or altered)" in err
    assert not os.path.exists(out)


def test_a_batch_whose_checksum_fails_writes_nothing(encoded, tmp_path):
    """What other numerics would do: a batch decodes to other images than encoded."""
    path, _, _ = encoded

    def wrong_digest(coded):
        coded[1] = (bytes(8), coded[1][1])
    rewrite(path, change_batches=wrong_digest)
    code, err, out = decode_to(tmp_path, path)
    assert code == 2 and "batch 2 of 3" in err and "Nothing was written" in err
    assert not os.path.exists(out)


def test_another_checkpoint_is_refused(encoded, tmp_path):
    path, _, _ = encoded
    other = write_checkpoint(tmp_path / "other.npz", KINDS["masked-grey-q2"], 77)
    code, err, out = decode_to(tmp_path, path, "--checkpoint", other)
    assert code == 2 and "not the checkpoint the file was encoded with" in err
    assert not os.path.exists(out)


def test_a_missing_recorded_checkpoint_is_asked_for(encoded, tmp_path):
    path, checkpoint, bins = encoded
    rewrite(path, lambda h: h["model"].update(path=str(tmp_path / "moved.npz")))
    code, err, out = decode_to(tmp_path, path)
    assert code == 2 and "pass it with --checkpoint" in err
    code, err, out = decode_to(tmp_path, path, "--checkpoint", checkpoint)
    assert code == 0, err
    assert numpy.array_equal(numpy.load(out), bins)


def test_other_numerics_are_refused_unless_allowed(encoded, tmp_path):
    path, _, bins = encoded
    rewrite(path, lambda h: h["numerics"].update(blas="another BLAS", numpy="0.0"))
    code, err, out = decode_to(tmp_path, path)
    assert code == 2 and "blas: file 'another BLAS'" in err and "numpy: file '0.0'" in err
    assert "--allow-different-numerics" in err and not os.path.exists(out)
    code, err, out = decode_to(tmp_path, path, "--allow-different-numerics")
    assert code == 0 and "numerics differ" in err
    assert numpy.array_equal(numpy.load(out), bins)


def test_the_header_records_what_the_numbers_depend_on(encoded):
    path, checkpoint, _ = encoded
    code, out, _ = run(["info", path])
    assert code == 0 and "intact" in out
    header = json.loads(out[out.index("{"):])
    assert header["batch_size"] == 2 and header["model"]["sha256"] == models.sha256_of(checkpoint)
    assert header["model"]["config"]["model"] == "masked"
    assert set(header["numerics"]) == {"machine", "numpy", "numpy_simd", "blas", "blas_threads",
                                       "code_sha256", "constriction"}
    assert header["numerics"]["blas_threads"] in (1, None)   # None: NumPy's BLAS is not OpenBLAS


def test_an_existing_output_is_kept_unless_forced(encoded, tmp_path):
    path, checkpoint, bins = encoded
    out = tmp_path / "out.npy"
    out.write_bytes(b"mine")
    code, err, _ = decode_to(tmp_path, path)
    assert code == 2 and "--force" in err and out.read_bytes() == b"mine"
    code, err, _ = run(["encode", "--checkpoint", checkpoint, "--npy", str(tmp_path / "in.npy"),
                        "--bins", "--out", str(out)])
    assert code == 2 and out.read_bytes() == b"mine"
    code, err, _ = decode_to(tmp_path, path, "--force")
    assert code == 0 and numpy.array_equal(numpy.load(str(out)), bins)


# ----- bad input ----------------------------------------------------------------------
def bad_inputs(checkpoints, tmp_path):
    """(argv, words the error must hold)."""
    def npy(name, array):
        numpy.save(str(tmp_path / name), array)
        return str(tmp_path / name)

    grey_q2, class_q4 = checkpoints["masked-grey-q2"], checkpoints["gated-class-q4"]
    embedding = write_checkpoint(tmp_path / "embedding.npz", dict(
        model="gated", input_dim=1, dim=4, num_layers=3, q_levels=4, conditional="embedding",
        embed_dim=2, encoder_dim=2, encoder_convs=1), 5)
    classifier = str(tmp_path / "classifier.npz")
    save_arrays(classifier, {"w": numpy.zeros(3, numpy.float32)}, meta={"model": "classifier"})
    (tmp_path / "not_ours.pxc").write_bytes(b"hello, this is not a compressed file at all")
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    Image.fromarray(numpy.zeros((4, 5), numpy.uint8)).save(str(pngs / "a.png"))
    Image.fromarray(numpy.zeros((5, 5), numpy.uint8)).save(str(pngs / "b.png"))
    out = ["--out", str(tmp_path / "x.pxc")]
    enc = ["encode", "--checkpoint"]
    return [
        (enc + [grey_q2, "--npy", npy("levels.npy", numpy.full((2, 4, 4), 3, numpy.uint8)),
                "--bins"] + out, "the model has 2 levels"),
        (enc + [grey_q2, "--npy", npy("colour.npy", numpy.zeros((2, 4, 4, 3), numpy.uint8))] +
         out, "have 3 channels, the model reads 1"),
        (enc + [grey_q2, "--npy", npy("floats.npy", numpy.zeros((2, 4, 4)))] + out,
         "float64 values"),
        (enc + [grey_q2, "--npy", npy("flat.npy", numpy.zeros((4, 4), numpy.uint8))] + out,
         "expected (num, height, width)"),
        (enc + [grey_q2, "--npy", npy("big.npy", numpy.full((2, 4, 4), 300, numpy.int32))] +
         out, "outside 0..255"),
        (enc + [grey_q2, "--npy", str(tmp_path / "missing.npy")] + out, "cannot read"),
        (enc + [class_q4, "--npy", npy("grey.npy", numpy.zeros((2, 4, 4), numpy.uint8))] + out,
         "class-conditional: give each image's digit with --labels"),
        (enc + [class_q4, "--npy", npy("grey.npy", numpy.zeros((2, 4, 4), numpy.uint8)),
                "--labels", "1,2,3"] + out, "need 2 labels"),
        (enc + [class_q4, "--npy", npy("wide.npy", numpy.zeros((1, 4, 30), numpy.uint8)),
                "--labels", "1"] + out, "condition map of 28 x 28"),
        (enc + [grey_q2, "--npy", npy("grey.npy", numpy.zeros((2, 4, 4), numpy.uint8)),
                "--labels", "1"] + out, "not conditional"),
        (enc + [embedding, "--npy", npy("grey.npy", numpy.zeros((2, 4, 4), numpy.uint8))] + out,
         "embedding f(x) of the image itself"),
        (enc + [classifier, "--npy", npy("grey.npy", numpy.zeros((2, 4, 4), numpy.uint8))] + out,
         "not one of the generative models"),
        (enc + [str(tmp_path / "nothing.npz"), "--npy", npy("g.npy", numpy.zeros((1, 2, 2),
                                                                                  numpy.uint8))] +
         out, "cannot read checkpoint"),
        (enc + [grey_q2, "--png", str(pngs)] + out, "differ in size"),
        (enc + [grey_q2, "--png", str(tmp_path / "nowhere")] + out, "no such file or folder"),
        (enc + [grey_q2, "--npy", npy("g.npy", numpy.zeros((1, 2, 2), numpy.uint8)), "--out",
                str(tmp_path / "no_folder" / "x.pxc")], "does not exist"),
        (["decode", str(tmp_path / "not_ours.pxc"), "--out", str(tmp_path / "y.npy")],
         "not a file written by compress.py encode"),
        (["decode", str(tmp_path / "absent.pxc"), "--out", str(tmp_path / "y.npy")],
         "cannot read"),
    ]


def test_bad_input_is_refused_with_a_clear_message(checkpoints, tmp_path):
    for argv, words in bad_inputs(checkpoints, tmp_path):
        code, _, err = run(argv)
        assert code == 2 and words in err, (argv, err)
        assert err.startswith("error: ") and err.count("\n") <= 2, err
    assert not (tmp_path / "x.pxc").exists() and not (tmp_path / "y.npy").exists()
    assert not [p for p in os.listdir(str(tmp_path)) if p.startswith(".tmp-")]


@pytest.mark.parametrize("argv, words", [
    (["encode", "--test", "0", "--out", "x.pxc"], "--test must be at least 1"),
    (["encode", "--npy", "a.npy", "--png", "b.png", "--out", "x.pxc"], "not allowed with"),
    (["encode", "--test", "3", "--bins", "--out", "x.pxc"], "--bins goes with --npy"),
    (["decode", "x.pxc", "--out", "y.npy", "--workers", "0"], "--workers must be at least 1"),
    (["encode", "--out", "x.pxc"], "one of the arguments --test --npy --png is required"),
])
def test_bad_arguments_exit_2(argv, words):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as stop:
        compress.parse_args(argv)
    assert stop.value.code == 2 and words in err.getvalue()


def test_help_explains_the_commands():
    for argv, words in ((["--help"], "encode"), (["encode", "--help"], "--batch-size"),
                        (["decode", "--help"], "--allow-different-numerics")):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
            compress.parse_args(argv)
        assert stop.value.code == 0 and words in out.getvalue()


def test_ctrl_c_exits_130_and_leaves_nothing(checkpoints, tmp_path):
    numpy.save(str(tmp_path / "many.npy"),
               numpy.random.RandomState(0).randint(0, 2, (3000, 28, 28)).astype(numpy.uint8))
    out = tmp_path / "many.pxc"
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "compress.py"), "encode", "--checkpoint",
         checkpoints["diagbilstm-grey-q2"], "--npy", str(tmp_path / "many.npy"), "--bins",
         "--out", str(out), "--batch-size", "10", "--workers", "2", "--no-progress"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        assert process.stdout.readline().startswith("note:")   # coding has started
        time.sleep(1.0)
        os.killpg(process.pid, signal.SIGINT)                # as Ctrl-C in a terminal
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "nothing was written" in err
    assert sorted(os.listdir(str(tmp_path))) == ["many.npy"]


def test_images_quantization_is_said_and_recorded(checkpoints, tmp_path):
    raw = numpy.array([[[0, 63, 64, 255]]], dtype=numpy.uint8)
    numpy.save(str(tmp_path / "raw.npy"), raw)
    code, out, err = run(["encode", "--checkpoint", checkpoints["pixelconv-grey-q4"], "--npy",
                          str(tmp_path / "raw.npy"), "--out", str(tmp_path / "raw.pxc")])
    assert code == 0, err
    assert "quantized by compress.py to 4 levels" in out
    assert container.read(str(tmp_path / "raw.pxc"))[0]["source"]["quantization"] == "to_targets"
    code, _, err = run(["decode", str(tmp_path / "raw.pxc"), "--out", str(tmp_path / "q.npy")])
    assert code == 0, err
    assert numpy.load(str(tmp_path / "q.npy")).tolist() == [[[0, 0, 1, 3]]]
