"""MNIST and Fashion-MNIST from the standard IDX files, downloaded (and checked)
when absent.

    data = load_dataset()                      # MNIST, found or downloaded
    data = load_dataset("/data/mnist")         # a folder with the four IDX files
    data = load_dataset(dataset="fashion-mnist")
    data = load_dataset(splits=("test",))      # only the test images and labels

The files may be gzip-compressed (``*.gz``) or raw. Every problem (a missing,
truncated or corrupt file, a failed download) is raised as ``DataError`` with a
message that names the file, says what is wrong and how to fix it.

Pure numpy + standard library + tqdm: nothing here imports theano.
Command line: ``python -m data.mnist [--dataset ...] [--data-dir DIR]``.
"""
import os

from data.download import Unreachable, download_file
from data.idx import DataError, read_idx, write_idx  # noqa: F401  (part of this module's API)

NUM_CLASSES = 10

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILE_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
SPLITS = {"train": (TRAIN_IMAGES, TRAIN_LABELS), "test": (TEST_IMAGES, TEST_LABELS)}
SPLIT_SIZES = {"train": 60000, "test": 10000}

# MD5 of the *uncompressed* files. The .gz checksums differ between copies (the
# gzip header holds a timestamp and sometimes a file name), so only these count.
# The Fashion-MNIST values were computed from Debian's dataset-fashion-mnist
# package and agree with the raw-file checksums other projects publish.
MD5 = {
    "mnist": {
        TRAIN_IMAGES: "6bbc9ace898e44ae57da46a324031adb",
        TRAIN_LABELS: "a25bea736e30d166cdddb491f175f624",
        TEST_IMAGES: "2646ac647ad5339dbf082846283269ea",
        TEST_LABELS: "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        TRAIN_IMAGES: "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        TRAIN_LABELS: "9018921c3c673c538a1fc5bad174d6f9",
        TEST_IMAGES: "8181f5470baa50b63fa0f6fddb340f0a",
        TEST_LABELS: "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

# Tried in order; each serves "<mirror><name>.gz". Tests replace this table.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
}

TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
ENV_VARS = {"mnist": "MNIST_DIR", "fashion-mnist": "FASHION_MNIST_DIR"}

# Folders that a system package fills, used when they hold all four files.
# Debian's dataset-fashion-mnist installs the four .gz files (upstream names)
# straight into /usr/share/datasets/fashion-mnist/.
SYSTEM_DIRS = {"fashion-mnist": ["/usr/share/datasets/fashion-mnist"]}
SYSTEM_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}


# ---------------------------------------------------------------------------
# Finding the folder


def resolve_data_dir(data_dir=None, dataset="mnist"):
    """Folder for the dataset: argument, else env var, else system folder, else cache."""
    return _resolve(data_dir, dataset)[0]


def _resolve(data_dir, dataset):
    """Return (folder, how it was chosen) for resolve_data_dir and error messages."""
    dataset = _dataset_key(dataset)
    env_var = ENV_VARS[dataset]
    if data_dir:
        return os.path.expanduser(str(data_dir)), "given with --data-dir"
    if os.environ.get(env_var):
        return os.path.expanduser(os.environ[env_var]), "from ${}".format(env_var)
    for folder in SYSTEM_DIRS.get(dataset, ()):
        if not _missing_files(folder):
            return folder, "installed by a system package"
    how = "the default cache folder; neither --data-dir nor ${} was given".format(env_var)
    for folder in SYSTEM_DIRS.get(dataset, ()):
        how += ", and {} does not hold the files".format(folder)
    return _cache_dir(dataset), how


