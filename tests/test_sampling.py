"""Samplers: the random numbers they share (pinned), and the cached one equals the naive
one, piece by piece and image by image."""
import numpy
import pytest
import theano

from sampling.cached import CachedEvaluator, sample_cached
from sampling.cached_pixel_conv import CachedPixelConv
from lib import floatX
from models import build as builder
from quantize import targets_to_inputs
from sampling.draws import draw, softmax, uniforms_for
from sampling.naive import reconstruct, sample_naive

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
    # one compilation: logits (batch, H, W, 1, Q), then the maps of every layer
    pieces = theano.function([net.X], [net.logits] + layer.above_maps + layer.horizontal_maps)
    cached = CachedPixelConv(net.model.param_values(), builder.PREFIX, num_layers, 1, q)
    return net, lambda x: pieces(x)[0], pieces, cached


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


# ----- the random numbers -----------------------------------------------------------------
# Recorded once from the implementation of sampling.draws.uniforms_for at the time of
# writing (numpy.random.default_rng(seed).random((height, width, num, input_dim)),
# NumPy 1.23.5); a change of stream changes every sample drawn from a seed.

RECORDED_GREY = [  # uniforms_for(7, num=3, height=2, width=2, input_dim=1)[i, j, :, 0]
    [[0.625095466604667, 0.8972138009695755, 0.7756856902451935],
     [0.22520718999059186, 0.30016628491122543, 0.8735534453962619]],
    [[0.005265304565574724, 0.8212284183827663, 0.7970694287520462],
     [0.4679349528437208, 0.3030324268193135, 0.2784256121007733]]]
RECORDED_RGB = [  # uniforms_for(2024, num=2, height=1, width=2, input_dim=3)[0, j]
    [[0.6758313379812818, 0.21432320123825765, 0.3094520308816917],
     [0.7994660967748332, 0.9958020988654668, 0.1422318152800518]],
    [[0.07872553376199898, 0.18082381369685463, 0.35964689168935093],
     [0.16961924970704834, 0.5887593155397302, 0.6168075138237781]]]
# the grey draws with 4 equally likely bins: floor(4 u), as images (num, height, width)
UNIFORM_BINS = [[[2, 0], [0, 1]],
                [[3, 1], [3, 1]],
                [[3, 3], [3, 1]]]


def test_recorded_random_numbers_for_a_seed():
    grey = uniforms_for(7, 3, 2, 2, 1)
    assert grey.shape == (2, 2, 3, 1)
    numpy.testing.assert_array_equal(grey[..., 0], RECORDED_GREY)
    rgb = uniforms_for(2024, 2, 1, 2, 3)
    assert rgb.shape == (1, 2, 2, 3)
    numpy.testing.assert_array_equal(rgb[0], RECORDED_RGB)


def test_every_image_and_sub_pixel_gets_its_own_number():
    """25 images of 28 x 28, RGB: at each sub-pixel the 25 numbers all differ, and no
    two sub-pixels of an image share theirs."""
    u = uniforms_for(0, 25, 28, 28, 3)                     # (H, W, num, input_dim)
    assert ((u >= 0) & (u < 1)).all()
    assert (numpy.diff(numpy.sort(u, axis=2), axis=2) > 0).all()
    per_image = u.transpose(2, 0, 1, 3).reshape(25, -1)     # (num, H * W * input_dim)
    assert all(len(numpy.unique(row)) == row.size for row in per_image)
    assert (u != uniforms_for(1, 25, 28, 28, 3)).all()


class UniformEvaluator(CachedEvaluator):
    """A cached evaluator (the interface of ``sampling.cached``) whose logits are all
    zero: every bin equally likely, whatever was drawn before."""

    input_dim, q_levels = 1, 4

    def start(self, batch, width, condition=None):
        self.row_inputs = numpy.zeros((batch, width, self.input_dim), dtype=numpy.float32)

    def start_row(self):
        pass

    def pixel_logits(self, j):  # (batch, input_dim, q_levels)
        return numpy.zeros((len(self.row_inputs), self.input_dim, self.q_levels))

    def finish_row(self, row_inputs):
        pass


def test_both_samplers_draw_with_the_recorded_numbers():
    """With 4 equally likely bins the draw at a sub-pixel is floor(4 u) of its own number:
    both samplers give the images the recorded numbers make, image by image."""
    def uniform_logits(inputs):  # (num, H, W, 1) -> (num, H, W, 1, 4)
        return numpy.zeros(inputs.shape + (4,))

    naive = sample_naive(uniform_logits, 3, 2, 2, 1, 4, seed=7, progress=False)
    cached = sample_cached(UniformEvaluator(), 3, 2, 2, seed=7, progress=False)
    numpy.testing.assert_array_equal(naive[..., 0], UNIFORM_BINS)
    numpy.testing.assert_array_equal(cached[..., 0], UNIFORM_BINS)
    truth = numpy.zeros((3, 2, 2, 1), dtype=numpy.uint8)
    numpy.testing.assert_array_equal(reconstruct(uniform_logits, truth, 4, seed=7)[..., 0],
                                     UNIFORM_BINS)


def test_images_of_one_batch_differ(network):
    """Random weights: the 5 images of a batch are all different, with either sampler
    (the same numbers for every image would draw 5 copies of one image)."""
    net, logits_fn, pieces, cached = network
    q = net.config["q_levels"]
    for images in (sample_cached(cached, 5, 6, 6, seed=0, progress=False),
                   sample_naive(logits_fn, 5, 6, 6, 1, q, seed=0, progress=False)):
        flat = images.reshape(5, -1)
        assert len({row.tobytes() for row in flat}) == 5
