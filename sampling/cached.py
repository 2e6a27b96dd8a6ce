"""The loop every cached sampler runs, pixel by pixel in raster order.

A cached evaluator ``net`` (``CachedPixelConv``, ``CachedGatedPixelCNN``)
offers these steps: ``start(batch, width, condition)`` for a new batch,
``start_row()``, ``pixel_logits(j)`` -> (batch, input_dim, q_levels) for pixel
j of the current row, ``set_channel(j, d, inputs)`` to record colour d of what
was drawn, and ``finish_row(row_inputs)`` once a row is complete. The draws use
``sampling.draws``, exactly as the naive sampler does.

Colour. When ``net.sees_current_pixel`` (colour masks: colour d of a pixel is
predicted from its colours < d), the colours are drawn one by one, the logits
recomputed after each, and once more after the last so that the pixel's cached
column holds all its colours. Otherwise one evaluation gives every colour.
"""
import numpy
from tqdm import tqdm

from quantize import targets_to_inputs
from sampling.draws import draw, uniforms_for


class CachedEvaluator(object):
    """What the cached evaluators share: the current row's drawn inputs
    ``row_inputs`` (batch, pixel_offset + width, input_dim), pixel j at
    ``j + pixel_offset`` (zeros before the image's left edge)."""

    pixel_offset = 0
    sees_current_pixel = False

    def set_pixel(self, j, inputs):
        """Record every colour of the drawn pixel j; inputs (batch, input_dim) float32."""
        self.row_inputs[:, j + self.pixel_offset] = inputs

    def set_channel(self, j, d, inputs):
        """Record colour d of the drawn pixel j; inputs (batch,) float32."""
        self.row_inputs[:, j + self.pixel_offset, d] = inputs


def sample_cached(net, num, height, width, seed=0, temperature=1.0, progress=True,
                  given=None, condition=None):
    """Draw ``num`` images (num, height, width, input_dim) uint8 bins with a
    cached evaluator (CachedPixelConv, or CachedGatedPixelCNN with its
    ``condition``), in the order and with the random numbers of sample_naive.

    With ``given`` (true bins of the same shape) every pixel is drawn from the
    model given the true pixels before it (a reconstruction, as
    ``sampling.naive.reconstruct``), instead of the drawn ones.
    """
    uniforms = uniforms_for(seed, num, height, width, net.input_dim)
    bins = numpy.zeros((num, height, width, net.input_dim), dtype=numpy.uint8)
    fed = bins if given is None else numpy.asarray(given)
    net.start(num, width, condition)
    for i in tqdm(range(height), desc="rows", unit="row", disable=not progress):
        net.start_row()
        for j in range(width):
            if not net.sees_current_pixel:
                bins[:, i, j] = draw(net.pixel_logits(j), uniforms[i, j], temperature)
            for d in range(net.input_dim):
                if net.sees_current_pixel:
                    bins[:, i, j, d] = draw(net.pixel_logits(j)[:, d], uniforms[i, j, :, d],
                                            temperature)
                net.set_channel(j, d, targets_to_inputs(fed[:, i, j, d], net.q_levels))
            if net.sees_current_pixel:
                net.pixel_logits(j)  # the column's states with the whole pixel
        net.finish_row(targets_to_inputs(fed[:, i], net.q_levels))
    return bins
