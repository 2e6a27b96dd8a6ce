"""data/binarized.py: dynamic binarization and the .amat reader of the fixed one."""
import numpy
import pytest

from data import binarized
from data.idx import DataError


def test_dynamic_binarization_has_the_intensity_as_its_mean():
    grey = numpy.array([0, 1, 64, 128, 200, 255], dtype=numpy.uint8)
    images = numpy.tile(grey, (200000, 1))
    bits = binarized.binarize(images, numpy.random.RandomState(0)) / 255.0
    assert set(numpy.unique(bits)) <= {0.0, 1.0}
    # 200,000 draws each: standard error at most 0.0012
    numpy.testing.assert_allclose(bits.mean(axis=0), grey / 255.0, atol=0.005)
    assert bits[:, 0].max() == 0 and bits[:, -1].min() == 1  # 0 never, 255 always


def test_each_epoch_draws_afresh_and_the_same_again_on_resume():
    images = numpy.full((50, 28, 28), 128, dtype=numpy.uint8)
    one = binarized.epoch_binarization(images, seed=3, epoch=1)
    two = binarized.epoch_binarization(images, seed=3, epoch=2)
    assert (one != two).any()
    numpy.testing.assert_array_equal(one, binarized.epoch_binarization(images, 3, 1))


def write_amat(path, rows):
    path.write_text("".join(" ".join(str(v) for v in row) + "\n" for row in rows))


def test_amat_reader_reads_a_good_file(tmp_path):
    rng = numpy.random.RandomState(0)
    bits = rng.randint(0, 2, (3, 784))
    path = tmp_path / "binarized_mnist_test.amat"
    write_amat(path, bits)
    images = binarized.read_amat(str(path))
    assert images.shape == (3, 28, 28) and images.dtype == numpy.uint8
    numpy.testing.assert_array_equal(images.reshape(3, 784), bits * 255)


@pytest.mark.parametrize("row, words", [
    ([0] * 783, "line 2: 783 values, expected 784"),
    ([0] * 783 + [2], "line 2: the value '2' is neither 0 nor 1"),
    ([0] * 783 + ["0.5"], "line 2: the value '0.5' is neither 0 nor 1"),
])
def test_amat_reader_names_a_bad_line(tmp_path, row, words):
    path = tmp_path / "bad.amat"
    write_amat(path, [[1] * 784, row])
    with pytest.raises(DataError, match=words):
        binarized.read_amat(str(path))


def test_fixed_files_are_preferred_and_named(tmp_path):
    rng = numpy.random.RandomState(1)
    for split in ("train", "test"):
        write_amat(tmp_path / binarized.AMAT_FILES[split], rng.randint(0, 2, (4, 784)))
    data = binarized.load_binarized(str(tmp_path), download=False, verify=False)
    assert data["binarization"] == binarized.FIXED
    assert data["train_images"].shape == (4, 28, 28)
    assert "fixed binarization" in binarized.describe(data["binarization"])
    assert "not the same" in binarized.describe(binarized.DYNAMIC)


def write_fixed_files(folder, sizes, seed=1):
    """binarized_mnist_<split>.amat files of random bits; returns them as {split: (n, 784)}."""
    rng = numpy.random.RandomState(seed)
    bits = {split: rng.randint(0, 2, (num, 784)) for split, num in sizes.items()}
    for split, rows in bits.items():
        write_amat(folder / binarized.AMAT_FILES[split], rows)
    return bits


def test_amat_reader_names_the_line_that_is_not_text(tmp_path):
    path = tmp_path / "binarized_mnist_test.amat"
    good = " ".join(["0"] * 784).encode() + b"\n"
    path.write_bytes(good + b"0 1 \xff\xfe 0\n" + good)
    with pytest.raises(DataError) as err:
        binarized.read_amat(str(path))
    text = str(err.value)
    assert str(path) in text and "line 2" in text and "0xff" in text and "UTF-8" in text


def test_amat_reader_checks_the_standard_split_size(tmp_path):
    write_fixed_files(tmp_path, {"train": 3, "test": 2})
    with pytest.raises(DataError, match="holds 3 images, expected 50000.*--no-verify"):
        binarized.load_binarized(str(tmp_path), download=False)
    with pytest.raises(DataError, match="holds 2 images, expected 10000"):
        binarized.load_binarized(str(tmp_path), download=False, splits=("test",))
    path = str(tmp_path / binarized.AMAT_FILES["test"])
    assert binarized.read_amat(path, expected=2).shape == (2, 28, 28)


