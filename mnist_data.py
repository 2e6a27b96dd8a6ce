"""Load MNIST and Fashion-MNIST from the standard IDX files, downloading them if absent.

    data = load_dataset()                      # MNIST, found or downloaded
    data = load_dataset("/data/mnist")         # a folder with the four IDX files
    data = load_dataset(dataset="fashion-mnist")

The four files may be gzip-compressed (``*.gz``) or raw. Every problem (a missing,
truncated or corrupt file, a failed download) is raised as ``DataError`` with a
message that names the file, says what is wrong and how to fix it.

Pure numpy + standard library + tqdm: nothing here imports theano.
"""

import contextlib
import gzip as gzip_lib
import hashlib
import http.client
import os
import struct
import sys
import tempfile
import urllib.error
import urllib.request
import zlib

import numpy as np
from tqdm import tqdm

IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
IMAGE_SIZE = (28, 28)
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

DOWNLOAD_TIMEOUT = 30  # seconds per connection attempt / read
CHUNK_SIZE = 1 << 16


class DataError(Exception):
    """A data file is missing, unreadable, corrupt or could not be downloaded."""


FIX_HINT = ("Delete the file and run again to download it, or copy a good one in its "
            "place.")


class _BadContent(DataError):
    """The bytes are not a valid IDX file; the caller adds which file it was."""


# ---------------------------------------------------------------------------
# Reading and writing IDX files


def read_idx(path, expected_md5=None):
    """Read an IDX file (gzip or raw): (num, 28, 28) uint8 images or (num,) uint8 labels."""
    data = _read_file(path)
    try:
        return _decode(data, expected_md5)
    except _BadContent as err:
        raise DataError("{}: {}. {}".format(path, err, FIX_HINT)) from None


def write_idx(path, array, gzip=True):
    """Write a (num, 28, 28) or (num,) uint8 array as an IDX file, atomically."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise DataError("cannot write {}: the array is {}, but IDX files here hold "
                        "uint8".format(path, array.dtype))
    if array.ndim not in (1, 3):
        raise DataError("cannot write {}: the array has shape {}; expected (num,) labels "
                        "or (num, 28, 28) images".format(path, array.shape))
    header = struct.pack(">I", 0x0800 | array.ndim)
    header += struct.pack(">{}I".format(array.ndim), *array.shape)
    data = header + np.ascontiguousarray(array).tobytes()
    if gzip:
        data = gzip_lib.compress(data, mtime=0)
    with _atomic_file(path) as f:
        f.write(data)


def _read_file(path):
    """Return the bytes of the file at path, as stored (maybe gzip)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError("{}: file not found".format(path)) from None
    except OSError as err:
        raise DataError("{}: cannot read the file ({})".format(
            path, err.strerror or err)) from None


def _decode(data, expected_md5=None):
    """Decompress (if gzip), check and return an IDX file's uint8 array."""
    data = _decompress(data)
    array = _parse_idx(data)
    if expected_md5 is not None:
        _check_md5(data, expected_md5)
    return array


def _decompress(data):
    """Return data gunzipped when it is gzip (detected by content), else unchanged."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip_lib.decompress(data)
    except EOFError:
        raise _BadContent("the gzip stream is truncated (an incomplete copy or an "
                          "interrupted download)") from None
    except (OSError, zlib.error) as err:
        raise _BadContent("the gzip data is corrupt ({})".format(err)) from None


def _parse_idx(data):
    """Check an uncompressed IDX file's header and size; return its uint8 array."""
    if len(data) < 4:
        raise _BadContent("only {} bytes, too short to be an IDX file".format(len(data)))
    magic, = struct.unpack(">I", data[:4])
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC):
        raise _BadContent("wrong magic number 0x{:08x} (expected 0x{:08x} for images or "
                          "0x{:08x} for labels): not an MNIST IDX file, or corrupt".format(
                              magic, IMAGE_MAGIC, LABEL_MAGIC))
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise _BadContent("truncated inside the IDX header ({} of {} bytes)".format(
            len(data), header_size))
    shape = struct.unpack(">{}I".format(ndim), data[4:header_size])
    if ndim == 3 and shape[1:] != IMAGE_SIZE:
        raise _BadContent("images are {} x {}, expected 28 x 28".format(shape[1], shape[2]))
    expected = header_size + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "too long"
        raise _BadContent("{}: the header ({}) needs {} bytes but the content has {}".format(
            problem, " x ".join(map(str, shape)), expected, len(data)))
    array = np.frombuffer(data, dtype=np.uint8, offset=header_size)
    return array.reshape(shape).copy()


