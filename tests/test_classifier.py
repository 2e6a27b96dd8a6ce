"""The shipped digit classifier that scores samples (evaluate.py --sample-accuracy)."""
import os
import stat

import numpy
import pytest

import evaluate
from conftest import write_random_mnist
from data import mnist
import quantize
import train_classifier
from lib.checkpoint import read_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, evaluate.DEFAULT_CLASSIFIER)


def test_shipped_classifier_reaches_99_percent_on_the_real_test_set():
    if not os.environ.get("MNIST_DIR"):
        pytest.skip("set MNIST_DIR to the real MNIST to check the classifier's accuracy")
    data = mnist.load_dataset(os.environ["MNIST_DIR"], download=False)
    inputs, _ = quantize.quantize(data["test_images"][..., None], 4)
    classify = evaluate.load_classifier(SHIPPED, 4)
    assert (classify(inputs) == data["test_labels"]).mean() >= 0.99


def test_classifier_refuses_other_grey_levels():
    with pytest.raises(evaluate.UsageError, match="grey levels"):
        evaluate.load_classifier(SHIPPED, 8)


def test_a_pixelcnn_checkpoint_is_not_a_classifier(tmp_path):
    from lib.checkpoint import save_arrays
    path = str(tmp_path / "x.npz")
    save_arrays(path, {"a": numpy.zeros(3, numpy.float32)}, meta={"model": "pixelconv"})
    with pytest.raises(evaluate.UsageError, match="not a classifier"):
        evaluate.load_classifier(path, 4)


@pytest.mark.parametrize("argv, words", [
    (["--epochs", "0"], "--epochs"),
    (["--lr", "nan"], "--lr"),
    (["--seed", "-1"], "--seed"),
    (["--out", "c.pkl"], ".npz"),
    (["--q-levels", "1"], "Q_LEVELS"),
    (["--shift", "9"], "--shift"),
    (["--lr-decay", "0"], "--lr-decay"),
    (["--seed", "99999999999"], "--seed must be 0..4294967295"),
    (["--train-limit", "0"], "--train-limit must be at least 1"),
])
def test_train_classifier_rejects_bad_arguments(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        train_classifier.parse_args(argv)
    assert exit_.value.code == 2 and words in capsys.readouterr().err


def test_shift_moves_images_and_fills_with_zeros():
    images = numpy.arange(2 * 28 * 28, dtype=numpy.float32).reshape(2, 28, 28, 1) + 1

    class FixedShifts(object):
        def randint(self, low, high, size):
            return numpy.array([[2, -1], [0, 0]])

    out = train_classifier.shifted(images, 2, FixedShifts())
    numpy.testing.assert_array_equal(out[0, 2:, :27], images[0, :26, 1:])
    assert not out[0, :2].any() and not out[0, :, 27].any()
    numpy.testing.assert_array_equal(out[1], images[1])
    assert train_classifier.shifted(images, 0, None) is images


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Tiny IDX files (30 training, 12 test images; read with --no-verify)."""
    return write_random_mnist(tmp_path_factory.mktemp("data"), {"train": 30, "test": 12})


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if the classifier is built (the work had started)."""
    def build(q_levels):
        raise AssertionError("training started")
    monkeypatch.setattr(train_classifier, "build", build)


def run_main(argv, capsys):
    code = train_classifier.main(argv)
    return code, capsys.readouterr().err


def test_default_out_is_not_the_shipped_classifier_and_help_says_how_to_ship(capsys):
    out = train_classifier.parse_args([]).out
    assert out == os.path.join("runs", "classifier.npz")
    assert os.path.abspath(out) != os.path.abspath(SHIPPED)
    with pytest.raises(SystemExit):
        train_classifier.parse_args(["--help"])
    assert "--out {}".format(evaluate.DEFAULT_CLASSIFIER) in " ".join(
        capsys.readouterr().out.split())


def unusable_outs(tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder.npz").mkdir()
    yield str(tmp_path / "missing" / "c.npz"), "does not exist"
    yield str(tmp_path / "a_file" / "c.npz"), "is not a folder"
    yield str(tmp_path / "a_folder.npz"), "is a folder"


def test_unusable_out_is_refused_before_training(tmp_path, data_dir, no_training, capsys):
    for out, words in unusable_outs(tmp_path):
        code, err = run_main(["--data-dir", str(data_dir), "--no-verify", "--out", out], capsys)
        assert code == 2 and words in err and out in err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["a_file", "a_folder.npz"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_read_only_out_folder_is_refused_before_training(tmp_path, data_dir, no_training,
                                                         capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, err = run_main(["--data-dir", str(data_dir), "--no-verify",
                              "--out", str(folder / "c.npz")], capsys)
    finally:
        folder.chmod(stat.S_IRWXU)
    assert code == 2 and "cannot write" in err and not os.listdir(folder)


def test_missing_data_exits_2_and_leaves_no_folder_behind(tmp_path, no_training, monkeypatch,
                                                         capsys):
    """As the other scripts do; the default's runs/ folder, made for the run, is removed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not_a_folder").write_text("x")
    code, err = run_main(["--data-dir", str(tmp_path / "not_a_folder")], capsys)
    assert code == 2 and "not_a_folder" in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["not_a_folder"]


@pytest.mark.parametrize("argv", [["--batch-size", "100000"],
                                  ["--train-limit", "5", "--batch-size", "10"]])
def test_a_batch_larger_than_the_training_images_is_refused_before_training(
        argv, tmp_path, data_dir, no_training, capsys):
    code, err = run_main(["--data-dir", str(data_dir), "--no-verify",
                          "--out", str(tmp_path / "c.npz")] + argv, capsys)
    assert code == 2 and "fewer than one batch of" in err and "--batch-size" in err
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("fault, code, words", [(KeyboardInterrupt, 130, "aborted"),
                                                (MemoryError, 1, "out of memory")])
def test_ctrl_c_and_out_of_memory_give_one_line_and_write_nothing(
        fault, code, words, tmp_path, data_dir, monkeypatch, capsys):
    def train(args, data):
        raise fault()
    monkeypatch.setattr(train_classifier, "train", train)
    monkeypatch.chdir(tmp_path)
    got, err = run_main(["--data-dir", str(data_dir), "--no-verify", "--batch-size", "10"],
                        capsys)
    assert got == code and words in err and err.count("\n") == 1
    assert not os.listdir(tmp_path)  # the default's runs/ folder is gone again


def test_train_limit_trains_on_the_first_n_images(tmp_path, data_dir, monkeypatch, capsys):
    seen = []
    original = train_classifier.shifted

    def shifted(images, shift, rng):
        seen.append(len(images))
        return original(images, shift, rng)

    monkeypatch.setattr(train_classifier, "shifted", shifted)
    out = str(tmp_path / "c.npz")
    code, err = run_main(["--data-dir", str(data_dir), "--no-verify", "--train-limit", "20",
                          "--batch-size", "10", "--epochs", "1", "--no-progress",
                          "--out", out], capsys)
    assert code == 0, err
    assert seen == [10, 10]
    _, meta = read_checkpoint(out)
    assert meta["train_images"] == 20 and meta["model"] == "classifier"
