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

Completion. Rows given in advance (``top_rows``) are not drawn: the evaluator
takes each of them whole (``give_row``), so the rows below are drawn given
them, with the random numbers the naive sampler uses for those rows.
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
    # True when later rows read state that pixel_logits leaves at each position (every
    # layer at every pixel); False when they read only what finish_row computes
    pixel_states_carry_over = True

    def give_row(self, row_inputs):
        """Take a whole given row (batch, width, input_dim) float32 inputs, drawing
        nothing: the caches end as if each of its pixels had been drawn."""
        self.start_row()
        if self.pixel_states_carry_over:
            for j in range(row_inputs.shape[1]):
                self.set_pixel(j, row_inputs[:, j])
                self.pixel_logits(j)   # every layer's maps at (i, j), the whole pixel seen
        self.finish_row(row_inputs)

    def set_pixel(self, j, inputs):
        """Record every colour of the drawn pixel j; inputs (batch, input_dim) float32."""
        self.row_inputs[:, j + self.pixel_offset] = inputs

    def set_channel(self, j, d, inputs):
        """Record colour d of the drawn pixel j; inputs (batch,) float32."""
        self.row_inputs[:, j + self.pixel_offset, d] = inputs


def sample_cached(net, num, height, width, seed=0, temperature=1.0, progress=True,
                  given=None, condition=None, top_rows=None):
    """Draw ``num`` images (num, height, width, input_dim) uint8 bins with a
    cached evaluator (CachedPixelConv, or CachedGatedPixelCNN with its
    ``condition``), in the order and with the random numbers of sample_naive.

    With ``given`` (true bins of the same shape) every pixel is drawn from the
    model given the true pixels before it (a reconstruction, as
    ``sampling.naive.reconstruct``), instead of the drawn ones.

    With ``top_rows`` (num, R, width, input_dim) bins, the image's first R rows
    are those (a completion): they are given to the model, not drawn, and
    returned unchanged; rows R .. height-1 are drawn given them.
    """
    uniforms = uniforms_for(seed, num, height, width, net.input_dim)
    bins = numpy.zeros((num, height, width, net.input_dim), dtype=numpy.uint8)
    kept = 0 if top_rows is None else top_rows.shape[1]
    if kept:
        bins[:, :kept] = top_rows
    fed = bins if given is None else numpy.asarray(given)
    net.start(num, width, condition)
    for i in tqdm(range(height), desc="rows", unit="row", disable=not progress):
        if i < kept:
            net.give_row(targets_to_inputs(bins[:, i], net.q_levels))
            continue
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