def _check_md5(data, expected_md5):
    """Raise _BadContent when the uncompressed content's MD5 is not expected_md5."""
    found = hashlib.md5(data).hexdigest()
    if found != expected_md5.lower():
        raise _BadContent("checksum mismatch: expected md5 {} of the uncompressed "
                          "content, found {}; the file is corrupt or not the official "
                          "one".format(expected_md5, found))


@contextlib.contextmanager
def _atomic_file(path):
    """Yield a binary temp file beside path; on success it replaces path, else vanishes."""
    folder = os.path.dirname(os.path.abspath(path))
    f = tempfile.NamedTemporaryFile(mode="wb", dir=folder, delete=False, suffix=".part",
                                    prefix="." + os.path.basename(path) + ".")
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(f.name, 0o644)
        os.replace(f.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(f.name)
        raise


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


def _missing_files(folder):
    """Names among FILE_NAMES with neither a raw nor a .gz file in folder."""
    return [name for name in FILE_NAMES if _find_file(folder, name) is None]


# ---------------------------------------------------------------------------
# Downloading


class _Unreachable(DataError):
    """No mirror could even be connected to (no network, DNS failure, timeouts)."""


def download_file(name, folder, mirrors, expected_md5=None, urlopen=None,
                  timeout=DOWNLOAD_TIMEOUT):
    """Fetch <mirror><name>.gz from the first mirror that works into folder; return its path.

    The content is checked (IDX structure, and expected_md5 when given) before the
    file is moved into place, so a failed or corrupt download leaves nothing behind.
    Raises DataError listing each mirror's failure when none works.
    """
    urlopen = urlopen or urllib.request.urlopen
    path = os.path.join(folder, name + ".gz")
    failures, unreachable = [], True
    for mirror in mirrors:
        url = mirror + name + ".gz"
        try:
            _fetch(url, path, expected_md5, urlopen, timeout)
            return path
        except (DataError, OSError, http.client.HTTPException, ValueError) as err:
            failures.append("{}: {}".format(url, _describe(err)))
            unreachable = unreachable and _is_connection_error(err)
    error = _Unreachable if unreachable and failures else DataError
    raise error("could not download {}:\n  {}".format(
        name, "\n  ".join(failures) or "no mirrors are configured"))


def _is_connection_error(err):
    """True for failures to reach a server at all (not HTTP errors or bad content)."""
    if isinstance(err, urllib.error.HTTPError):
        return False
    return isinstance(err, (urllib.error.URLError, TimeoutError, ConnectionError))


def _fetch(url, path, expected_md5, urlopen, timeout):
    """Download url into path atomically, after checking its content."""
    with urlopen(url, timeout=timeout) as response, _atomic_file(path) as f:
        _copy_with_progress(response, f, os.path.basename(path))
        f.flush()
        _decode(_read_file(f.name), expected_md5)


def _copy_with_progress(response, f, label):
    """Copy a response body into f in chunks, with a tqdm bar in bytes."""
    length = None
    headers = getattr(response, "headers", None)
    if headers is not None and headers.get("Content-Length"):
        length = int(headers.get("Content-Length"))
    with tqdm(total=length, unit="B", unit_scale=True, unit_divisor=1024,
              desc=label, file=sys.stderr, leave=False) as bar:
        while True:
            chunk = response.read(CHUNK_SIZE)
            if not chunk:
                break
            f.write(chunk)
            bar.update(len(chunk))


def _describe(err):
    """Short text for a download failure."""
    if isinstance(err, urllib.error.HTTPError):
        return "HTTP {} {}".format(err.code, err.reason)
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return str(err) or type(err).__name__


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
        except _Unreachable as err:
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
                 mirrors=None, urlopen=None):
    """Load a dataset: {train,test}_images (num, 28, 28) uint8, {train,test}_labels (num,) uint8.

    verify=True checks each file's MD5 and the standard sizes (60000 train, 10000
    test); verify=False keeps only the structural checks, for small custom files.
    mirrors (list of URL prefixes) and urlopen replace MIRRORS and urllib's opener.
    """
    dataset = _dataset_key(dataset)
    folder, how = _resolve(data_dir, dataset)
    missing = _missing_files(folder)
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
    for split, (image_name, label_name) in SPLITS.items():
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


def main(argv=None):
    """Command line: fetch (if needed), verify and summarise a dataset."""
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(MD5), default="mnist")
    parser.add_argument("--data-dir", default=None, help="folder with the four IDX files")
    parser.add_argument("--no-download", action="store_true")
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
