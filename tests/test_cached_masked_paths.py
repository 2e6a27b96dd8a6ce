"""The cached evaluators of the masked PixelCNN and the PixelRNNs (sampling/cached_masked.py)
on the paths besides plain sampling at temperature 1: a reconstruction (every pixel drawn
given the true pixels before it) and other temperatures, each against the naive path
(sampling.naive) with the same seed, in grey and in colour.

The networks are tests.test_cached_samplers' (its ``network`` fixture: the same small
configurations, the same compiled functions)."""
import numpy
import pytest

from sampling import cached_evaluator
from sampling.cached import sample_cached
from sampling.naive import reconstruct, sample_naive
from tests.test_cached_samplers import network  # noqa: F401  (the shared fixture)

BATCH = 3


def logits_fn(f):
    """The naive path's closure: inputs (batch, H, W, colours) -> logits."""
    return lambda x: f(x)[0]


def true_bins(config, seed):
    """Random 'true' images (BATCH, H, W, colours) uint8 bins for a network's config."""
    _, _, _, q, colours, height, width = config
    return numpy.random.RandomState(seed).randint(0, q, (BATCH, height, width, colours)).astype(
        numpy.uint8)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_cached_reconstruction_equals_the_naive_one(network, temperature):  # noqa: F811
    """sample_cached(given=truth) draws what sampling.naive.reconstruct draws (one pass
    of the whole network on the true image), not the free sample for the same seed."""
    config, net, f = network
    q, (height, width) = config[3], config[5:]
    truth = true_bins(config, seed=4)
    for seed in (0, 1):
        naive = reconstruct(logits_fn(f), truth, q, seed=seed, temperature=temperature)
        cached = sample_cached(cached_evaluator(net), BATCH, height, width, seed=seed,
                               temperature=temperature, progress=False, given=truth)
        numpy.testing.assert_array_equal(cached, naive)
        assert len(numpy.unique(naive)) > 1  # a real draw, not a constant image
    free = sample_cached(cached_evaluator(net), BATCH, height, width, seed=1,
                         temperature=temperature, progress=False)
    assert (free != cached).any()  # the truth, not the drawn pixels, was fed


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_cached_draws_the_naive_images_at_other_temperatures(network,  # noqa: F811
                                                             temperature):
    """At temperature 0.5 and 2 the cached evaluator draws the naive sampler's images,
    and the temperature is used: they differ from the temperature-1 draws."""
    config, net, f = network
    q, colours, (height, width) = config[3], config[4], config[5:]
    naive = sample_naive(logits_fn(f), BATCH, height, width, colours, q, seed=2,
                         temperature=temperature, progress=False)
    cached = sample_cached(cached_evaluator(net), BATCH, height, width, seed=2,
                           temperature=temperature, progress=False)
    numpy.testing.assert_array_equal(cached, naive)
    plain = sample_cached(cached_evaluator(net), BATCH, height, width, seed=2,
                          progress=False)
    assert (cached != plain).any()
