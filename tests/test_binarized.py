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
    data = binarized.load_binarized(str(tmp_path), download=False)
    assert data["binarization"] == binarized.FIXED
    assert data["train_images"].shape == (4, 28, 28)
    assert "fixed binarization" in binarized.describe(data["binarization"])
    assert "not the same" in binarized.describe(binarized.DYNAMIC)
