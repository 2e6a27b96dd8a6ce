"""The random part of sampling, shared by every sampler.

Each sub-pixel is drawn by inverse CDF from the model's softmax with one
uniform number per image. The numbers come from one NumPy generator, indexed
in raster order, so two samplers that compute the same probabilities draw
the same images for the same seed.
"""
import numpy


def softmax(logits, temperature=1.0):
    """(..., Q) logits -> (..., Q) float64 probabilities at the given temperature."""
    if not (temperature > 0 and numpy.isfinite(temperature)):
        raise ValueError("temperature must be a finite number > 0, got {}".format(temperature))
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
