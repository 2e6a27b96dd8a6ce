"""The shipped digit classifier that scores samples (evaluate.py --sample-accuracy)."""
import os

import numpy
import pytest

import evaluate
from data import mnist
import quantize
import train_classifier

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
