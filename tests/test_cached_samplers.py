"""The cached samplers of the masked PixelCNN and the PixelRNNs (sampling/cached_masked.py):
the naive sampler's images for the same seed, the network's logits at every pixel and
the network's maps, position by position, in grey and in colour."""
import numpy
import pytest

from lib import floatX
from models import build as builder
from sampling import CACHED_EVALUATORS, cached_evaluator
from sampling.cached import sample_cached
from sampling.naive import sample_naive
from tests.compiling import compile_light

# (model, blocks, DIM, Q_LEVELS, colours, height, width): small, and varied where it matters
CONFIGS = [
    ("masked", 1, 4, 2, 1, 6, 6), ("masked", 3, 6, 16, 3, 5, 9),
    ("rowlstm", 2, 4, 4, 1, 5, 9), ("rowlstm", 1, 6, 3, 3, 6, 6),
    ("diagbilstm", 1, 4, 5, 1, 6, 6), ("diagbilstm", 2, 6, 4, 3, 5, 9),
]


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: "{}-{}x{}-q{}-c{}".format(
    c[0], c[5], c[6], c[3], c[4]))
def network(request):
    """(config, net, f): f(x) -> [logits, residual stream after each layer (batch, DIM, H, W)]
    with large random weights, so that the draws are not degenerate."""
    model, blocks, dim, q, colours, height, width = request.param
    numpy.random.seed(0)
    net = builder.build({"model": model, "num_layers": blocks, "dim": dim, "q_levels": q,
                         "input_dim": colours})
    rng = numpy.random.RandomState(1)
    for p in net.model.get_params():
        p.set_value(floatX(rng.uniform(-0.6, 0.6, p.get_value().shape)))
    f = compile_light([net.X], [net.logits] + net.layer.hidden_maps)
    return request.param, net, f


def test_every_model_has_a_cached_sampler():
    assert sorted(CACHED_EVALUATORS) == sorted(builder.MODELS)


def test_cached_draws_the_naive_images(network):
    (model, _, _, q, colours, height, width), net, f = network
    for seed in (0, 1):
        naive = sample_naive(lambda x: f(x)[0], 3, height, width, colours, q, seed=seed,
                             progress=False)
        cached = sample_cached(cached_evaluator(net), 3, height, width, seed=seed,
                               progress=False)
        numpy.testing.assert_array_equal(cached, naive)
        assert len(numpy.unique(naive)) > 1


def feed_and_compare(cached, image, logits, after_pixel=None):
    """Feed ``image`` (batch, H, W, colours) to a cached evaluator colour by colour and
    check that the logits of each colour at every pixel equal ``logits`` (batch, H, W,
    colours, Q) of the full network; ``after_pixel(i, j)`` runs once a pixel is whole."""
    batch, height, width, colours = image.shape
    cached.start(batch, width)
    for i in range(height):
        cached.start_row()
        for j in range(width):
            for d in range(colours):
                numpy.testing.assert_allclose(cached.pixel_logits(j)[:, d], logits[:, i, j, d],
                                              rtol=1e-4, atol=1e-5, err_msg=str((i, j, d)))
                cached.set_channel(j, d, image[:, i, j, d])
            cached.pixel_logits(j)
            if after_pixel is not None:
                after_pixel(i, j)
        cached.finish_row(image[:, i])


def test_pieces_equal_the_network_at_every_position(network):
    """At every pixel, the logits of each colour and (after the pixel) every layer's
    stream equal the full network's."""
    (model, _, _, q, colours, height, width), net, f = network
    rng = numpy.random.RandomState(2)
    image = floatX(rng.randint(0, q, (2, height, width, colours)) / (q - 1.0))
    logits, *maps = f(image)
    cached = cached_evaluator(net)

    def streams_match(i, j):
        for n, full in enumerate(maps):
            numpy.testing.assert_allclose(cached.stream[n, :, j + 1], full[:, :, i, j],
                                          rtol=1e-4, atol=1e-5, err_msg=str((n, i, j)))
    feed_and_compare(cached, image, logits, streams_match)


def test_generate_says_which_sampler_ran(network, tmp_path, capsys):
    import generate
    (model, *_), net, _ = network
    path = str(tmp_path / "m.npz")
    net.all_params.save_params(path, meta=net.config)
    # the cached sampler for every model; naive (which compiles) once is enough
    for sampler in ("cached", "naive") if network[0] == CONFIGS[0] else ("cached",):
        out = str(tmp_path / "s.png")
        argv = ["--checkpoint", path, "--out", out, "--num", "2", "--height", "3", "--width",
                "4", "--sampler", sampler, "--no-progress"]
        assert generate.main(argv) == 0
        assert "with the {} sampler".format(sampler) in capsys.readouterr().out
