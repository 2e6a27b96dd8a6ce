"""Tests for data.mnist: IDX parsing, checks, folder resolution and (fake) downloads."""

import gzip
import hashlib
import io
import os
import urllib.error

import numpy as np
import pytest

from data import mnist
from data.mnist import DataError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_MNIST = os.path.join(REPO_ROOT, "..", "shared", "data", "mnist")
MIRROR_A = "https://mirror-a.invalid/mnist/"
MIRROR_B = "https://mirror-b.invalid/mnist/"


# ---------------------------------------------------------------------------
# Helpers


def small_split(num, seed):
    """Random (num, 28, 28) uint8 images and (num,) uint8 labels in 0-9."""
    rng = np.random.RandomState(seed)
    images = rng.randint(0, 256, size=(num, 28, 28)).astype(np.uint8)
    labels = rng.randint(0, 10, size=num).astype(np.uint8)
    return images, labels


def write_small_dataset(folder, gzip=True, num_train=5, num_test=3):
    """Write the four IDX files with small splits; return the arrays by load_dataset key."""
    train_images, train_labels = small_split(num_train, seed=0)
    test_images, test_labels = small_split(num_test, seed=1)
    arrays = {"train_images": train_images, "train_labels": train_labels,
              "test_images": test_images, "test_labels": test_labels}
    names = dict(zip(arrays, mnist.FILE_NAMES))
    suffix = ".gz" if gzip else ""
    for key, array in arrays.items():
        mnist.write_idx(os.path.join(folder, names[key] + suffix), array, gzip=gzip)
    return arrays


def idx_bytes(array):
    """Uncompressed IDX bytes of a uint8 array (header + data)."""
    buf = io.BytesIO()
    buf.write((0x0800 | array.ndim).to_bytes(4, "big"))
    for dim in array.shape:
        buf.write(dim.to_bytes(4, "big"))
    buf.write(array.tobytes())
    return buf.getvalue()


