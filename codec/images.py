"""The images the codec takes and gives back: MNIST test images, ``.npy`` arrays, PNGs.

The codec is lossless on *bins*, the Q_LEVELS values a model predicts. Images
of 0..255 values are quantized by the tool first, as the project quantizes
its data (``quantize.to_targets``: ``bin = floor(value * Q / 256)``), and the
tool says so; binarized MNIST test images come from ``data.binarized`` (its
dynamic binarization is drawn with a fixed seed, which the file records).
``.npy`` arrays that already hold bins are taken as they are (``--bins``).

Arrays: ``(num, height, width)`` grey or ``(num, height, width, channels)``;
bins uint8. Every problem is an ``InputError`` that names it and the fix.
"""
import contextlib
import glob
import io
import os
import shutil
import signal
import tempfile

import numpy
from PIL import Image

import quantize
from data import binarized, mnist
from lib.checkpoint import atomic_write

# how the bins were made from the input (the header records the key)
QUANTIZATION = {
    "to_targets": "the images were quantized by compress.py to {q} levels: bin = floor(value * "
                  "{q} / 256) of their 0..255 values (quantize.to_targets); the codec is "
                  "lossless on these bins",
    "binarized": "the test images were binarized as evaluate.py binarizes them "
                 "(data.binarized: {binarization} binarization{seed}); the codec is lossless "
                 "on these bits",
    "bins": "the array holds the bins (--bins): coded as they are"}
NUM_CLASSES = 10


class InputError(ValueError):
    """Images, labels or an output path that cannot be used (exit code 2)."""


def default_dataset(q_levels, recorded=None):
    """The test split a model of ``q_levels`` codes by default: the dataset its
    checkpoint records, else binarized MNIST for two levels, else MNIST."""
    if recorded:
        return recorded
    return "binarized-mnist" if q_levels == 2 else "mnist"


def test_images(count, q_levels, dataset, data_dir=None, verify=True):
    """The first ``count`` test images of ``dataset`` as the model's bins:
    (bins (count, 28, 28) uint8, labels (count,) or None, description dict)."""
    try:
        data = binarized.load_test_split(data_dir, dataset, q_levels, verify=verify)
    except (mnist.DataError, ValueError) as err:
        raise InputError(str(err))
    images, labels = data["test_images"], data["test_labels"]
    if count > len(images):
        raise InputError("--test {}: the test split holds only {} images".format(
            count, len(images)))
    images = images[:count]
    source = {"kind": "test", "dataset": dataset, "count": count, "quantization": "to_targets"}
    if dataset == "binarized-mnist":
        source.update(quantization="binarized", binarization=data["binarization"])
        if data["binarization"] == binarized.DYNAMIC:
            source["binarization_seed"] = binarized.TEST_SEED
    return quantize.to_targets(images, q_levels), \
        None if labels is None else labels[:count], source


def npy_images(path, q_levels, given_bins=False):
    """(bins in the array's own shape, description) of a ``.npy`` file of 0..255
    images, or of bins 0..Q-1 with ``given_bins``."""
    try:
        array = numpy.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError("cannot read {} as a .npy array ({}); save the images with "
                         "numpy.save".format(path, err))
    if array.ndim not in (3, 4) or 0 in array.shape:
        raise InputError("{} holds an array of shape {}; expected (num, height, width) grey "
                         "or (num, height, width, channels) images".format(path, array.shape))
    if array.dtype == bool:
        array = array.astype(numpy.uint8)
    if array.dtype.kind not in "ui":
        raise InputError("{} holds {} values; expected integers (0..255 images, or bins with "
                         "--bins): multiply floats in [0, 1] by 255 and round first".format(
                             path, array.dtype))
    source = {"kind": "npy", "name": os.path.basename(path)}
    if given_bins:
        check_levels(array, q_levels, "{} (--bins)".format(path))
        source["quantization"] = "bins"
        return array.astype(numpy.uint8), source
    if array.min() < 0 or array.max() > 255:
        raise InputError("{} holds values {}..{}, outside 0..255; pass --bins if they are "
                         "already the model's bins 0..{}".format(
                             path, array.min(), array.max(), q_levels - 1))
    source["quantization"] = "to_targets"
    return quantize.to_targets(array, q_levels), source


def describe_quantization(source, q_levels):
    """One sentence on how the bins of ``source`` (a header's description) were made."""
    seed = source.get("binarization_seed")
    return QUANTIZATION[source["quantization"]].format(
        q=q_levels, binarization=source.get("binarization"),
        seed=", seed {}".format(seed) if seed is not None else "")


def check_levels(bins, q_levels, name):
    """InputError unless every value of ``bins`` lies in 0..q_levels-1."""
    if bins.min() < 0 or bins.max() >= q_levels:
        raise InputError("{} holds values {}..{}, but the model has {} levels (0..{}): "
                         "give 0..255 images (without --bins) to have them quantized, or a "
                         "model of more levels".format(name, bins.min(), bins.max(),
                                                       q_levels, q_levels - 1))


def png_paths(names):
    """The PNG files named, a folder standing for the *.png files in it (sorted)."""
    paths = []
    for name in names:
        if os.path.isdir(name):
            found = sorted(glob.glob(os.path.join(name, "*.png")))
            if not found:
                raise InputError("the folder {} holds no .png files".format(name))
            paths += found
        elif os.path.isfile(name):
            paths.append(name)
        else:
            raise InputError("{}: no such file or folder".format(name))
    bases = [os.path.basename(p) for p in paths]
    if len(set(bases)) != len(bases):
        raise InputError("two of the PNG files have the same name; the decoder writes them "
                         "back by name, so give files of distinct names")
    return paths


