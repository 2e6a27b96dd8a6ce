"""Samplers: the cached one equals the naive one, piece by piece and image by image."""
import numpy
import pytest
import theano

from fast_sampling import CachedPixelConv, sample_cached
from lib import floatX
from models import build as builder
from quantize import targets_to_inputs
from sampling import draw, reconstruct, sample_naive, softmax

CONFIGS = [  # (num_layers, q_levels, dim)
    (2, 4, 4), (3, 2, 5), (4, 16, 4), (5, 3, 6)]


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: "L{}-Q{}".format(c[0], c[1]))
def network(request):
    num_layers, q, dim = request.param
    numpy.random.seed(num_layers)
    net = builder.build({"input_dim": 1, "dim": dim, "num_layers": num_layers, "q_levels": q})
    for p in net.model.get_params():  # random biases as well, so nothing is trivially zero
        p.set_value(floatX(numpy.random.uniform(-0.6, 0.6, p.get_value().shape)))
    layer = net.layer
    pieces = theano.function([net.X], [net.logits] + layer.above_maps + layer.horizontal_maps)
    cached = CachedPixelConv(net.model.param_values(), builder.PREFIX, num_layers, 1, q)
    return net, theano.function([net.X], net.logits), pieces, cached


@pytest.mark.parametrize("height, width", [(8, 8), (7, 11)])
@pytest.mark.parametrize("seed", [0, 1])
def test_cached_and_naive_draw_identical_images(network, height, width, seed):
    net, logits_fn, pieces, cached = network
    q = net.config["q_levels"]
    naive = sample_naive(logits_fn, 4, height, width, 1, q, seed=seed, progress=False)
    fast = sample_cached(cached, 4, height, width, seed=seed, progress=False)
    numpy.testing.assert_array_equal(fast, naive)
    assert len(numpy.unique(naive)) > 1  # a real draw, not a constant image


def test_cached_reconstruction_equals_the_single_pass_one(network):
    net, logits_fn, pieces, cached = network
    q = net.config["q_levels"]
    truth = numpy.random.RandomState(5).randint(0, q, size=(3, 7, 9, 1)).astype(numpy.uint8)
    numpy.testing.assert_array_equal(
        sample_cached(cached, 3, 7, 9, seed=4, progress=False, given=truth),
        reconstruct(logits_fn, truth, q, seed=4))


def test_row_and_pixel_pieces_equal_the_full_network(network):
    """Feed a known image through the cached evaluator and compare every row's
    'above' maps, every horizontal column and every pixel's logits with the
    slices of the full network's activations."""
    net, logits_fn, pieces, cached = network
    q, layers = net.config["q_levels"], net.config["num_layers"]
    height, width = 6, 9
    truth = numpy.random.RandomState(3).randint(0, q, size=(2, height, width, 1))
    inputs = targets_to_inputs(truth, q)
    full = pieces(inputs)
    logits, above, horizontal = full[0], full[1:layers], full[layers:]
    cached.start(2, width)
    for i in range(height):
        cached.start_row()
        for n in range(layers - 1):  # (batch, DIM, H, W) -> (batch, W, DIM)
            numpy.testing.assert_allclose(cached.above[n], above[n][:, :, i].transpose(0, 2, 1),
                                          rtol=1e-4, atol=1e-5)
        for j in range(width):
            numpy.testing.assert_allclose(cached.pixel_logits(j), logits[:, i, j],
                                          rtol=1e-4, atol=1e-5)
            for n in range(layers - 1):
                numpy.testing.assert_allclose(cached.h[n][:, j + 1], horizontal[n][:, :, i, j],
                                              rtol=1e-4, atol=1e-5)
            cached.set_pixel(j, inputs[:, i, j])
        cached.finish_row(inputs[:, i])


def test_inverse_cdf_draw():
    logits = numpy.log(numpy.array([[0.1, 0.2, 0.7]] * 4))
    bins = draw(logits, numpy.array([0.05, 0.15, 0.31, 0.99]))
    numpy.testing.assert_array_equal(bins, [0, 1, 2, 2])
    sharp = softmax(logits, temperature=0.1)
    assert sharp[0, 2] > 0.99
    with pytest.raises(ValueError, match="temperature"):
        softmax(logits, temperature=0)


def test_same_seed_same_images_other_seed_other_images(network):
    net, logits_fn, pieces, cached = network
    a = sample_cached(cached, 3, 6, 6, seed=11, progress=False)
    b = sample_cached(cached, 3, 6, 6, seed=11, progress=False)
    c = sample_cached(cached, 3, 6, 6, seed=12, progress=False)
    numpy.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_naive_sampler_draws_colours_in_order_within_a_pixel():
    """A fake colour model whose G and B copy the R bin already drawn at the same
    pixel: drawing the three channels at once (R still unknown) would break it."""
    q = 4

    def logits_fn(inputs):  # (n, h, w, 3) -> (n, h, w, 3, q)
        red = numpy.rint(inputs[..., 0] * (q - 1)).astype(int)
        logits = numpy.zeros(inputs.shape + (q,))
        logits[..., 0, :] = 0.0                                  # R uniform
        copy = numpy.eye(q)[red] * 50.0                          # G, B: the R bin
        logits[..., 1, :] = copy
        logits[..., 2, :] = copy
        return logits

    bins = sample_naive(logits_fn, 3, 4, 5, 3, q, seed=0, progress=False)
    assert len(numpy.unique(bins[..., 0])) > 1
    numpy.testing.assert_array_equal(bins[..., 1], bins[..., 0])
    numpy.testing.assert_array_equal(bins[..., 2], bins[..., 0])


def test_cached_equals_naive_for_three_channels():
    """pixelConv with input_dim 3 (its channels are independent given the past)."""
    numpy.random.seed(9)
    net = builder.build({"input_dim": 3, "dim": 6, "num_layers": 3, "q_levels": 3})
    for p in net.model.get_params():
        p.set_value(floatX(numpy.random.uniform(-0.6, 0.6, p.get_value().shape)))
    naive = sample_naive(theano.function([net.X], net.logits), 2, 5, 6, 3, 3, seed=1,
                         progress=False)
    fast = sample_cached(CachedPixelConv(net.model.param_values(), builder.PREFIX, 3, 3, 3),
                         2, 5, 6, seed=1, progress=False)
    numpy.testing.assert_array_equal(fast, naive)
