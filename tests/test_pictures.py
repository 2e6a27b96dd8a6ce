"""data/pictures.py: grids, row labels and the epoch axis of the curve plot."""
import numpy
from PIL import Image

from data import pictures


def test_grid_places_each_image_and_enlarges_it():
    images = numpy.zeros((3, 4, 5), dtype=numpy.uint8)
    images[1] = 255
    grid = pictures.make_grid(images, rows=2, cols=2, pad=1, scale=1)
    assert grid.shape == (2 * 5 + 1, 2 * 6 + 1)
    assert (grid[1:5, 7:12] == 255).all() and (grid[1:5, 1:6] == 0).all()
    assert grid[0, 0] == 128  # padding is mid grey
    assert pictures.make_grid(images, 2, 2, pad=1, scale=2).shape == (22, 26)


def test_row_labels_go_in_a_left_margin(tmp_path):
    images = numpy.zeros((20, 28, 28), dtype=numpy.uint8)
    path = str(tmp_path / "g.png")
    pictures.save_grid(path, images, 10, 2)
    plain = numpy.asarray(Image.open(path))
    pictures.save_grid(path, images, 10, 2, row_labels=list(range(10)))
    labelled = numpy.asarray(Image.open(path))
    margin = labelled.shape[1] - plain.shape[1]
    assert labelled.shape[0] == plain.shape[0] and margin > 8
    numpy.testing.assert_array_equal(labelled[:, margin:], plain)
    # every row's label leaves dark ink in the margin beside that row
    row_height = (28 + pictures.PAD) * pictures.SCALE
    for r in range(10):
        band = labelled[r * row_height:(r + 1) * row_height, :margin]
        assert band.min() < 100, r


def test_epoch_axis_has_whole_epochs_only():
    assert pictures.epoch_ticks(0.5, 1.5) == [1]
    assert pictures.epoch_ticks(1, 3) == [1, 2, 3]
    ticks = pictures.epoch_ticks(1, 20)
    assert ticks[0] == 1 and len(ticks) <= 8 and all(isinstance(t, int) for t in ticks)


def test_curve_of_one_epoch_is_drawn(tmp_path):
    path = str(tmp_path / "c.png")
    pictures.plot_curves(path, {"train": [(1, 0.2)], "validation": [(1, 0.19)]})
    image = numpy.asarray(Image.open(path).convert("RGB")).astype(int)
    # the validation point (orange, at the bottom of the plot: the lowest value) sits
    # in the middle of the plot's width, not at an edge of a 1..2 axis
    orange = numpy.argwhere((abs(image - (255, 127, 14)).sum(axis=2) < 30))
    point = orange[orange[:, 0] > image.shape[0] / 2]
    assert len(point) and abs(point[:, 1].mean() - (70 + 620) / 2) < 5


def test_grid_png_is_the_file_save_grid_writes(tmp_path):
    images = numpy.random.RandomState(0).randint(0, 256, (6, 5, 4)).astype(numpy.uint8)
    path = str(tmp_path / "g.png")
    pictures.save_grid(path, images, 2, 3, row_labels=["a", "b"])
    with open(path, "rb") as f:
        assert pictures.grid_png(images, 2, 3, row_labels=["a", "b"]) == f.read()
