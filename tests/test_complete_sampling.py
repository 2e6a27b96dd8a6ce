"""Completion in the samplers (issue 28): the top rows of each image are given, the rest
drawn. On a tiny random model of every kind: the given rows come back unchanged and are
never drawn, the cached and naive samplers draw the same completions for a seed, and the
drawn rows follow the model given the rows above them."""
import numpy
import pytest

import sampling
from lib import floatX
from models import build as builder
from sampling import cached as cached_module
from sampling import naive as naive_module
from sampling import cached_evaluator
from sampling.cached import sample_cached
from sampling.naive import sample_naive
from tests.compiling import compile_light

NUM, HEIGHT, WIDTH, KEPT = 3, 6, 5, 3

# (model, layers, DIM, Q_LEVELS, colours, conditioning, condition map channels)
CONFIGS = [
    ("pixelconv", 3, 4, 3, 1, "none", 0),
    ("pixelconv", 3, 4, 4, 3, "none", 0),
    ("gated", 3, 4, 4, 1, "none", 0),
    ("gated", 3, 4, 3, 3, "none", 0),
    ("gated", 3, 4, 4, 1, "class", 0),
    ("gated", 3, 4, 4, 1, "class", 2),
    ("gated", 3, 4, 2, 1, "embedding", 0),
    ("masked", 2, 4, 4, 1, "none", 0),
    ("masked", 1, 6, 3, 3, "none", 0),
    ("rowlstm", 2, 4, 4, 1, "none", 0),
    ("diagbilstm", 2, 4, 2, 1, "none", 0),
    ("diagbilstm", 1, 6, 3, 3, "none", 0),
]


def name(c):
    return "{}-L{}-q{}-c{}-{}{}".format(c[0], c[1], c[3], c[4], c[5],
                                       "-map" if c[6] else "")


@pytest.fixture(scope="module", params=CONFIGS, ids=name)
def model(request):
    """(net, logits_fn (num, H, W, colours) -> logits, condition (NUM, K) or None) of a
    tiny network with large random weights, so that the draws are not degenerate."""
    kind, layers, dim, q, colours, conditional, map_channels = request.param
    config = {"model": kind, "num_layers": layers, "dim": dim, "q_levels": q,
              "input_dim": colours, "conditional": conditional}
    if map_channels:
        config["condition_map"] = map_channels
    numpy.random.seed(0)
    net = builder.build(config)
    rng = numpy.random.RandomState(1)
    for p in net.model.get_params():
        p.set_value(floatX(rng.uniform(-0.6, 0.6, p.get_value().shape)))
    f = compile_light(net.inputs, net.logits)
    condition = None
    if net.H is not None:
        k = builder.condition_dim(net.config)
        condition = floatX(rng.uniform(-1, 1, (NUM, k))) if conditional == "embedding" \
            else builder.one_hot([3, 7, 1])
    logits_fn = f if condition is None else (lambda x: f(x, condition[:len(x)]))
    return net, logits_fn, condition


def top_rows_for(net, seed):
    """Random given rows (NUM, KEPT, WIDTH, colours) in the model's bins."""
    c = net.config
    return numpy.random.RandomState(seed).randint(
        0, c["q_levels"], (NUM, KEPT, WIDTH, c["input_dim"])).astype(numpy.uint8)


def complete_cached(net, condition, top, seed):
    return sample_cached(cached_evaluator(net), NUM, HEIGHT, WIDTH, seed=seed,
                         progress=False, condition=condition, top_rows=top)


def test_given_rows_come_back_and_both_samplers_draw_the_same_rest(model):
    net, logits_fn, condition = model
    c = net.config
    for seed in (0, 1):
        top = top_rows_for(net, 10 + seed)
        cached = complete_cached(net, condition, top, seed)
        naive = sample_naive(logits_fn, NUM, HEIGHT, WIDTH, c["input_dim"], c["q_levels"],
                             seed=seed, progress=False, top_rows=top)
        assert cached.shape == (NUM, HEIGHT, WIDTH, c["input_dim"])
        numpy.testing.assert_array_equal(cached[:, :KEPT], top)
        numpy.testing.assert_array_equal(cached, naive)
        assert len(numpy.unique(cached[:, KEPT:])) > 1   # a real draw


def test_completing_a_samples_own_top_rows_gives_that_sample_back(model):
    """The rows below are drawn from the model given the rows above, with the numbers of
    their own positions: given the top of a sample of the same seed, the completion is
    that sample, pixel for pixel."""
    net, _, condition = model
    full = complete_cached(net, condition, None, seed=4)
    numpy.testing.assert_array_equal(complete_cached(net, condition, full[:, :KEPT], 4), full)


def test_the_first_drawn_row_is_drawn_given_the_rows_above(model):
    """The logits of the first drawn pixel depend on the given rows (dark or light)."""
    net, _, condition = model
    c = net.config
    first = []
    for level in (0, c["q_levels"] - 1):
        evaluator = cached_evaluator(net)
        evaluator.start(NUM, WIDTH, condition)
        for _ in range(KEPT):
            evaluator.give_row(numpy.full((NUM, WIDTH, c["input_dim"]), level / (
                c["q_levels"] - 1.0), numpy.float32))
        evaluator.start_row()
        first.append(evaluator.pixel_logits(0))
    assert numpy.abs(first[0] - first[1]).max() > 1e-3


def test_given_rows_are_not_drawn(model, monkeypatch):
    """Both samplers draw only the rows below the given ones."""
    net, logits_fn, condition = model
    c = net.config
    drawn = []
    real_draw = cached_module.draw

    def counting_draw(logits, uniforms, temperature=1.0):
        drawn.append(numpy.shape(uniforms)[0])
        return real_draw(logits, uniforms, temperature)

    monkeypatch.setattr(cached_module, "draw", counting_draw)
    monkeypatch.setattr(naive_module, "draw", counting_draw)
    complete_cached(net, condition, top_rows_for(net, 0), 0)
    calls_per_pixel = c["input_dim"] if cached_evaluator(net).sees_current_pixel else 1
    assert len(drawn) == (HEIGHT - KEPT) * WIDTH * calls_per_pixel
    del drawn[:]
    sample_naive(logits_fn, NUM, HEIGHT, WIDTH, c["input_dim"], c["q_levels"], seed=0,
                 progress=False, top_rows=top_rows_for(net, 0))
    assert len(drawn) == (HEIGHT - KEPT) * WIDTH * c["input_dim"]   # one call a sub-pixel


def test_sample_checks_the_top_rows(model):
    net, _, condition = model
    c = net.config
    top = top_rows_for(net, 0)
    with pytest.raises(ValueError, match="top_rows must have shape"):
        sampling.sample(net, NUM, HEIGHT, WIDTH + 1, condition=condition, top_rows=top,
                        progress=False)
    with pytest.raises(ValueError, match="bins 0..{}".format(c["q_levels"] - 1)):
        sampling.sample(net, NUM, HEIGHT, WIDTH, condition=condition, top_rows=top + c[
            "q_levels"], progress=False)
    with pytest.raises(ValueError, match="not both"):
        sampling.sample(net, NUM, HEIGHT, WIDTH, condition=condition, top_rows=top,
                        given=numpy.zeros((NUM, HEIGHT, WIDTH, c["input_dim"]), numpy.uint8),
                        progress=False)
