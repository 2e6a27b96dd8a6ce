"""Pictures: image grids (optionally with row labels) and a training-curve plot,
drawn with Pillow only. Images are uint8 ``(num, height, width)`` or
``(num, height, width, 3)``."""
import io
import math

import numpy
from PIL import Image, ImageDraw

from lib.checkpoint import atomic_write


def grid_shape(num):
    """(rows, cols) of the most nearly square grid holding ``num`` images (5x5 for 25)."""
    cols = int(math.ceil(math.sqrt(num)))
    return int(math.ceil(num / cols)), cols


PAD, SCALE = 2, 2


def make_grid(images, rows=None, cols=None, pad=PAD, scale=SCALE):
    """images (num, height, width) or (num, height, width, 3) uint8 -> one uint8 image.

    Images fill rows left to right, separated by ``pad`` pixels of mid grey, and
    every pixel is enlarged ``scale`` times so that small digits stay visible.
    """
    images = numpy.asarray(images, dtype=numpy.uint8)
    if rows is None or cols is None:
        rows, cols = grid_shape(len(images))
    num, height, width = images.shape[:3]
    channels = images.shape[3:]
    canvas = numpy.full((rows * (height + pad) + pad, cols * (width + pad) + pad) + channels,
                        128, dtype=numpy.uint8)
    for k in range(num):
        r, c = divmod(k, cols)
        top, left = pad + r * (height + pad), pad + c * (width + pad)
        canvas[top:top + height, left:left + width] = images[k]
    return canvas.repeat(scale, axis=0).repeat(scale, axis=1)


def save_png(path, image):
    """Write a uint8 (H, W) or (H, W, 3) array as a PNG, atomically."""
    def write(f):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        f.write(buf.getvalue())
    atomic_write(path, write)


def save_grid(path, images, rows=None, cols=None, row_labels=None):
    """Save ``images`` (num, height, width[, 3]) uint8 as a grid PNG; ``row_labels``
    (one string per row) are written in a margin left of the rows."""
    save_png(path, labelled_grid(images, rows, cols, row_labels))


def labelled_grid(images, rows=None, cols=None, row_labels=None):
    """The picture ``save_grid`` writes, as a uint8 (H, W) or (H, W, 3) array."""
    grid = make_grid(images, rows, cols, pad=PAD, scale=SCALE)
    if row_labels is not None:
        grid = label_rows(grid, row_labels, numpy.asarray(images).shape[1])
    return grid


def grid_png(images, rows=None, cols=None, row_labels=None):
    """The PNG file ``save_grid`` writes, as bytes (nothing is written)."""
    buf = io.BytesIO()
    Image.fromarray(labelled_grid(images, rows, cols, row_labels)).save(buf, format="PNG")
    return buf.getvalue()


def label_rows(grid, labels, height):
    """A grid from make_grid (default pad and scale) with ``labels`` in a left margin,
    one per row of images ``height`` pixels high."""
    margin = 16
    picture = Image.new("RGB" if grid.ndim == 3 else "L", (grid.shape[1] + margin, grid.shape[0]),
                        "white" if grid.ndim == 3 else 255)
    picture.paste(Image.fromarray(grid), (margin, 0))
    draw = ImageDraw.Draw(picture)
    for r, label in enumerate(labels):
        middle = (PAD + r * (height + PAD) + height / 2) * SCALE
        draw.text((3, middle - 6), str(label), fill="black" if grid.ndim == 3 else 0)
    return numpy.asarray(picture)


def epoch_ticks(x0, x1, most=8):
    """Whole numbers from x0 to x1 for an epoch axis, at most ``most`` of them."""
    first, last = int(math.ceil(x0)), int(math.floor(x1))
    step = max(1, int(math.ceil((last - first + 1) / most)))
    return list(range(first, last + 1, step))


def plot_curves(path, series, title="NLL (nats per sub-pixel)", size=(640, 400)):
    """Line plot of ``{label: [(x, y), ...]}`` to a PNG (axes, ticks and legend)."""
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    width, height = size
    left, right, top, bottom = 70, 20, 30, 40
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    points = [p for values in series.values() for p in values]
    if points:
        xs, ys = zip(*points)
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(ys), max(ys)
        if x1 == x0:  # a single epoch: centre it
            x0, x1 = x0 - 0.5, x1 + 0.5
        if y1 == y0:
            y0, y1 = y0 - 5e-4, y1 + 5e-4

        def to_px(x, y):
            return (left + (x - x0) / (x1 - x0) * (width - left - right),
                    top + (y1 - y) / (y1 - y0) * (height - top - bottom))

        for i in range(5):
            y = y0 + (y1 - y0) * i / 4
            _, py = to_px(x0, y)
            draw.line([(left, py), (width - right, py)], fill=(225, 225, 225))
            draw.text((5, py - 6), "{:.4f}".format(y), fill="black")
        for x in epoch_ticks(x0, x1):
            px, _ = to_px(x, y0)
            draw.text((px - 4, height - bottom + 8), "{:d}".format(x), fill="black")
        for k, (label, values) in enumerate(series.items()):
            colour = colours[k % len(colours)]
            pixels = [to_px(x, y) for x, y in values]
            if len(pixels) > 1:
                draw.line(pixels, fill=colour, width=2)
            for px, py in pixels:
                draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
            draw.text((width - right - 150, top + 5 + 14 * k), label, fill=colour)
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    draw.text((left, 8), title, fill="black")
    draw.text((width // 2 - 20, height - 16), "epoch", fill="black")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write(path, lambda f: f.write(buf.getvalue()))
