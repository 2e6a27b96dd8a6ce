"""Binarized MNIST: every pixel 0 or 1, the data set of the PixelRNN paper's MNIST table.

Two versions exist, and NLLs measured on them are close but not the same:

* the fixed binarization of Salakhutdinov and Murray (2008), the benchmark: the
  files ``binarized_mnist_{train,valid,test}.amat`` (text, one image a line,
  784 zeros and ones separated by spaces), used when the data folder holds
  them;
* dynamic binarization of the grey MNIST images, used when the folder holds
  no ``.amat`` file: each pixel is 1 with probability intensity / 255, drawn
  afresh every epoch from a stream seeded by (seed, epoch); the test images
  are binarized once with ``TEST_SEED``, held-out validation images once with
  ``VALID_SEED``.

Images come out as uint8 ``(num, 28, 28)`` holding 0 or 255, so that
``quantize.quantize(images, 2)`` turns them into bins and inputs 0/1.
"""
import os

import numpy

from data import mnist
from data.idx import DataError

AMAT_FILES = {"train": "binarized_mnist_train.amat", "valid": "binarized_mnist_valid.amat",
              "test": "binarized_mnist_test.amat"}
AMAT_SIZES = {"train": 50000, "valid": 10000, "test": 10000}
TEST_SEED = 20160101
VALID_SEED = 20160102
FIXED, DYNAMIC = "fixed", "dynamic"


def binarize(images, rng):
    """Grey uint8 images (any shape) -> 0/255 uint8, pixel on with probability value / 255."""
    on = rng.random_sample(numpy.shape(images)) < numpy.asarray(images) / 255.0
    return (on * 255).astype(numpy.uint8)


def epoch_binarization(images, seed, epoch):
    """The dynamic binarization of the training images for ``epoch`` (a function of
    (seed, epoch) only, so that a resumed run draws the same)."""
    return binarize(images, numpy.random.RandomState([seed, epoch, 1]))


def read_amat(path, expected=None):
    """A ``.amat`` file -> (num, 28, 28) uint8 of 0/255; DataError naming the file and
    line for a line that is not 784 zeros and ones, and (``expected`` given) for a
    file that does not hold that many images."""
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise DataError("{}: cannot read the file ({})".format(path, err.strerror or err))
    images = numpy.zeros((len(lines), 28 * 28), dtype=numpy.uint8)
    for n, raw in enumerate(lines):
        values = _amat_line(path, n + 1, raw)
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
    if expected is not None and len(images) != expected:
        raise DataError("{}: holds {} images, expected {} (the standard split); pass "
                        "--no-verify for a custom file".format(path, len(images), expected))
    return (images * 255).reshape(-1, 28, 28)


def _amat_line(path, number, raw):
    """The words of line ``number`` (bytes ``raw``) of a .amat file; DataError when
    it is not text."""
    try:
        return raw.decode("utf-8").split()
    except UnicodeDecodeError as err:
        raise DataError("{}, line {}: byte {} is not UTF-8 text; the file is damaged or "
                        "not a binarized MNIST .amat file".format(
                            path, number, hex(raw[err.start])))


def fixed_files(folder):
    """(found, missing): the splits whose .amat file is / is not in ``folder``."""
    found = [s for s in AMAT_FILES if os.path.isfile(os.path.join(folder, AMAT_FILES[s]))]
    return found, [s for s in AMAT_FILES if s not in found]


def load_binarized(data_dir=None, download=True, verify=True, splits=("train", "test")):
    """``{<split>_images, <split>_labels for each of splits, binarization}``; splits
    among "train", "valid" (the fixed files' validation split) and "test".

    With the fixed ``.amat`` files of those splits in the folder: their images
    (0/255; the files hold no labels, so the labels are None) and
    ``binarization = "fixed"``; ``verify`` checks the standard sizes (50,000 /
    10,000 / 10,000). Without any ``.amat`` file: grey MNIST's train images
    (binarized per epoch by the trainer, :func:`epoch_binarization`), its test
    images binarized once with ``TEST_SEED``, the labels, and ``binarization =
    "dynamic"`` ("valid" is then held out of "train" by :func:`hold_out`, so it
    reads the train files). Some ``.amat`` files but not those of ``splits``:
    DataError saying which are found and which are missing.
    """
    unknown = [s for s in splits if s not in AMAT_FILES]
    if unknown or not splits:
        raise DataError("unknown splits {}; choose among {}".format(
            unknown or "(none given)", ", ".join(AMAT_FILES)))
    folder = mnist.resolve_data_dir(data_dir, "mnist")
    found, _ = fixed_files(folder)
    if found:
        missing = [s for s in splits if s not in found]
        if missing:
            raise DataError(
                "{} holds {} but not {}: add the missing file{} for the fixed binarization, "
                "or move the .amat files out of the folder to binarize MNIST dynamically"
                .format(folder, ", ".join(AMAT_FILES[s] for s in found),
                        ", ".join(AMAT_FILES[s] for s in missing),
                        "s" if len(missing) > 1 else ""))
        data = {"binarization": FIXED}
        for split in splits:
            data[split + "_images"] = read_amat(os.path.join(folder, AMAT_FILES[split]),
                                                AMAT_SIZES[split] if verify else None)
            data[split + "_labels"] = None
        return data
    grey = [s for s in ("train", "test") if s in splits]
    if "valid" in splits and "train" not in grey:
        grey.insert(0, "train")
    data = mnist.load_dataset(data_dir, "mnist", download=download, verify=verify,
                              splits=tuple(grey))
    if "test" in splits:
        data["test_images"] = binarize(data["test_images"],
                                       numpy.random.RandomState(TEST_SEED))
    data["binarization"] = DYNAMIC
    return data


