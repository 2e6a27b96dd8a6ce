"""Quantisation: the original's mapping, its inverse for display, and its errors."""
import numpy
import pytest

from quantize import check_levels, quantize, targets_to_inputs, to_display, to_targets


@pytest.mark.parametrize("q", [2, 3, 4, 16, 256])
def test_bins_are_equal_width_and_round_trip(q):
    raw = numpy.arange(256, dtype=numpy.uint8)
    targets = to_targets(raw, q)
    assert targets.min() == 0 and targets.max() == q - 1
    numpy.testing.assert_array_equal(targets, raw.astype(int) * q // 256)
    inputs, t32 = quantize(raw, q)
    assert inputs.dtype == numpy.float32 and t32.dtype == numpy.int32
    assert inputs.min() == 0.0 and inputs.max() == 1.0
    display = to_display(targets, q)
    assert display.dtype == numpy.uint8 and display[0] == 0 and display[-1] == 255
    # display values quantise back to the same bins
    numpy.testing.assert_array_equal(to_targets(display, q), targets)
    if q == 256:
        numpy.testing.assert_array_equal(display, raw)


def test_inputs_are_targets_over_q_minus_1():
    t = numpy.array([[0, 1, 2, 3]], dtype=numpy.uint8)
    numpy.testing.assert_array_equal(targets_to_inputs(t, 4),
                                     numpy.float32(t) / numpy.float32(3))


@pytest.mark.parametrize("q", [1, 0, 257, 4.0, True, "4"])
def test_bad_levels(q):
    with pytest.raises(ValueError, match="Q_LEVELS must be an integer from 2 to 256"):
        check_levels(q)


def test_float_image_is_rejected_with_the_fix():
    with pytest.raises(ValueError, match="integer image with values 0..255"):
        to_targets(numpy.zeros((2, 2), numpy.float32), 4)


def test_out_of_range_values_are_rejected():
    with pytest.raises(ValueError, match="values 0..255, found values from -1 to 300"):
        to_targets(numpy.array([-1, 300]), 4)


def test_bins_outside_the_levels_are_rejected():
    with pytest.raises(ValueError, match="bin indices must lie in 0..3"):
        targets_to_inputs(numpy.array([4]), 4)
