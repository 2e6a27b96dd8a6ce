"""Colour in the gated PixelCNN (input_dim = 3, R -> G -> B): the gradients of every
(output colour, input colour) pair at the pixel itself, the fast graph equal to the
faithful one, and the cached sampler drawing the naive one's images colour by colour."""
import numpy
import pytest
import theano.tensor as T

from lib import WrapperLayer, floatX
from lib.layers import channel_groups, gated_channel_groups, make_mask
from models import build as builder
from models.fast_gated_pixel_cnn import FastGatedPixelCNN
from models.gated_pixel_cnn import GatedPixelCNN, colour_mask
from sampling.cached import sample_cached
from sampling.cached_gated import CachedGatedPixelCNN
from sampling.naive import sample_naive
from tests.compiling import compile_light
from tests.test_cached_samplers import feed_and_compare

COLOURS, DIM, Q, LAYERS, H, W = 3, 6, 4, 4, 5, 6


def build(cls, condition_dim=0, seed=7, condition_map=None):
    """(compiled logits function, model) with large random weights: masked taps stay 0."""
    numpy.random.seed(seed)
    X = T.tensor4("X")
    Hc = T.matrix("H") if condition_dim else None
    model = cls(WrapperLayer(X), COLOURS, DIM, Q, num_layers=LAYERS, condition=Hc,
                condition_dim=condition_dim, name="g", condition_map=condition_map)
    rng = numpy.random.RandomState(seed)
    for p in model.params:
        p.set_value(floatX(rng.uniform(-0.7, 0.7, p.get_value().shape)))
    inputs = [X] + ([Hc] if Hc is not None else [])
    return compile_light(inputs, model.output()), model, inputs


@pytest.fixture(scope="module")
def faithful():
    return build(GatedPixelCNN)


def test_gate_groups_keep_both_halves_of_a_map_in_its_colour():
    assert list(gated_channel_groups(6, 3)) == [0, 1, 2, 0, 1, 2]
    assert list(gated_channel_groups(12, 3)) == [0, 0, 1, 1, 2, 2] * 2
    with pytest.raises(ValueError):
        gated_channel_groups(5, 3)


def test_grey_models_get_no_new_masks():
    """input_dim = 1: only hstack1's plain mask 'a' (the recorded fixtures hold)."""
    for suffix in ("hstack1", "hstack2", "v2h1", "h2hstack2", "combined_stack1",
                   "combined_stack2", "vstack1"):
        masktype, groups = colour_mask(suffix, 1, DIM, Q)
        assert groups is None and masktype == ("a" if suffix == "hstack1" else None)


def test_colour_masks_by_hand():
    """hstack2's current-column tap and the output layer, for p = 3; the links from the
    vertical stack (rows above only) carry no mask."""
    for suffix in ("v2h1", "v2h2", "vstack1", "vstack2"):
        assert colour_mask(suffix, 3, 3, Q) == (None, None), suffix
    masktype, groups = colour_mask("hstack2", 3, 3, Q)
    mask = make_mask((6, 3, 1, 2), masktype, groups=groups)
    assert mask[:, :, 0, 0].all()                        # column c-1: every colour
    expected = numpy.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]] * 2)   # rows: R G B R G B
    numpy.testing.assert_array_equal(mask[:, :, 0, 1], expected)
    masktype, groups = colour_mask("combined_stack2", 3, 3, Q)
    out = make_mask((3 * Q, 3, 1, 1), masktype, groups=groups)[:, :, 0, 0]
    numpy.testing.assert_array_equal(out, numpy.repeat([[1, 0, 0], [1, 1, 0], [1, 1, 1]], Q,
                                                       axis=0))
    assert list(channel_groups(3 * Q, 3)) == [0] * Q + [1] * Q + [2] * Q


PIXEL = (2, 3)


@pytest.fixture(scope="module")
def colour_gradients(faithful):
    """Gradients of the logits of each colour d at PIXEL with respect to the input:
    (COLOURS, 2, H, W, COLOURS), one compiled function for all colours."""
    _, model, inputs = faithful
    i, j = PIXEL
    grads = [T.grad(model.output()[:, i, j, d].sum(), inputs[0]) for d in range(COLOURS)]
    x = floatX(numpy.random.RandomState(1).uniform(0, 1, (2, H, W, COLOURS)))
    return numpy.stack(compile_light(inputs, grads)(x))


@pytest.mark.parametrize("out_colour", range(COLOURS))
@pytest.mark.parametrize("in_colour", range(COLOURS))
def test_each_colour_sees_exactly_the_earlier_colours_of_its_pixel(colour_gradients,
                                                                  out_colour, in_colour):
    """d(logits of colour d at (i, j)) / d(input colour e at (i, j)) is nonzero iff e < d;
    the pixel after (i, j) is never seen."""
    i, j = PIXEL
    g = colour_gradients[out_colour]
    seen = numpy.abs(g[:, i, j, in_colour]).max()
    assert (seen > 1e-6) == (in_colour < out_colour), seen
    assert numpy.abs(g[:, i, j + 1:]).max() == 0 and numpy.abs(g[:, i + 1:]).max() == 0
    assert numpy.abs(g[:, i - 1, :, in_colour]).max() > 1e-6  # the row above is seen


@pytest.fixture(scope="module")
def fast():
    return build(FastGatedPixelCNN)


def test_fast_graph_equals_the_faithful_one_in_colour(faithful, fast):
    fn, model, _ = faithful
    fast_fn, fast_model, _ = fast
    assert [p.name for p in fast_model.params] == [p.name for p in model.params]
    for p, q in zip(fast_model.params, model.params):
        numpy.testing.assert_array_equal(p.get_value(), q.get_value())
    x = floatX(numpy.random.RandomState(2).uniform(0, 1, (3, H, W, COLOURS)))
    numpy.testing.assert_allclose(fast_fn(x), fn(x), rtol=1e-4, atol=1e-5)