def test_some_fixed_files_missing_are_named_not_replaced_by_dynamic_bits(tmp_path):
    write_fixed_files(tmp_path, {"test": 2})
    with pytest.raises(DataError) as err:
        binarized.load_binarized(str(tmp_path), download=False, verify=False)
    text = str(err.value)
    assert "holds binarized_mnist_test.amat but not binarized_mnist_train.amat" in text
    assert "no binarized_mnist" not in text
    # a reader of the test split alone (evaluate.py) needs no train file
    data = binarized.load_binarized(str(tmp_path), download=False, verify=False,
                                    splits=("test",))
    assert data["binarization"] == binarized.FIXED and sorted(data) == [
        "binarization", "test_images", "test_labels"]


def test_dynamic_test_split_reads_only_the_test_files(tmp_path):
    from data import mnist
    rng = numpy.random.RandomState(0)
    mnist.write_idx(str(tmp_path / mnist.TEST_IMAGES), rng.randint(0, 256, (5, 28, 28))
                    .astype(numpy.uint8), gzip=False)
    mnist.write_idx(str(tmp_path / mnist.TEST_LABELS), numpy.arange(5, dtype=numpy.uint8),
                    gzip=False)
    data = binarized.load_binarized(str(tmp_path), download=False, verify=False,
                                    splits=("test",))
    assert data["binarization"] == binarized.DYNAMIC and "train_images" not in data
    assert set(numpy.unique(data["test_images"])) <= {0, 255}


def test_held_out_fixed_validation_is_the_valid_file(tmp_path):
    bits = write_fixed_files(tmp_path, {"train": 6, "valid": 3})
    data = binarized.load_binarized(str(tmp_path), download=False, verify=False,
                                    splits=("train", "valid"))
    split = binarized.hold_out(data, 3)
    numpy.testing.assert_array_equal(split["valid_images"].reshape(3, 784), bits["valid"] * 255)
    numpy.testing.assert_array_equal(split["train_images"].reshape(6, 784), bits["train"] * 255)
    # more than the valid file: the last training images join it
    split = binarized.hold_out(data, 4)
    numpy.testing.assert_array_equal(split["valid_images"][0].reshape(784), bits["train"][5] * 255)
    assert len(split["train_images"]) == 5 and split["valid_labels"] is None


def test_the_valid_split_evaluate_reads_is_the_one_training_held_out(tmp_path):
    """load_valid_split (evaluate.py --split valid) with the fixed files: the valid
    file; it refuses a model of other than 2 levels, as load_test_split does."""
    bits = write_fixed_files(tmp_path, {"train": 6, "valid": 3, "test": 2})
    data = binarized.load_valid_split(str(tmp_path), "binarized-mnist", 2, 3, verify=False)
    assert sorted(data) == ["binarization", "valid_images", "valid_labels"]
    assert data["binarization"] == binarized.FIXED and data["valid_labels"] is None
    numpy.testing.assert_array_equal(data["valid_images"].reshape(3, 784), bits["valid"] * 255)
    with pytest.raises(ValueError, match="needs a checkpoint with Q_LEVELS 2; this one has 4"):
        binarized.load_valid_split(str(tmp_path), "binarized-mnist", 4, 3, verify=False)


def test_held_out_dynamic_validation_is_binarized_once():
    grey = numpy.full((8, 28, 28), 128, dtype=numpy.uint8)
    labels = numpy.arange(8, dtype=numpy.uint8)
    data = {"train_images": grey, "train_labels": labels, "binarization": binarized.DYNAMIC}
    one, two = binarized.hold_out(data, 3), binarized.hold_out(data, 3)
    assert set(numpy.unique(one["valid_images"])) == {0, 255}
    numpy.testing.assert_array_equal(one["valid_images"], two["valid_images"])
    assert one["train_images"].shape == (5, 28, 28) and (one["train_images"] == 128).all()
    numpy.testing.assert_array_equal(one["valid_labels"], labels[5:])


@pytest.mark.parametrize("recorded, dataset, found, warned", [
    ({}, "mnist", None, False),
    ({"dataset": "mnist"}, "mnist", None, False),
    ({"dataset": "binarized-mnist", "binarization": "dynamic"}, "mnist", None, True),
    ({"dataset": "binarized-mnist", "binarization": "dynamic"}, "binarized-mnist", "fixed",
     True),
    ({"dataset": "binarized-mnist", "binarization": "fixed"}, "binarized-mnist", "fixed",
     False),
])
def test_other_dataset_warning(recorded, dataset, found, warned):
    line = binarized.other_dataset_warning("ckpt.npz", recorded, dataset, found)
    assert (line is not None) == warned
    if warned:
        assert line.startswith("warning: ckpt.npz was trained on ") and "\n" not in line
        assert binarized.dataset_name(dataset, found) in line
