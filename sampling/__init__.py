"""Drawing images from a built network, one sub-pixel at a time in raster order.

    naive.py               the original algorithm: the whole network once per sub-pixel
    cached.py              the loop of the cached samplers, which reuse earlier work
    guided.py              label-guided sampling of class-conditional models (cached)
    cached_pixel_conv.py   the cached evaluator of pixelConv
    cached_gated.py        the cached evaluator of the gated PixelCNN
    cached_masked.py       the cached evaluators of the masked PixelCNN and the PixelRNNs
    numpy_layers.py        the layers' pieces in NumPy, for the cached evaluators
    draws.py               the random numbers and the inverse-CDF draw they all share

All samplers draw the same images for the same seed (see ``draws``).
"""
import numpy

from models.build import PREFIX, condition_dim
from sampling import naive
from sampling.cached import sample_cached
from sampling.cached_gated import CachedGatedPixelCNN
from sampling.cached_masked import CachedDiagonalBiLSTM, CachedMaskedPixelCNN, CachedRowLSTM
from sampling.cached_pixel_conv import CachedPixelConv
from sampling.guided import sample_guided

SAMPLERS = ("cached", "naive")
CACHED_EVALUATORS = {"pixelconv": CachedPixelConv, "gated": CachedGatedPixelCNN,
                     "masked": CachedMaskedPixelCNN, "rowlstm": CachedRowLSTM,
                     "diagbilstm": CachedDiagonalBiLSTM}


def has_cached_sampler(config):
    """True when ``config``'s model has a cached sampler (else 'cached' runs the naive one)."""
    return config["model"] in CACHED_EVALUATORS


def cached_evaluator(net):
    """The cached evaluator of a built network ``net`` (models.build.Network), on its
    current weights."""
    c = net.config
    evaluator = CACHED_EVALUATORS[c["model"]]
    return evaluator(net.model.param_values(), PREFIX, c["num_layers"], c["input_dim"],
                     c["q_levels"])


def sample(net, num, height, width, seed=0, temperature=1.0, progress=True, given=None,
           condition=None, sampler="cached", top_rows=None):
    """Draw images (num, height, width, input_dim) uint8 bins from ``net`` in raster order.

    ``given``: true bins to condition each pixel on (a reconstruction).
    ``condition``: (num, condition_dim) for conditional models.
    ``sampler``: 'cached' (exact and fast where the model allows it, else
    naive) or 'naive' (the whole network per pixel).
    ``top_rows``: (num, R, width, input_dim) bins of the first R rows, given
    and returned unchanged; the rows below are drawn given them (a completion).
    Both samplers draw the same completions for a seed.
    """
    if sampler not in SAMPLERS:
        raise ValueError("unknown sampler {!r}; choose one of {}".format(
            sampler, ", ".join(SAMPLERS)))
    check_condition(net, condition, num)
    top_rows = check_top_rows(net, top_rows, given, num, height, width)
    if sampler == "cached" and has_cached_sampler(net.config):
        return sample_cached(cached_evaluator(net), num, height, width, seed=seed,
                             temperature=temperature, progress=progress, given=given,
                             condition=condition, top_rows=top_rows)
    logits_fn = net.logits_fn(condition)
    q_levels = net.config["q_levels"]
    if given is not None:
        return naive.reconstruct(logits_fn, given, q_levels, seed=seed, temperature=temperature)
    return naive.sample_naive(logits_fn, num, height, width, net.config["input_dim"], q_levels,
                              seed=seed, temperature=temperature, progress=progress,
                              top_rows=top_rows)


def check_top_rows(net, top_rows, given, num, height, width):
    """``top_rows`` as a uint8 array, after checking that it suits ``net`` and the
    image size (ValueError otherwise); None stays None."""
    if top_rows is None:
        return None
    if given is not None:
        raise ValueError("give either the true image (a reconstruction) or its top rows "
                         "(a completion), not both")
    top_rows = numpy.asarray(top_rows)
    c = net.config
    if top_rows.ndim != 4 or top_rows.shape[0] != num or top_rows.shape[1] > height \
            or top_rows.shape[2:] != (width, c["input_dim"]):
        raise ValueError("top_rows must have shape ({}, R <= {}, {}, {}), got {}".format(
            num, height, width, c["input_dim"], top_rows.shape))
    if top_rows.size and (top_rows.min() < 0 or top_rows.max() >= c["q_levels"]):
        raise ValueError("top_rows must hold bins 0..{}".format(c["q_levels"] - 1))
    return top_rows.astype(numpy.uint8)


def sample_with_guidance(net, labels, height, width, weight, seed=0, temperature=1.0,
                         progress=True):
    """One image per label, (num, height, width, 1) uint8 bins, from a class-conditional
    gated ``net`` with guidance weight ``weight`` (0: plain sampling); see sampling.guided."""
    if net.config["model"] != "gated" or net.config.get("conditional") != "class":
        raise ValueError("guidance needs a class-conditional gated model")
    return sample_guided(cached_evaluator(net), labels, height, width, weight, seed=seed,
                         temperature=temperature, progress=progress)


def check_condition(net, condition, num):
    """Raise ValueError unless ``condition`` suits ``net`` for ``num`` images."""
    if net.H is None and condition is not None:
        raise ValueError("this model is not conditional; it takes no label")
    if net.H is not None:
        if condition is None:
            raise ValueError("this model is conditional: give a label")
        if condition.shape != (num, condition_dim(net.config)):
            raise ValueError("condition must have shape {}, got {}".format(
                (num, condition_dim(net.config)), condition.shape))