def cached(model):
    weights = {p.name: p.get_value() for p in model.params}
    return CachedGatedPixelCNN(weights, "g", LAYERS, COLOURS, Q)


@pytest.mark.parametrize("condition_dim", [0, 10])
def test_cached_and_naive_draw_the_same_colour_images(faithful, condition_dim):
    fn, model, _ = faithful if not condition_dim else build(GatedPixelCNN, condition_dim)
    h = None
    if condition_dim:
        h = builder.one_hot([1, 4, 9])
    logits = fn if h is None else (lambda x: fn(x, h[:len(x)]))
    naive = sample_naive(logits, 3, H, W, COLOURS, Q, seed=5, progress=False)
    fast = sample_cached(cached(model), 3, H, W, seed=5, progress=False, condition=h)
    numpy.testing.assert_array_equal(fast, naive)
    assert len(numpy.unique(naive)) > 1


def test_cached_logits_of_each_colour_equal_the_network(faithful):
    """Feed a known image colour by colour: every cached logit (for colour d, with the
    pixel's colours < d given) equals the full network's at that pixel."""
    fn, model, _ = faithful
    rng = numpy.random.RandomState(3)
    image = floatX(rng.randint(0, Q, (2, H, W, COLOURS)) / (Q - 1.0))
    feed_and_compare(cached(model), image, fn(image))


def later_colour_links():
    """(2p, 2p) boolean: the v2h weights from a vertical map of a later colour group into
    a horizontal pre-activation map (the taps a colour mask on the link would drop)."""
    groups = gated_channel_groups(2 * DIM, COLOURS)
    return groups[:, None] < groups[None, :]


def test_every_colour_reads_all_vertical_maps(faithful, fast):
    """The link carries rows above only, so red's horizontal maps read green's and
    blue's vertical maps too: changing just those v2h1 weights moves the red logits
    below the first row, in the faithful graph, the fast graph and the cached sampler
    alike."""
    fn, model, _ = faithful
    fast_fn, fast_model, _ = fast
    image = floatX(numpy.random.RandomState(4).randint(0, Q, (2, H, W, COLOURS)) / (Q - 1.0))
    before = fn(image)
    params = [next(p for p in m.params if p.name == "g.v2h1.filter")
              for m in (model, fast_model)]
    saved = params[0].get_value()
    changed = saved + floatX(0.5 * later_colour_links()[:, :, None, None])
    try:
        for p in params:
            p.set_value(changed)
        after = fn(image)
        red = numpy.abs(after[:, 1:, :, 0] - before[:, 1:, :, 0]).max(axis=(2, 3))
        assert (red > 1e-3).all(), red  # every image, every row below the first
        numpy.testing.assert_allclose(fast_fn(image), after, rtol=1e-4, atol=1e-5)
        feed_and_compare(cached(model), image, after)
    finally:
        for p in params:
            p.set_value(saved)


# ----- colour with a condition map ----------------------------------------------------

CONDITION_DIM, MAP = 5, (H + 1, W + 2, 2)   # the map's top left corner is used


def with_condition(sampler, h):
    """The cached evaluator ``sampler`` whose ``start(batch, width)`` passes the
    condition h (batch, CONDITION_DIM), for tests.test_cached_samplers.feed_and_compare."""
    start = sampler.start
    sampler.start = lambda batch, width: start(batch, width, h)
    return sampler


@pytest.fixture(scope="module")
def mapped():
    """(faithful, fast) colour models with a condition and a condition map: (fn, model)
    each, the same weights; and two embedding-like condition vectors."""
    faithful_fn, model, _ = build(GatedPixelCNN, CONDITION_DIM, condition_map=MAP)
    fast_fn, fast_model, _ = build(FastGatedPixelCNN, CONDITION_DIM, condition_map=MAP)
    h = floatX(numpy.random.RandomState(8).randn(2, CONDITION_DIM))
    return (faithful_fn, model), (fast_fn, fast_model), h


def test_colour_with_a_condition_map_agrees_in_all_three_implementations(mapped):
    """The fast graph's logits and the cached evaluator's logits of each colour (the
    pixel's earlier colours given) equal the faithful graph's; and the map is used:
    without it (P = 0) the logits change everywhere."""
    (fn, model), (fast_fn, fast_model), h = mapped
    assert any(p.name == "g.condmap.P" for p in model.params)
    image = floatX(numpy.random.RandomState(9).randint(0, Q, (2, H, W, COLOURS)) / (Q - 1.0))
    logits = fn(image, h)
    numpy.testing.assert_allclose(fast_fn(image, h), logits, rtol=1e-4, atol=1e-5)
    feed_and_compare(with_condition(cached(model), h), image, logits)
    P = next(p for p in model.params if p.name == "g.condmap.P")
    saved = P.get_value()
    try:
        P.set_value(numpy.zeros_like(saved))
        change = numpy.abs(fn(image, h) - logits).max(axis=-1)
    finally:
        P.set_value(saved)
    assert (change > 1e-6).all() and change.max() > 1e-3  # float32 rounding is ~1e-7


def test_cached_and_naive_draw_the_same_colour_images_with_a_condition_map(mapped):
    (fn, model), _, h = mapped
    naive = sample_naive(lambda x: fn(x, h), 2, H, W, COLOURS, Q, seed=6, progress=False)
    drawn = sample_cached(cached(model), 2, H, W, seed=6, progress=False, condition=h)
    numpy.testing.assert_array_equal(drawn, naive)
    assert len(numpy.unique(naive)) > 1
