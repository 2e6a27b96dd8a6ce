"""Quantisation: 0..255 images <-> Q_LEVELS bins, as the original code does it.

Images are ``(batch, height, width)`` or ``(batch, height, width, channels)``.

    targets = uint8(float32(image) / 256 * Q_LEVELS)   # ints 0 .. Q_LEVELS-1, for the loss
    inputs  = float32(targets) / (Q_LEVELS - 1)        # floats in [0, 1], fed to the network
    display = bin centre back on the 0..255 scale       # for pictures
"""
import numpy

MIN_LEVELS, MAX_LEVELS = 2, 256


def check_levels(q_levels):
    """Raise ValueError unless ``q_levels`` is an integer in 2..256."""
    if isinstance(q_levels, bool) or not isinstance(q_levels, (int, numpy.integer)) \
            or not MIN_LEVELS <= q_levels <= MAX_LEVELS:
        raise ValueError("Q_LEVELS must be an integer from {} to {}, got {!r}".format(
            MIN_LEVELS, MAX_LEVELS, q_levels))
    return int(q_levels)


def _check_image(images):
    images = numpy.asarray(images)
    if images.dtype.kind not in "ui":
        raise ValueError("expected an integer image with values 0..255 (e.g. uint8), got "
                         "dtype {}; multiply floats in [0, 1] by 255 and round first".format(
                             images.dtype))
    if images.size and (images.min() < 0 or images.max() > 255):
        raise ValueError("expected pixel values 0..255, found values from {} to {}".format(
            images.min(), images.max()))
    return images


def to_targets(images, q_levels):
    """0..255 integer images -> uint8 bin indices 0..Q_LEVELS-1 (same shape)."""
    q_levels = check_levels(q_levels)
    images = _check_image(images)
    scaled = images.astype(numpy.float32) / numpy.float32(256)
    return numpy.uint8(scaled * q_levels)


def targets_to_inputs(targets, q_levels):
    """Bin indices -> float32 network inputs in [0, 1] (same shape)."""
    q_levels = check_levels(q_levels)
    targets = numpy.asarray(targets)
    if targets.size and (targets.min() < 0 or targets.max() >= q_levels):
        raise ValueError("bin indices must lie in 0..{}, found {}..{}".format(
            q_levels - 1, targets.min(), targets.max()))
    return targets.astype(numpy.float32) / numpy.float32(q_levels - 1)


def quantize(images, q_levels):
    """0..255 images -> (inputs float32 in [0, 1], targets int32), the training pair."""
    targets = to_targets(images, q_levels)
    return targets_to_inputs(targets, q_levels), targets.astype(numpy.int32)


def to_display(targets, q_levels):
    """Bin indices -> uint8 0..255 for pictures (bin 0 -> 0, top bin -> 255)."""
    q_levels = check_levels(q_levels)
    inputs = targets_to_inputs(targets, q_levels)
    return numpy.round(inputs * 255).astype(numpy.uint8)
