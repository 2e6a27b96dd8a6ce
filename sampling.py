"""Drawing images from a trained model, one sub-pixel at a time in raster order.

Every sampler here draws pixel (i, j), channel d by inverse CDF from the
model's softmax with one uniform number per image from a NumPy generator, in
the same order, so two samplers that compute the same probabilities produce
the same images for the same seed.

The naive sampler is the original algorithm: the whole network runs on the
whole image once per pixel. The cached sampler lives in ``fast_sampling``.
"""
import numpy
from tqdm import tqdm

from quantize import targets_to_inputs


def softmax(logits, temperature=1.0):
    """(..., Q) logits -> (..., Q) float64 probabilities at the given temperature."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0, got {}".format(temperature))
    z = numpy.asarray(logits, dtype=numpy.float64) / temperature
    z -= z.max(axis=-1, keepdims=True)
    p = numpy.exp(z)
    return p / p.sum(axis=-1, keepdims=True)


def draw(logits, uniforms, temperature=1.0):
    """Inverse-CDF draw: logits (..., Q), uniforms (...) in [0, 1) -> int bins (...)."""
    cdf = numpy.cumsum(softmax(logits, temperature), axis=-1)
    bins = (cdf < numpy.asarray(uniforms)[..., None]).sum(axis=-1)
    return numpy.minimum(bins, cdf.shape[-1] - 1)


def uniforms_for(seed, num, height, width, input_dim):
    """The random numbers of a draw: (height, width, num, input_dim) floats in [0, 1),
    indexed in raster order so that every sampler uses the same one per sub-pixel."""
    return numpy.random.default_rng(seed).random((height, width, num, input_dim))


def sample_naive(logits_fn, num, height, width, input_dim, q_levels, seed=0,
                 temperature=1.0, progress=True):
    """The original algorithm: rerun the whole network for every sub-pixel
    (every pixel when input_dim is 1), in raster order, channels R, G, B.

    logits_fn: (num, height, width, input_dim) float32 inputs ->
    (num, height, width, input_dim, q_levels) logits.
    Returns the sampled bins, (num, height, width, input_dim) uint8.
    """
    uniforms = uniforms_for(seed, num, height, width, input_dim)
    bins = numpy.zeros((num, height, width, input_dim), dtype=numpy.uint8)
    inputs = numpy.zeros(bins.shape, dtype=numpy.float32)
    for i in tqdm(range(height), desc="rows", unit="row", disable=not progress):
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