def _cache_dir(dataset):
    """Per-user cache folder: $XDG_CACHE_HOME/pixelcnn/<dataset> or ~/.cache/pixelcnn/<dataset>."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec says to ignore relative paths
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pixelcnn", dataset)


def _dataset_key(dataset):
    """Normalise a dataset name ("MNIST", "fashion_mnist", ...) to a key of MD5."""
    key = str(dataset).lower().replace("_", "-")
    if key not in MD5:
        raise DataError("unknown dataset {!r}; choose one of: {}".format(
            dataset, ", ".join(sorted(MD5))))
    return key


def _find_file(folder, name):
    """Path of name or name.gz in folder (raw preferred), or None."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _missing_files(folder, names=FILE_NAMES):
    """Those of ``names`` with neither a raw nor a .gz file in folder."""
    return [name for name in names if _find_file(folder, name) is None]


# ---------------------------------------------------------------------------
# Downloading


def _download_missing(folder, missing, dataset, verify, mirrors, urlopen):
    """Download each missing file into folder; return the names still missing and why."""
    existing = _existing_ancestor(folder)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        return missing, ["cannot create {}: {}".format(folder, err.strerror or err)]
    still_missing, failures = [], []
    for index, name in enumerate(missing):
        md5 = MD5[dataset][name] if verify else None
        try:
            download_file(name, folder, mirrors, md5, urlopen)
        except Unreachable as err:
            failures.append(str(err))
            failures.append("(not trying the other files: no mirror could be reached)")
            still_missing.extend(missing[index:])
            break
        except DataError as err:
            still_missing.append(name)
            failures.append(str(err))
    if still_missing:
        _remove_empty_dirs(folder, existing)
    return still_missing, failures


def _existing_ancestor(folder):
    """The nearest folder among folder and its parents that exists now."""
    folder = os.path.abspath(folder)
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return folder


def _remove_empty_dirs(folder, stop):
    """Remove folder and its parents up to (not including) stop while they are empty."""
    folder = os.path.abspath(folder)
    while folder != stop and folder.startswith(stop):
        try:
            os.rmdir(folder)  # fails, and so stops, when the folder holds anything
        except OSError:
            return
        folder = os.path.dirname(folder)


def _missing_message(dataset, folder, how, missing, failures, download):
    """Text for DataError when files are absent: what, where, why and how to fix it."""
    env_var = ENV_VARS[dataset]
    lines = ["{} files missing from {} ({}):".format(TITLES[dataset], folder, how)]
    lines += ["  {0} (or {0}.gz)".format(name) for name in missing]
    if not download:
        lines.append("Downloading is turned off.")
    elif failures:
        lines.append("Downloading did not work:")
        lines += ["  " + line for f in failures for line in f.splitlines()]
    lines.append("To fix: put the four IDX files (gzip or raw: {}) in a folder DIR and "
                 "pass --data-dir DIR, or set {}=DIR.".format(", ".join(FILE_NAMES), env_var))
    if dataset in SYSTEM_PACKAGES:
        lines.append("Or install them system-wide: apt-get install {}.".format(
            SYSTEM_PACKAGES[dataset]))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Loading a dataset


def load_dataset(data_dir=None, dataset="mnist", download=True, verify=True,
                 mirrors=None, urlopen=None, splits=("train", "test")):
    """Load a dataset: {split}_images (num, 28, 28) uint8 and {split}_labels (num,)
    uint8 for each of ``splits`` ("train", "test"); only their files are needed.

    verify=True checks each file's MD5 and the standard sizes (60000 train, 10000
    test); verify=False keeps only the structural checks, for small custom files.
    mirrors (list of URL prefixes) and urlopen replace MIRRORS and urllib's opener.
    """
    dataset = _dataset_key(dataset)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise DataError("unknown splits {}; choose among {}".format(
            unknown or "(none given)", ", ".join(SPLITS)))
    folder, how = _resolve(data_dir, dataset)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise DataError("{} ({}) is a file, not a folder; give the folder that holds the "
                        "IDX files with --data-dir DIR or ${}=DIR".format(
                            folder, how, ENV_VARS[dataset]))
    missing = _missing_files(folder, [name for s in splits for name in SPLITS[s]])
    if missing:
        failures = []
        if download:
            if mirrors is None:
                mirrors = MIRRORS[dataset]
            missing, failures = _download_missing(folder, missing, dataset, verify,
                                                  mirrors, urlopen)
        if missing:
            raise DataError(_missing_message(dataset, folder, how, missing, failures,
                                             download))
    result = {}
    for split in splits:
        image_name, label_name = SPLITS[split]
        images = _load_file(folder, image_name, dataset, verify, ndim=3)
        labels = _load_file(folder, label_name, dataset, verify, ndim=1)
        _check_split(split, images, labels, folder, verify)
        result[split + "_images"] = images
        result[split + "_labels"] = labels
    return result


