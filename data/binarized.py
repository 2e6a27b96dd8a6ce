"""Binarized MNIST: every pixel 0 or 1, the data set of the PixelRNN paper's MNIST table.

Two versions exist, and NLLs measured on them are close but not the same:

* the fixed binarization of Salakhutdinov and Murray (2008), the benchmark: the
  files ``binarized_mnist_{train,valid,test}.amat`` (text, one image a line,
  784 zeros and ones separated by spaces), used when the data folder holds
  them;
* dynamic binarization of the grey MNIST images, used otherwise: each pixel
  is 1 with probability intensity / 255, drawn afresh every epoch from a
  stream seeded by (seed, epoch); the test images are binarized once with
  ``TEST_SEED``.

Images come out as uint8 ``(num, 28, 28)`` holding 0 or 255, so that
``quantize.quantize(images, 2)`` turns them into bins and inputs 0/1.
"""
import os

import numpy

from data import mnist
from data.idx import DataError

AMAT_FILES = {"train": "binarized_mnist_train.amat", "valid": "binarized_mnist_valid.amat",
              "test": "binarized_mnist_test.amat"}
TEST_SEED = 20160101
FIXED, DYNAMIC = "fixed", "dynamic"


def binarize(images, rng):
    """Grey uint8 images (any shape) -> 0/255 uint8, pixel on with probability value / 255."""
    on = rng.random_sample(numpy.shape(images)) < numpy.asarray(images) / 255.0
    return (on * 255).astype(numpy.uint8)


def epoch_binarization(images, seed, epoch):
    """The dynamic binarization of the training images for ``epoch`` (a function of
    (seed, epoch) only, so that a resumed run draws the same)."""
    return binarize(images, numpy.random.RandomState([seed, epoch, 1]))


def read_amat(path):
    """A ``.amat`` file -> (num, 28, 28) uint8 of 0/255; DataError naming the file and
    line for a line that is not 784 zeros and ones."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise DataError("{}: cannot read the file ({})".format(path, err.strerror or err))
    images = numpy.zeros((len(lines), 28 * 28), dtype=numpy.uint8)
    for n, line in enumerate(lines):
        values = line.split()
        if len(values) != 28 * 28:
            raise DataError("{}, line {}: {} values, expected 784 (one 28x28 image a line). "
                            "The file is truncated or not a binarized MNIST file".format(
                                path, n + 1, len(values)))
        bad = sorted(set(values) - {"0", "1"})
        if bad:
            raise DataError("{}, line {}: the value {!r} is neither 0 nor 1".format(
                path, n + 1, bad[0]))
        images[n] = numpy.array(values) == "1"
    if not len(images):
        raise DataError("{}: the file holds no images".format(path))
    return (images * 255).reshape(-1, 28, 28)


def load_binarized(data_dir=None, download=True, verify=True, seed=0):
    """``{train_images, test_images, train_labels, test_labels, binarization}``.

    With the fixed ``.amat`` files in the folder: their train and test images
    (0/255; the labels are not in those files, so they are None) and
    ``binarization = "fixed"``. Otherwise grey MNIST's train images (binarized per
    epoch by the trainer, :func:`epoch_binarization`), its test images binarized
    once with ``TEST_SEED``, the labels, and ``binarization = "dynamic"``.
    """
    folder = mnist.resolve_data_dir(data_dir, "mnist")
    paths = {split: os.path.join(folder, name) for split, name in AMAT_FILES.items()}
    if os.path.isfile(paths["train"]) and os.path.isfile(paths["test"]):
        return {"train_images": read_amat(paths["train"]), "train_labels": None,
                "test_images": read_amat(paths["test"]), "test_labels": None,
                "binarization": FIXED}
    data = mnist.load_dataset(data_dir, "mnist", download=download, verify=verify)
    data["test_images"] = binarize(data["test_images"], numpy.random.RandomState(TEST_SEED))
    data["binarization"] = DYNAMIC
    return data


def describe(binarization):
    """One line on what the NLLs of a run on this binarization compare with."""
    if binarization == FIXED:
        return ("binarized MNIST: the fixed binarization (Salakhutdinov and Murray), the "
                "benchmark of the PixelRNN paper's table")
    return ("binarized MNIST: dynamic binarization of MNIST (no binarized_mnist_*.amat "
            "files in the data folder); NLLs are close to the fixed benchmark's, not the same")