def hold_out(data, num):
    """``data`` of :func:`load_binarized` (with "train" and, for the fixed files,
    "valid") with its last ``num`` training images moved to ``valid_images``.

    Fixed files: the training split is binarized_mnist_train.amat followed by
    binarized_mnist_valid.amat (60,000 images), so ``num`` = 10,000 holds out
    exactly the valid file. Dynamic: the held-out grey images are binarized once
    with ``VALID_SEED``, so every validation sees the same bits.
    """
    data = dict(data)
    if data["binarization"] == FIXED:
        parts = [data["train_images"]]
        if "valid_images" in data:
            parts.append(data.pop("valid_images"))
        pool = numpy.concatenate(parts)
        data.pop("valid_labels", None)
        data.update(mnist.hold_out({"train_images": pool, "train_labels": None}, num))
        return data
    data.update(mnist.hold_out(data, num))
    data["valid_images"] = binarize(data["valid_images"], numpy.random.RandomState(VALID_SEED))
    return data


def dataset_name(dataset, binarization=None):
    """'mnist', 'fashion-mnist', 'binarized-mnist (fixed binarization)', ..."""
    if dataset == "binarized-mnist" and binarization:
        return "{} ({} binarization)".format(dataset, binarization)
    return str(dataset)


def other_dataset_warning(path, recorded, dataset, binarization=None):
    """One line warning that checkpoint ``path``, whose description ``recorded``
    (a dict) names the data it was trained on, is used on another ``dataset``
    (and ``binarization``); None when they agree or nothing is recorded."""
    trained = recorded.get("dataset")
    if not trained:
        return None
    same = trained == dataset and (
        not (binarization and recorded.get("binarization"))
        or binarization == recorded["binarization"])
    if same:
        return None
    return "warning: {} was trained on {}, but these images are {}; its figures do not " \
        "describe its own data".format(path, dataset_name(trained, recorded.get("binarization")),
                                       dataset_name(dataset, binarization))


def load_test_split(data_dir, dataset, q_levels, verify=True):
    """The test split of ``dataset`` ("mnist", "fashion-mnist" or "binarized-mnist")
    for a model of ``q_levels``, reading only the test split's files: the dict of
    ``mnist.load_dataset`` / :func:`load_binarized` (``test_images`` ``(n, 28, 28)``
    uint8, ``test_labels`` ``(n,)`` or None for the fixed binarization). Prints
    which binarization is used. Raises DataError for missing or damaged files,
    ValueError when a binarized dataset meets a model of other than 2 levels."""
    if dataset != "binarized-mnist":
        return mnist.load_dataset(data_dir, dataset=dataset, verify=verify, splits=("test",))
    _check_levels(q_levels)
    data = load_binarized(data_dir, verify=verify, splits=("test",))
    print(describe(data["binarization"]), flush=True)
    return data


def load_training_pool(data_dir, dataset, q_levels, verify=True):
    """The images ``train_mnist.py --valid-split`` divides into training and
    validation images: ``{train_images (n, 28, 28) uint8, train_labels (n,) or
    None, binarization (binarized MNIST only)}``, for binarized MNIST's fixed
    files binarized_mnist_train.amat followed by binarized_mnist_valid.amat
    (:func:`hold_out`); :func:`split_pool` takes the validation images from it.
    Errors as :func:`load_test_split`'s."""
    if dataset != "binarized-mnist":
        return mnist.load_dataset(data_dir, dataset=dataset, verify=verify, splits=("train",))
    _check_levels(q_levels)
    data = load_binarized(data_dir, verify=verify, splits=("train", "valid"))
    print(describe(data["binarization"]), flush=True)
    if "valid_images" in data:
        data["train_images"] = numpy.concatenate([data["train_images"],
                                                  data.pop("valid_images")])
        data.pop("valid_labels")
    return data


def split_pool(data, num):
    """``data`` (training images, labels and, for binarized MNIST, the binarization)
    with its last ``num`` training images held out as ``valid_images`` (and
    labels), binarized as a run binarizes them (:func:`hold_out`)."""
    if data.get("binarization"):
        return hold_out(data, num)
    return dict(data, **mnist.hold_out(data, num))


def load_valid_split(data_dir, dataset, q_levels, num, verify=True):
    """The validation images ``train_mnist.py --valid-split num`` holds out of
    ``dataset``'s training split: the last ``num`` of them, binarized as the run
    binarized them (the fixed files' valid split, or once with ``VALID_SEED``).
    ``{valid_images (num, 28, 28) uint8, valid_labels (num,) or None,
    binarization}``; errors as :func:`load_test_split`'s."""
    data = split_pool(load_training_pool(data_dir, dataset, q_levels, verify), num)
    return {k: data.get(k) for k in ("valid_images", "valid_labels", "binarization")}


def _check_levels(q_levels):
    if q_levels != 2:
        raise ValueError("--dataset binarized-mnist needs a checkpoint with Q_LEVELS 2; this "
                         "one has {}: leave out --dataset or pass a binarized model".format(
                             q_levels))


def describe(binarization):
    """One line on what the NLLs of a run on this binarization compare with."""
    if binarization == FIXED:
        return ("binarized MNIST: the fixed binarization (Salakhutdinov and Murray), the "
                "benchmark of the PixelRNN paper's table")
    return ("binarized MNIST: dynamic binarization of MNIST (no binarized_mnist_*.amat "
            "files in the data folder); NLLs are close to the fixed benchmark's, not the same")