def _load_file(folder, name, dataset, verify, ndim):
    """Read one IDX file of the dataset, checking it holds images (ndim 3) or labels (1)."""
    path = _find_file(folder, name)
    if path is None:
        raise DataError("{}: file not found (nor {}.gz)".format(
            os.path.join(folder, name), name))
    array = read_idx(path, MD5[dataset][name] if verify else None)
    if array.ndim != ndim:
        kinds = {1: "labels", 3: "images"}
        raise DataError("{}: holds {} but {} were expected; the files are mixed up".format(
            path, kinds[array.ndim], kinds[ndim]))
    return array


def _check_split(split, images, labels, folder, verify):
    """Check that a split's label count matches its images and the labels are 0-9."""
    if len(images) != len(labels):
        raise DataError("{}: the {} split has {} images but {} labels; the files do not "
                        "belong together".format(folder, split, len(images), len(labels)))
    if verify and len(images) != SPLIT_SIZES[split]:
        raise DataError("{}: the {} split has {} images, expected {}".format(
            folder, split, len(images), SPLIT_SIZES[split]))
    if len(labels) and labels.max() >= NUM_CLASSES:
        raise DataError("{}: the {} labels include {}, expected 0-{}".format(
            folder, split, int(labels.max()), NUM_CLASSES - 1))


def hold_out(data, num):
    """``{train_images, train_labels, valid_images, valid_labels}``: the last ``num``
    of ``data``'s training images (and labels, which may be None) held out for
    validation, the rest kept for training; DataError when ``num`` leaves no
    training image."""
    images, labels = data["train_images"], data.get("train_labels")
    if num >= len(images):
        raise DataError("--valid-split {} leaves no training images: the training split "
                        "holds {}; give a smaller --valid-split".format(num, len(images)))
    keep = len(images) - num
    return {"train_images": images[:keep], "valid_images": images[keep:],
            "train_labels": None if labels is None else labels[:keep],
            "valid_labels": None if labels is None else labels[keep:]}


def trained_count(num_images, valid_split, train_limit=None):
    """How many images, the first ones of a training split of ``num_images``, a run
    with this --valid-split (:func:`hold_out`) and --train-limit trained on."""
    kept = max(num_images - valid_split, 0)
    return kept if train_limit is None else min(train_limit, kept)


def main(argv=None):
    """Command line: fetch (if needed), verify and summarise a dataset."""
    import argparse
    parser = argparse.ArgumentParser(
        description="Find or download a dataset, check it and print what it holds.")
    parser.add_argument("--dataset", choices=sorted(MD5), default="mnist", help="which dataset")
    parser.add_argument("--data-dir", default=None, help="folder with the four IDX files")
    parser.add_argument("--no-download", action="store_true",
                        help="fail instead of downloading missing files")
    args = parser.parse_args(argv)
    try:
        data = load_dataset(args.data_dir, args.dataset, download=not args.no_download)
    except DataError as err:
        raise SystemExit("error: {}".format(err))
    print("{} in {}".format(args.dataset, resolve_data_dir(args.data_dir, args.dataset)))
    for key, array in data.items():
        print("  {:13s} {} {}".format(key, array.shape, array.dtype))


if __name__ == "__main__":
    main()