class FakeResponse(io.BytesIO):
    """A urlopen response serving fixed bytes, optionally failing after some bytes."""

    def __init__(self, data, fail_after=None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}
        self.fail_after = fail_after

    def read(self, size=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset mid-download")
        return super().read(size)


class FakeOpener:
    """Stand-in for urllib's urlopen: serves {url: bytes}; other URLs raise URLError."""

    def __init__(self, files=None, fail_after=None):
        self.files = files or {}
        self.fail_after = fail_after
        self.requested = []

    def __call__(self, url, timeout=None):
        assert timeout is not None, "downloads must use a timeout"
        self.requested.append(url)
        if url not in self.files:
            raise urllib.error.URLError("[Errno -2] Name or service not known")
        return FakeResponse(self.files[url], self.fail_after)


def leftovers(folder):
    """Names of temporary files left in folder."""
    return [name for name in os.listdir(folder) if name.endswith(".part")]


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No real env vars, cache or system folder leak into a test."""
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(mnist, "SYSTEM_DIRS",
                        {"fashion-mnist": [str(tmp_path / "system-fashion")]})


# ---------------------------------------------------------------------------
# Reading and writing IDX files


@pytest.mark.parametrize("use_gzip", [True, False])
def test_write_and_read_idx_round_trip(tmp_path, use_gzip):
    images, labels = small_split(5, seed=2)
    images_path = str(tmp_path / "images")
    mnist.write_idx(images_path, images, gzip=use_gzip)
    mnist.write_idx(str(tmp_path / "labels"), labels, gzip=use_gzip)
    with open(images_path, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == use_gzip
    got_images = mnist.read_idx(images_path)
    got_labels = mnist.read_idx(str(tmp_path / "labels"))
    assert got_images.shape == (5, 28, 28) and got_images.dtype == np.uint8
    assert got_labels.shape == (5,) and got_labels.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert leftovers(str(tmp_path)) == []


def test_read_idx_accepts_matching_md5(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    path = str(tmp_path / "labels.gz")
    mnist.write_idx(path, labels)
    md5 = hashlib.md5(idx_bytes(labels)).hexdigest()
    np.testing.assert_array_equal(mnist.read_idx(path, expected_md5=md5), labels)


def test_read_idx_wrong_checksum(tmp_path):
    path = str(tmp_path / "train-labels-idx1-ubyte.gz")
    mnist.write_idx(path, np.arange(10, dtype=np.uint8))
    with pytest.raises(DataError) as info:
        mnist.read_idx(path, expected_md5="0" * 32)
    message = str(info.value)
    assert "train-labels-idx1-ubyte.gz" in message
    assert "checksum mismatch" in message
    assert "0" * 32 in message
    assert hashlib.md5(idx_bytes(np.arange(10, dtype=np.uint8))).hexdigest() in message
    assert "Delete the file" in message


def test_read_idx_truncated_raw_file(tmp_path):
    path = str(tmp_path / "t10k-images-idx3-ubyte")
    data = idx_bytes(small_split(3, seed=3)[0])
    with open(path, "wb") as f:
        f.write(data[:-100])
    with pytest.raises(DataError) as info:
        mnist.read_idx(path)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte" in message
    assert "truncated" in message
    assert str(len(data)) in message and str(len(data) - 100) in message


def test_read_idx_too_long_file(tmp_path):
    path = str(tmp_path / "t10k-labels-idx1-ubyte")
    with open(path, "wb") as f:
        f.write(idx_bytes(np.arange(4, dtype=np.uint8)) + b"\x00\x01")
    with pytest.raises(DataError) as info:
        mnist.read_idx(path)
    assert "t10k-labels-idx1-ubyte" in str(info.value)
    assert "too long" in str(info.value)
    assert "12 bytes" in str(info.value) and "14" in str(info.value)


def test_read_idx_truncated_gzip_stream(tmp_path):
    path = str(tmp_path / "train-images-idx3-ubyte.gz")
    compressed = gzip.compress(idx_bytes(small_split(5, seed=4)[0]))
    with open(path, "wb") as f:
        f.write(compressed[:len(compressed) // 2])
    with pytest.raises(DataError) as info:
        mnist.read_idx(path)
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert "gzip stream is truncated" in str(info.value)


def test_read_idx_corrupt_gzip_data(tmp_path):
    path = str(tmp_path / "train-images-idx3-ubyte.gz")
    compressed = bytearray(gzip.compress(idx_bytes(small_split(5, seed=4)[0])))
    compressed[-8:-4] = bytes(4)  # break the CRC
    with open(path, "wb") as f:
        f.write(bytes(compressed))
    with pytest.raises(DataError) as info:
        mnist.read_idx(path)
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert "gzip data is corrupt" in str(info.value)


def test_read_idx_wrong_magic(tmp_path):
    path = str(tmp_path / "train-images-idx3-ubyte")
    data = bytearray(idx_bytes(small_split(2, seed=5)[0]))
    data[0:4] = (0x00000D03).to_bytes(4, "big")  # 3-dimensional float data
    with open(path, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(DataError) as info:
        mnist.read_idx(path)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message
    assert "wrong magic number 0x00000d03" in message
    assert "0x00000803" in message


def test_read_idx_wrong_image_size(tmp_path):
    path = str(tmp_path / "images")
    with open(path, "wb") as f:
        f.write(idx_bytes(np.zeros((2, 32, 32), dtype=np.uint8)))
    with pytest.raises(DataError) as info:
        mnist.read_idx(path)
    assert "32 x 32, expected 28 x 28" in str(info.value)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError) as info:
        mnist.read_idx(str(tmp_path / "nowhere-idx1-ubyte"))
    assert "nowhere-idx1-ubyte: file not found" in str(info.value)


def test_write_idx_rejects_non_uint8(tmp_path):
    with pytest.raises(DataError) as info:
        mnist.write_idx(str(tmp_path / "x"), np.zeros((2, 28, 28), dtype=np.float32))
    assert "float32" in str(info.value)
    assert os.listdir(str(tmp_path)) == []


# ---------------------------------------------------------------------------
# Loading a dataset from a folder


@pytest.mark.parametrize("use_gzip", [True, False])
def test_load_dataset_small_files(tmp_path, use_gzip):
    arrays = write_small_dataset(str(tmp_path), gzip=use_gzip)
    data = mnist.load_dataset(str(tmp_path), download=False, verify=False)
    assert sorted(data) == sorted(arrays)
    assert data["train_images"].shape == (5, 28, 28)
    assert data["train_labels"].shape == (5,)
    assert data["test_images"].shape == (3, 28, 28)
    assert data["test_labels"].shape == (3,)
    for key, array in arrays.items():
        assert data[key].dtype == np.uint8
        np.testing.assert_array_equal(data[key], array)


def test_load_dataset_verify_rejects_non_official_files(tmp_path):
    write_small_dataset(str(tmp_path))
    with pytest.raises(DataError) as info:
        mnist.load_dataset(str(tmp_path), download=False, verify=True)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert "checksum mismatch" in message
    assert mnist.MD5["mnist"]["train-images-idx3-ubyte"] in message


def test_load_dataset_label_count_mismatch(tmp_path):
    write_small_dataset(str(tmp_path))
    mnist.write_idx(str(tmp_path / "t10k-labels-idx1-ubyte.gz"),
                         np.zeros(4, dtype=np.uint8))
    with pytest.raises(DataError) as info:
        mnist.load_dataset(str(tmp_path), download=False, verify=False)
    assert "test split has 3 images but 4 labels" in str(info.value)


def test_load_dataset_swapped_files(tmp_path):
    write_small_dataset(str(tmp_path))
    os.replace(str(tmp_path / "train-labels-idx1-ubyte.gz"),
               str(tmp_path / "train-images-idx3-ubyte.gz"))
    mnist.write_idx(str(tmp_path / "train-labels-idx1-ubyte.gz"),
                         small_split(5, seed=0)[0])
    with pytest.raises(DataError) as info:
        mnist.load_dataset(str(tmp_path), download=False, verify=False)
    assert "train-images-idx3-ubyte.gz: holds labels but images were expected" \
        in str(info.value)


def test_load_dataset_missing_without_download(tmp_path):
    write_small_dataset(str(tmp_path))
    os.remove(str(tmp_path / "t10k-images-idx3-ubyte.gz"))
    with pytest.raises(DataError) as info:
        mnist.load_dataset(str(tmp_path), download=False, verify=False)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte" in message
    assert "train-images-idx3-ubyte" not in message.split("To fix")[0]
    assert "Downloading is turned off" in message


def test_load_dataset_of_one_split_needs_only_its_files(tmp_path):
    arrays = write_small_dataset(str(tmp_path))
    os.remove(str(tmp_path / "train-images-idx3-ubyte.gz"))
    os.remove(str(tmp_path / "train-labels-idx1-ubyte.gz"))
    data = mnist.load_dataset(str(tmp_path), download=False, verify=False, splits=("test",))
    assert sorted(data) == ["test_images", "test_labels"]
    np.testing.assert_array_equal(data["test_images"], arrays["test_images"])
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        mnist.load_dataset(str(tmp_path), download=False, verify=False)
    with pytest.raises(DataError, match="unknown splits"):
        mnist.load_dataset(str(tmp_path), download=False, splits=("valid",))


def test_data_folder_that_is_a_file(tmp_path):
    archive = tmp_path / "mnist.tar.gz"
    archive.write_bytes(b"not a folder")
    with pytest.raises(DataError) as info:
        mnist.load_dataset(str(archive), download=True)
    assert "is a file, not a folder" in str(info.value) and "--data-dir" in str(info.value)


# ---------------------------------------------------------------------------
# Downloading (offline, through a fake opener)


def test_missing_files_and_every_mirror_failing(tmp_path):
    folder = str(tmp_path / "empty" / "mnist")
    opener = FakeOpener()
    with pytest.raises(DataError) as info:
        mnist.load_dataset(folder, mirrors=[MIRROR_A, MIRROR_B], urlopen=opener)
    message = str(info.value)
    for name in mnist.FILE_NAMES:
        assert name in message
    assert folder in message
    assert "--data-dir DIR" in message and "MNIST_DIR=DIR" in message
    assert MIRROR_A + "train-images-idx3-ubyte.gz" in message
    assert "Name or service not known" in message
    # Both mirrors were tried for the first file; with no mirror reachable the
    # other files were not attempted, and the created folders were removed.
    assert opener.requested == [MIRROR_A + "train-images-idx3-ubyte.gz",
                                MIRROR_B + "train-images-idx3-ubyte.gz"]
    assert not os.path.exists(str(tmp_path / "empty"))


def test_missing_files_message_names_env_var_source(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "from-env"))
    with pytest.raises(DataError) as info:
        mnist.load_dataset(mirrors=[MIRROR_A], urlopen=FakeOpener())
    assert str(tmp_path / "from-env") in str(info.value)
    assert "$MNIST_DIR" in str(info.value)


def test_download_stores_verified_file(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    served = gzip.compress(idx_bytes(labels))
    name = "train-labels-idx1-ubyte"
    opener = FakeOpener({MIRROR_B + name + ".gz": served})
    md5 = hashlib.md5(idx_bytes(labels)).hexdigest()
    path = mnist.download_file(name, str(tmp_path), [MIRROR_A, MIRROR_B],
                                    expected_md5=md5, urlopen=opener)
    assert path == str(tmp_path / (name + ".gz"))
    assert opener.requested == [MIRROR_A + name + ".gz", MIRROR_B + name + ".gz"]
    with open(path, "rb") as f:
        assert f.read() == served
    assert sorted(os.listdir(str(tmp_path))) == [name + ".gz"]
    np.testing.assert_array_equal(mnist.read_idx(path, md5), labels)


def test_download_rejects_wrong_checksum_and_leaves_nothing(tmp_path):
    name = "train-labels-idx1-ubyte"
    opener = FakeOpener({MIRROR_A + name + ".gz":
                         gzip.compress(idx_bytes(np.zeros(5, dtype=np.uint8)))})
    with pytest.raises(DataError) as info:
        mnist.download_file(name, str(tmp_path), [MIRROR_A], expected_md5="1" * 32,
                                 urlopen=opener)
    assert MIRROR_A + name + ".gz" in str(info.value)
    assert "checksum mismatch" in str(info.value)
    assert os.listdir(str(tmp_path)) == []


def test_download_of_corrupt_bytes_leaves_nothing(tmp_path):
    name = "t10k-images-idx3-ubyte"
    good = gzip.compress(idx_bytes(small_split(3, seed=6)[0]))
    opener = FakeOpener({MIRROR_A + name + ".gz": good[:len(good) // 3]})
    with pytest.raises(DataError) as info:
        mnist.download_file(name, str(tmp_path), [MIRROR_A], urlopen=opener)
    assert "could not download t10k-images-idx3-ubyte" in str(info.value)
    assert "gzip stream is truncated" in str(info.value)
    assert os.listdir(str(tmp_path)) == []


def test_download_interrupted_midway_leaves_nothing(tmp_path):
    name = "t10k-images-idx3-ubyte"
    served = gzip.compress(idx_bytes(small_split(3, seed=6)[0]))
    opener = FakeOpener({MIRROR_A + name + ".gz": served}, fail_after=100)
    with pytest.raises(DataError) as info:
        mnist.download_file(name, str(tmp_path), [MIRROR_A], urlopen=opener)
    assert "connection reset" in str(info.value)
    assert os.listdir(str(tmp_path)) == []


def test_load_dataset_downloads_missing_files(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    arrays = write_small_dataset(str(source))
    files = {MIRROR_A + name: (source / name).read_bytes() for name in os.listdir(str(source))}
    folder = tmp_path / "cache"
    opener = FakeOpener(files)
    data = mnist.load_dataset(str(folder), verify=False, mirrors=[MIRROR_A],
                                   urlopen=opener)
    for key, array in arrays.items():
        np.testing.assert_array_equal(data[key], array)
    assert sorted(os.listdir(str(folder))) == sorted(os.listdir(str(source)))
    # A second load finds the files and does not download again.
    opener.requested.clear()
    mnist.load_dataset(str(folder), verify=False, mirrors=[MIRROR_A], urlopen=opener)
    assert opener.requested == []


def test_load_dataset_verifies_downloads_against_known_md5(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    write_small_dataset(str(source))
    files = {MIRROR_A + name: (source / name).read_bytes() for name in os.listdir(str(source))}
    folder = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        mnist.load_dataset(str(folder), mirrors=[MIRROR_A], urlopen=FakeOpener(files))
    message = str(info.value)
    assert "checksum mismatch" in message
    assert mnist.MD5["mnist"]["train-images-idx3-ubyte"] in message
    assert not folder.exists()  # nothing stored, and the created folder removed


# ---------------------------------------------------------------------------
# Finding the folder


def test_resolve_data_dir_order(tmp_path, monkeypatch):
    cache = str(tmp_path / "xdg-cache" / "pixelcnn" / "mnist")
    assert mnist.resolve_data_dir() == cache
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "env"))
    assert mnist.resolve_data_dir() == str(tmp_path / "env")
    assert mnist.resolve_data_dir(str(tmp_path / "arg")) == str(tmp_path / "arg")
    # MNIST_DIR does not apply to Fashion-MNIST, which has its own variable.
    fashion_cache = str(tmp_path / "xdg-cache" / "pixelcnn" / "fashion-mnist")
    assert mnist.resolve_data_dir(dataset="fashion-mnist") == fashion_cache


def test_resolve_data_dir_home_cache_without_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert mnist.resolve_data_dir() == str(tmp_path / "home" / ".cache" / "pixelcnn"
                                                / "mnist")


def test_resolve_data_dir_fashion_system_folder(tmp_path, monkeypatch):
    system = tmp_path / "system-fashion"
    system.mkdir()
    cache = str(tmp_path / "xdg-cache" / "pixelcnn" / "fashion-mnist")
    # An incomplete system folder is ignored.
    mnist.write_idx(str(system / "train-images-idx3-ubyte.gz"),
                         small_split(2, seed=7)[0])
    assert mnist.resolve_data_dir(dataset="fashion-mnist") == cache
    write_small_dataset(str(system))
    assert mnist.resolve_data_dir(dataset="fashion-mnist") == str(system)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "env"))
    assert mnist.resolve_data_dir(dataset="fashion-mnist") == str(tmp_path / "env")
    assert mnist.resolve_data_dir(str(tmp_path / "arg"), "fashion-mnist") \
        == str(tmp_path / "arg")


def test_unknown_dataset():
    with pytest.raises(DataError) as info:
        mnist.resolve_data_dir(dataset="cifar10")
    assert "unknown dataset 'cifar10'" in str(info.value)
    assert "fashion-mnist" in str(info.value)


# ---------------------------------------------------------------------------
# The real MNIST


def real_mnist_dir():
    """The full MNIST folder: $MNIST_DIR if set, else ../shared/data/mnist beside the repo."""
    return os.environ.get("MNIST_DIR") or os.path.normpath(SHARED_MNIST)


@pytest.fixture(scope="module")
def real_mnist():
    """The full MNIST loaded (and MD5-verified) through $MNIST_DIR, or a skip."""
    folder = real_mnist_dir()
    if not all(mnist._find_file(folder, name) for name in mnist.FILE_NAMES):
        pytest.skip("the full MNIST is not at {} (set MNIST_DIR to its folder)".format(folder))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MNIST_DIR", folder)
        return mnist.load_dataset(download=False)


def test_real_mnist(real_mnist):
    assert real_mnist["train_images"].shape == (60000, 28, 28)
    assert real_mnist["train_labels"].shape == (60000,)
    assert real_mnist["test_images"].shape == (10000, 28, 28)
    assert real_mnist["test_labels"].shape == (10000,)
    assert all(array.dtype == np.uint8 for array in real_mnist.values())
    assert np.bincount(real_mnist["train_labels"]).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(real_mnist["test_labels"]).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert real_mnist["train_images"].mean() == pytest.approx(33.318, abs=1e-3)


# ---------------------------------------------------------------------------
# Held-out validation (train_mnist.py --valid-split)


def test_hold_out_keeps_the_first_images_for_training_and_the_last_for_validation():
    images, labels = small_split(10, seed=2)
    split = mnist.hold_out({"train_images": images, "train_labels": labels}, 3)
    np.testing.assert_array_equal(split["train_images"], images[:7])
    np.testing.assert_array_equal(split["valid_images"], images[7:])
    np.testing.assert_array_equal(split["train_labels"], labels[:7])
    np.testing.assert_array_equal(split["valid_labels"], labels[7:])
    unlabelled = mnist.hold_out({"train_images": images, "train_labels": None}, 3)
    assert unlabelled["valid_labels"] is None and len(unlabelled["valid_images"]) == 3


@pytest.mark.parametrize("num", [10, 11])
def test_hold_out_of_every_image_is_refused(num):
    images, labels = small_split(10, seed=2)
    with pytest.raises(DataError, match="--valid-split {} leaves no training images: the "
                                        "training split holds 10".format(num)):
        mnist.hold_out({"train_images": images, "train_labels": labels}, num)
