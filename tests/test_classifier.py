"""The shipped digit classifier that scores samples (evaluate.py --sample-accuracy)."""
import os

import numpy
import pytest

import evaluate
import mnist_data
import quantize
import train_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, evaluate.DEFAULT_CLASSIFIER)


def test_shipped_classifier_reaches_99_percent_on_the_real_test_set():
    if not os.environ.get("MNIST_DIR"):
        pytest.skip("set MNIST_DIR to the real MNIST to check the classifier's accuracy")
    data = mnist_data.load_dataset(os.environ["MNIST_DIR"], download=False)
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
])
def test_train_classifier_rejects_bad_arguments(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        train_classifier.parse_args(argv)
    assert exit_.value.code == 2 and words in capsys.readouterr().err
