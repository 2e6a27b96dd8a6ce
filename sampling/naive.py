"""The original sampling algorithm: the whole network on the whole image, once
per sub-pixel, in raster order (and a reconstruction in a single pass).

The random numbers and the inverse-CDF draw come from ``sampling.draws``, as
in the cached samplers, so all samplers draw the same images for a seed.
"""
import numpy
from tqdm import tqdm

from quantize import targets_to_inputs
from sampling.draws import draw, uniforms_for


def sample_naive(logits_fn, num, height, width, input_dim, q_levels, seed=0,
                 temperature=1.0, progress=True, top_rows=None):
    """The original algorithm: rerun the whole network for every sub-pixel
    (every pixel when input_dim is 1), in raster order, channels R, G, B.

    logits_fn: (num, height, width, input_dim) float32 inputs ->
    (num, height, width, input_dim, q_levels) logits.
    top_rows: optional (num, R, width, input_dim) bins, the first R rows given
    (a completion): they are fed to the network as they are, never drawn.
    Returns the sampled bins, (num, height, width, input_dim) uint8.
    """
    uniforms = uniforms_for(seed, num, height, width, input_dim)
    bins = numpy.zeros((num, height, width, input_dim), dtype=numpy.uint8)
    kept = 0 if top_rows is None else top_rows.shape[1]
    if kept:
        bins[:, :kept] = top_rows
    inputs = targets_to_inputs(bins, q_levels)
    for i in tqdm(range(kept, height), desc="rows", unit="row", initial=kept, total=height,
                  disable=not progress):
        for j in range(width):
            # channel by channel: with colour masks, G at (i, j) depends on R there
            for d in range(input_dim):
                logits = logits_fn(inputs)[:, i, j, d]
                bins[:, i, j, d] = draw(logits, uniforms[i, j, :, d], temperature)
                inputs[:, i, j, d] = targets_to_inputs(bins[:, i, j, d], q_levels)
    return bins


def reconstruct(logits_fn, targets, q_levels, seed=0, temperature=1.0):
    """Draw every pixel given the true pixels before it: a single network pass.

    targets: (num, height, width, input_dim) true bins -> same-shaped uint8 draws.
    """
    num, height, width, input_dim = targets.shape
    uniforms = uniforms_for(seed, num, height, width, input_dim).transpose(2, 0, 1, 3)
    logits = logits_fn(targets_to_inputs(targets, q_levels))
    return draw(logits, uniforms, temperature).astype(numpy.uint8)