def png_images(names, q_levels, channels):
    """(bins (num, height, width) or (num, height, width, 3), description) of PNG
    files (8-bit grey or RGB; a grey model takes RGB files whose colours are grey)."""
    paths = png_paths(names)
    arrays = [_png_array(path, channels) for path in paths]
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise InputError("the PNG files differ in size ({}); one file codes images of one "
                         "size: code each size separately".format(
                             ", ".join("x".join(map(str, s[:2])) for s in shapes)))
    source = {"kind": "png", "names": [os.path.basename(p) for p in paths],
              "quantization": "to_targets"}
    return quantize.to_targets(numpy.stack(arrays), q_levels), source


def _png_array(path, channels):
    """(height, width) or (height, width, 3) uint8 of one PNG, for a model of
    ``channels`` colours."""
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("1", "P"):
                image = image.convert("RGB" if mode == "P" else "L")
            elif mode not in ("L", "RGB"):
                raise InputError("{}: PNG mode {} is not handled; save it as 8-bit grey (L) "
                                 "or RGB without transparency".format(path, mode))
            array = numpy.asarray(image, dtype=numpy.uint8)
    except (OSError, SyntaxError) as err:
        raise InputError("cannot read {} as an image ({})".format(path, err))
    if array.ndim == 3 and channels == 1:
        if not ((array[..., 0] == array[..., 1]).all() and (array[..., 0] == array[..., 2]).all()):
            raise InputError("{} is in colour, but the model is grey: give grey images or a "
                             "colour model".format(path))
        array = array[..., 0]
    if array.ndim == 2 and channels == 3:
        raise InputError("{} is grey, but the model is colour (RGB): give RGB images or a grey "
                         "model".format(path))
    return array


def as_four_d(bins, channels, name="the images"):
    """bins (num, height, width) or (num, height, width, channels) -> the 4-d view;
    InputError when the colours do not match the model's ``channels``."""
    if bins.ndim == 3:
        bins = bins[..., None]
    if bins.shape[3] != channels:
        raise InputError("{} have {} channel{}, the model reads {}: give {} images or a "
                         "model of their kind".format(
                             name, bins.shape[3], "s" if bins.shape[3] > 1 else "",
                             channels, "grey" if channels == 1 else
                             "{}-channel".format(channels)))
    return bins


def parse_labels(text, count):
    """Class labels (count,) uint8 from "3,1,4", one number (for every image), or a
    .npy / text file of numbers."""
    if os.path.isfile(text):
        try:
            values = (numpy.load(text, allow_pickle=False) if text.endswith(".npy")
                      else numpy.loadtxt(text, ndmin=1))
        except (OSError, ValueError) as err:
            raise InputError("cannot read labels from {} ({})".format(text, err))
    else:
        try:
            values = [int(v) for v in text.split(",")]
        except ValueError:
            raise InputError("--labels {!r}: give digits separated by commas (3,1,4), one "
                             "digit for all images, or a .npy / text file".format(text))
    values = numpy.asarray(values).ravel()
    if len(values) == 1:
        values = numpy.repeat(values, count)
    if len(values) != count or (values != numpy.round(values)).any() \
            or values.min() < 0 or values.max() >= NUM_CLASSES:
        raise InputError("--labels: need {} labels in 0..{} (one per image), got {} values "
                         "{}".format(count, NUM_CLASSES - 1, len(values),
                                     _show(values)))
    return values.astype(numpy.uint8)


def _show(values):
    shown = ", ".join(str(v) for v in values[:5])
    return "(" + shown + (", ..." if len(values) > 5 else "") + ")"


def png_names(source, count):
    """The file names the decoder gives the images: the PNGs' own, else numbered."""
    if source.get("kind") == "png":
        return source["names"]
    return ["image_{:05d}.png".format(k) for k in range(count)]


def png_bytes(bins, q_levels):
    """One image's bins (height, width) or (height, width, 3) -> PNG bytes (bins shown
    at their 0..255 display values, quantize.to_display)."""
    buf = io.BytesIO()
    Image.fromarray(quantize.to_display(bins, q_levels)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def write_array(path, array):
    """Save ``array`` as .npy at ``path``, atomically."""
    atomic_write(path, lambda f: numpy.save(f, array, allow_pickle=False))


def write_png_folder(folder, bins, q_levels, names):
    """Write each image of ``bins`` (num, height, width[, 3]) as a PNG named ``names[k]``
    in ``folder``, all or nothing: a new folder is filled under a temporary name and
    renamed into place; into an existing folder the files are first written under
    temporary names, then renamed, with Ctrl-C held back until all are in place."""
    parent = os.path.dirname(os.path.abspath(folder))
    fresh = not os.path.exists(folder)
    staging = tempfile.mkdtemp(prefix=".tmp-", dir=parent if fresh else folder)
    try:
        for image, name in zip(bins, names):
            with open(os.path.join(staging, name), "wb") as f:
                f.write(png_bytes(image, q_levels))
        with held_interrupts():
            if fresh:
                os.chmod(staging, 0o777 & ~_umask())
                os.rename(staging, folder)
            else:
                for name in names:
                    os.replace(os.path.join(staging, name), os.path.join(folder, name))
                os.rmdir(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def held_interrupts():
    """Hold Ctrl-C back while the block runs, then raise KeyboardInterrupt if it came."""
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
