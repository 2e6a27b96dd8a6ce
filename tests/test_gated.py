"""GatedPixelCNN: causality and receptive field by gradients, the condition, the gate,
the cached sampler against the naive one (image by image and piece by piece), and
label-guided sampling against the full network.

One Theano function per network (module-scoped) gives the logits, the
gradients of one output pixel w.r.t. the image and the condition, and every
stack layer's maps, so that all tests share four compilations.
"""
import math
import os
from types import SimpleNamespace

import numpy
import pytest
import theano.tensor as T

from sampling.cached import sample_cached
from sampling.cached_gated import CachedGatedPixelCNN
from lib import WrapperLayer, floatX, make_mask
from lib.layers import gated_channel_groups
from models import build as builder
from models.gated_pixel_cnn import GatedPixelCNN, infer_gated_config
from quantize import targets_to_inputs
from sampling.draws import draw, softmax, uniforms_for
from sampling.guided import guided_logits, log_softmax, sample_guided
from sampling.naive import reconstruct, sample_naive
from tests.compiling import compile_light
from tests.test_causality import assert_causal_without_blind_spot, window

PREFIX = "test.gated"
CONFIGS = [  # (num_layers, q_levels, dim, condition_dim, condition map channels K)
    (2, 2, 4, 3, 0), (3, 5, 4, 4, 0), (4, 8, 6, 5, 0), (3, 3, 4, 0, 0), (3, 4, 4, 3, 2)]
MAP_SIZE = (9, 9)  # the condition map's (H, W): every test image fits in it
TOL = dict(rtol=1e-4, atol=1e-5)


class Net(object):
    """A built GatedPixelCNN with random weights and its compiled function.

    ``run(x, h, i, j)`` -> dict of numpy arrays: logits (batch, H, W, 1, Q);
    dX (batch, H, W, 1) and dH (batch, condition_dim) gradients of a weighted
    sum of pixel (i, j)'s logits; vertical / above / horizontal: lists of
    per-layer maps (batch, channels, H, W).
    """

    def __init__(self, num_layers, q_levels, dim, condition_dim, map_channels):
        self.num_layers, self.q_levels, self.dim = num_layers, q_levels, dim
        self.condition_dim, self.map_channels = condition_dim, map_channels
        numpy.random.seed(10 * num_layers + condition_dim)
        X, H = T.tensor4("X"), T.matrix("H")
        self.layer = GatedPixelCNN(WrapperLayer(X), 1, dim, q_levels, num_layers=num_layers,
                                   condition=H if condition_dim else None,
                                   condition_dim=condition_dim, name=PREFIX,
                                   condition_map=MAP_SIZE + (map_channels,) if map_channels
                                   else None)
        for p in self.layer.params:  # random biases too, so that nothing is trivially zero
            p.set_value(floatX(numpy.random.uniform(-0.6, 0.6, p.get_value().shape)))
        self.weights = {p.name: p.get_value() for p in self.layer.params}
        i, j = T.iscalars("i", "j")
        mix = floatX(numpy.random.RandomState(7).rand(q_levels) + 0.5)
        target = (self.layer.output()[:, i, j, 0, :] * mix).sum()
        inputs, grads = ([X, H], [X, H]) if condition_dim else ([X], [X])
        maps = self.layer.vertical_maps + self.layer.above_maps + self.layer.horizontal_maps
        self.fn = compile_light(inputs + [i, j],
                                  [self.layer.output()] + T.grad(target, grads) + maps)

    def run(self, x, h=None, i=0, j=0):
        args = [floatX(x)] + ([floatX(h)] if self.condition_dim else []) + [i, j]
        out = self.fn(*args)
        n, c = self.num_layers - 1, 2 if self.condition_dim else 1
        maps = out[1 + c:]
        return {"logits": out[0], "dX": out[1], "dH": out[2] if self.condition_dim else None,
                "vertical": maps[:n], "above": maps[n:2 * n], "horizontal": maps[2 * n:]}

    def logits_fn(self, h):
        """The naive sampler's closure: inputs (batch, H, W, 1) -> logits, condition h."""
        return lambda x: self.run(x, h)["logits"]

    def conditions(self, kind, batch):
        """(batch, condition_dim) one-hot labels or unit embedding vectors;
        None when the network is unconditional."""
        if not self.condition_dim:
            return None
        if kind == "one-hot":
            return floatX(numpy.eye(self.condition_dim)[numpy.arange(batch) % self.condition_dim])
        v = numpy.random.RandomState(batch).randn(batch, self.condition_dim)
        return floatX(v / numpy.linalg.norm(v, axis=1, keepdims=True))


@pytest.fixture(scope="module", params=CONFIGS,
                ids=lambda c: "L{}-Q{}-C{}{}".format(c[0], c[1], c[3],
                                                    "-M%d" % c[4] if c[4] else ""))
def net(request):
    return Net(*request.param)


def random_image(batch, height, width, seed=0):
    return floatX(numpy.random.RandomState(seed).rand(batch, height, width, 1))


# ----- receptive field ------------------------------------------------------------------

def promised_field(num_layers, height, width):
    """(H, W, H, W) boolean: [r, c] is the map of input pixels that output (r, c)
    depends on, propagated through the windows of models.gated_pixel_cnn."""
    image = numpy.eye(height * width, dtype=bool).reshape(height, width, height, width)
    above = window(image, range(-4, 0), range(-3, 4))          # vstack1 rows [:H] -> v2h1
    vertical = window(image, range(-3, 1), range(-3, 4))       # vstack1 rows [1:H+1], gated
    horizontal = window(image, [0], range(-3, 0)) | above      # hstack1 (mask 'a') + link
    for _ in range(num_layers - 2):
        above = window(vertical, [-2, -1], range(-1, 2))       # vstack -> v2h, rows [:H]
        horizontal = window(horizontal, [0], [-1, 0]) | above | horizontal  # + residual
        vertical = window(vertical, [-1, 0], range(-1, 2))     # rows [1:H+1]
    return horizontal


@pytest.mark.parametrize("height, width", [(7, 9), (8, 8)])
def test_gradient_support_is_exactly_the_promised_field(net, height, width):
    field = promised_field(net.num_layers, height, width)
    x = random_image(2, height, width)
    h = net.conditions("embedding", 2)
    later = numpy.arange(height * width).reshape(height, width)
    for i in range(height):
        for j in range(width):
            depends = net.run(x, h, i, j)["dX"][0, :, :, 0] != 0
            assert not (depends & (later >= i * width + j)).any(), (i, j)  # causal
            assert_causal_without_blind_spot(depends, i, j)  # also at the left border
            numpy.testing.assert_array_equal(depends, field[i, j], err_msg=str((i, j)))


# ----- the condition ---------------------------------------------------------------------

def conditional(net):
    if not net.condition_dim:
        pytest.skip("unconditional network")


def test_condition_gradient_is_nonzero_at_every_position(net):
    conditional(net)
    x, h = random_image(2, 7, 9, seed=1), net.conditions("embedding", 2)
    for i in range(7):
        for j in range(9):
            assert (net.run(x, h, i, j)["dH"] != 0).all(), (i, j)


def test_changing_the_condition_changes_every_pixels_distribution(net):
    conditional(net)
    x = random_image(3, 7, 9, seed=2)
    p1 = softmax(net.run(x, net.conditions("one-hot", 3))["logits"])
    p2 = softmax(net.run(x, net.conditions("embedding", 3))["logits"])
    change = numpy.abs(p1 - p2).max(axis=-1)
    assert (change > 1e-6).all() and change.max() > 1e-3  # float32 rounding is ~1e-7


def test_each_image_sees_only_its_own_condition(net):
    """Changing image 1's condition changes image 1's distributions and leaves those of
    images 0 and 2 exactly as they were."""
    conditional(net)
    x = random_image(3, 7, 9, seed=2)
    h = net.conditions("one-hot", 3)
    other = h.copy()
    other[1] = net.conditions("embedding", 3)[1]
    before, after = net.run(x, h)["logits"], net.run(x, other)["logits"]
    numpy.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])
    assert (numpy.abs(after[1] - before[1]).max(axis=-1) > 1e-6).all()


def test_unconditional_network_rejects_and_needs_no_condition():
    with pytest.raises(ValueError, match="condition"):
        GatedPixelCNN(WrapperLayer(T.tensor4()), 1, 4, 2, num_layers=2, condition=T.matrix())
    with pytest.raises(ValueError, match="condition"):
        GatedPixelCNN(WrapperLayer(T.tensor4()), 1, 4, 2, num_layers=2, condition_dim=3)
    with pytest.raises(ValueError, match="condition_map"):
        GatedPixelCNN(WrapperLayer(T.tensor4()), 1, 4, 2, num_layers=2,
                      condition_map=(5, 5, 2))


# ----- one block against NumPy -----------------------------------------------------------

def correlate(x, weight, bias, pad):
    """Cross-correlation in float64: x (batch, in, H, W), weight (out, in, kh, kw),
    ``pad`` = (rows, cols) of zeros on each side -> (batch, out, H', W')."""
    x = numpy.pad(numpy.float64(x), ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    kh, kw = weight.shape[2:]
    oh, ow = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = sum(numpy.einsum("bchw,oc->bohw", x[:, :, r:r + oh, c:c + ow], weight[:, :, r, c])
              for r in range(kh) for c in range(kw))
    return out + bias[None, :, None, None]


def numpy_gate(pre, bias):
    """tanh(a) * sigmoid(b) of pre (batch, 2p, H, W) + bias (batch, 2p, 1 or H, 1 or W)
    -> (batch, p, H, W)."""
    a = pre + bias
    p = a.shape[1] // 2
    return numpy.tanh(a[:, :p]) / (1.0 + numpy.exp(-a[:, p:]))


def reference_layer(w, n, x, h, v_in, h_in):
    """Layer n (1-based) from the weights w and the layer's inputs (Theano layout):
    returns (vertical, above, horizontal) maps."""
    def get(layer):
        key = "%s.%s%d" % (PREFIX, layer, n)
        return numpy.float64(w[key + ".filter"]), numpy.float64(w[key + ".b"])

    height, width = x.shape[1:3]

    def cond(stack):  # (batch, 2p, 1, 1) or (batch, 2p, H, W) bias; zero when unconditional
        key = "%s.%scond%d.W" % (PREFIX, stack, n)
        if h is None or key not in w:  # the last vertical gate has no condition matrix
            return numpy.zeros((len(x), len(w[PREFIX + ".v2h1.b"]), 1, 1))
        bias = numpy.float64(h).dot(w[key])[:, :, None, None]
        key = "%s.%scondmap%d.W" % (PREFIX, stack, n)
        if key in w:  # S[b, r, c, k] = P[r, c, k] * (h_b . A)[k], then S . M
            A, P = w[PREFIX + ".condmap.W"], w[PREFIX + ".condmap.P"][:height, :width]
            S = P[None] * numpy.float64(h).dot(A)[:, None, None, :]
            bias = bias + S.dot(w[key]).transpose(0, 3, 1, 2)
        return bias

    pad_v = (4, 3) if n == 1 else (2, 1)
    pre = correlate(x.transpose(0, 3, 1, 2) if n == 1 else v_in, *get("vstack"), pad_v)
    above = correlate(pre[:, :, :height], *get("v2h"), (0, 0))
    vertical = numpy_gate(pre[:, :, 1:height + 1], cond("v"))
    if n == 1:
        filt, b = get("hstack")
        left = correlate(x.transpose(0, 3, 1, 2), filt * make_mask(filt.shape, "a"), b, (0, 3))
        return vertical, above, numpy_gate(left + above, cond("h"))
    left = correlate(h_in, *get("hstack"), (0, 1))[:, :, :, :width]
    gated = numpy_gate(left + above, cond("h"))
    return vertical, above, correlate(gated, *get("h2hstack"), (0, 0)) + h_in


def test_every_layer_is_the_gated_block_computed_from_its_weights(net):
    """Vertical gate, link, horizontal gate, 1x1 and residual of each layer, from
    the Theano maps of the layer below, against a float64 NumPy computation."""
    x, h = random_image(2, 6, 7, seed=3), net.conditions("embedding", 2)
    out = net.run(x, h)
    for n in range(1, net.num_layers):
        v_in = out["vertical"][n - 2] if n > 1 else None
        h_in = out["horizontal"][n - 2] if n > 1 else None
        ref = reference_layer(net.weights, n, x, h, v_in, h_in)
        for name, expected in zip(("vertical", "above", "horizontal"), ref):
            numpy.testing.assert_allclose(out[name][n - 1], expected, err_msg=name, **TOL)


def test_parameter_names_and_config_round_trip(net):
    names = set(net.weights)
    for n in range(1, net.num_layers):
        assert {"%s.vstack%d.filter" % (PREFIX, n), "%s.v2h%d.b" % (PREFIX, n)} <= names
        assert ("%s.hcond%d.W" % (PREFIX, n) in names) == bool(net.condition_dim)
        assert ("%s.hcondmap%d.W" % (PREFIX, n) in names) == bool(net.map_channels)
    expected = {"model": "gated", "input_dim": 1, "dim": net.dim, "num_layers": net.num_layers,
                "q_levels": net.q_levels, "condition_dim": net.condition_dim}
    if net.map_channels:
        expected["condition_map"] = net.map_channels
    assert infer_gated_config(net.weights) == expected


# ----- the cached sampler ----------------------------------------------------------------

def cached(net):
    return CachedGatedPixelCNN(net.weights, PREFIX, net.num_layers, 1, net.q_levels)


@pytest.mark.parametrize("kind", ["one-hot", "embedding"])
@pytest.mark.parametrize("height, width, seed", [(7, 9, 0), (8, 8, 1)])
def test_cached_and_naive_draw_identical_images(net, kind, height, width, seed):
    if kind == "embedding" and not net.condition_dim:
        pytest.skip("unconditional network: one case is enough")
    h = net.conditions(kind, 3)
    naive = sample_naive(net.logits_fn(h), 3, height, width, 1, net.q_levels, seed=seed,
                         progress=False)
    fast = sample_cached(cached(net), 3, height, width, condition=h, seed=seed,
                               progress=False)
    numpy.testing.assert_array_equal(fast, naive)
    assert len(numpy.unique(naive)) > 1  # a real draw, not a constant image


def test_cached_reconstruction_equals_the_single_pass_one(net):
    h = net.conditions("embedding", 3)
    truth = numpy.random.RandomState(5).randint(0, net.q_levels, size=(3, 7, 9, 1))
    numpy.testing.assert_array_equal(
        sample_cached(cached(net), 3, 7, 9, condition=h, seed=4, progress=False,
                            given=truth.astype(numpy.uint8)),
        reconstruct(net.logits_fn(h), truth, net.q_levels, seed=4))


def test_one_condition_vector_serves_all_images(net):
    conditional(net)
    h = net.conditions("one-hot", 1)
    one = sample_cached(cached(net), 2, 5, 5, condition=h[0], seed=3, progress=False)
    both = sample_cached(cached(net), 2, 5, 5, condition=numpy.repeat(h, 2, axis=0),
                               seed=3, progress=False)
    numpy.testing.assert_array_equal(one, both)


def test_cached_sampler_refuses_images_wider_than_the_condition_map(net):
    if not net.map_channels:
        pytest.skip("no condition map")
    with pytest.raises(ValueError, match="condition map covers 9 columns, not 10"):
        cached(net).start(2, MAP_SIZE[1] + 1, net.conditions("one-hot", 2))


def test_cached_sampler_checks_the_condition(net):
    sampler = cached(net)
    wrong = None if net.condition_dim else numpy.ones((2, 3))
    with pytest.raises(ValueError, match="condition"):
        sampler.start(2, 5, wrong)


def test_row_and_pixel_pieces_equal_the_full_network(net):
    """Feed a known image through the cached evaluator and compare every row's
    link maps and gated vertical rows, every horizontal column and every
    pixel's logits with slices of the full network's activations."""
    height, width = 6, 9
    h = net.conditions("embedding", 2)
    truth = numpy.random.RandomState(3).randint(0, net.q_levels, size=(2, height, width, 1))
    inputs = targets_to_inputs(truth, net.q_levels)
    full = net.run(inputs, h)
    row_of = lambda m, i: m[:, :, i].transpose(0, 2, 1)  # noqa: E731  (batch, W, channels)
    sampler = cached(net)
    sampler.start(2, width, h)
    for i in range(height):
        sampler.start_row()
        for n in range(net.num_layers - 1):
            numpy.testing.assert_allclose(sampler.above[n], row_of(full["above"][n], i), **TOL)
        for j in range(width):
            numpy.testing.assert_allclose(sampler.pixel_logits(j), full["logits"][:, i, j],
                                          **TOL)
            for n in range(net.num_layers - 1):
                numpy.testing.assert_allclose(sampler.h[n][:, j + 1],
                                              full["horizontal"][n][:, :, i, j], **TOL)
            sampler.set_pixel(j, inputs[:, i, j])
        sampler.finish_row(inputs[:, i])
        for n in range(net.num_layers - 1):  # the newest cached vertical row is row i
            numpy.testing.assert_allclose(sampler.v_rows[n][:, 1],
                                          row_of(full["vertical"][n], i), **TOL)


PRETRAINED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "pretrained")


def cached_logits(sampler, inputs, condition):
    """Feed ``inputs`` (batch, H, W, 1) to a cached evaluator pixel by pixel: its
    logits (batch, H, W, 1, Q) at every pixel."""
    batch, height, width, _ = inputs.shape
    sampler.start(batch, width, condition)
    rows = []
    for i in range(height):
        sampler.start_row()
        row = []
        for j in range(width):
            row.append(sampler.pixel_logits(j))
            sampler.set_pixel(j, inputs[:, i, j])
        sampler.finish_row(inputs[:, i])
        rows.append(numpy.stack(row, axis=1))
    return numpy.stack(rows, axis=1)


@pytest.mark.parametrize("name", ["gated_class.npz", "gated_embedding.npz"])
def test_shipped_models_are_unchanged_without_the_link_colour_mask(name):
    """The v2h links used to carry the colour mask 'b' of the gate groups (issue 29
    removed it). The shipped models are grey (input_dim 1), where that mask is all
    ones: their logits with and without it are the same, bit for bit."""
    path = os.path.join(PRETRAINED, name)
    if not os.path.isfile(path):
        pytest.skip("{} is not shipped".format(name))
    config, weights = builder.read_network_checkpoint(path)
    assert config["input_dim"] == 1
    masked = dict(weights)
    for i in range(1, config["num_layers"]):
        key = "%s.v2h%d.filter" % (builder.PREFIX, i)
        groups = gated_channel_groups(weights[key].shape[0], config["input_dim"])
        masked[key] = weights[key] * make_mask(weights[key].shape, "b", groups=(groups, groups))
    rng = numpy.random.RandomState(6)
    condition = floatX(rng.randn(2, builder.condition_dim(config)))
    inputs = targets_to_inputs(rng.randint(0, config["q_levels"], (2, 4, 6, 1)),
                               config["q_levels"])
    args = (builder.PREFIX, config["num_layers"], 1, config["q_levels"])
    now = cached_logits(CachedGatedPixelCNN(weights, *args), inputs, condition)
    before = cached_logits(CachedGatedPixelCNN(masked, *args), inputs, condition)
    numpy.testing.assert_array_equal(now, before)
    assert numpy.ptp(now) > 1.0  # real logits of a trained model, not a constant


# ----- label-guided sampling (sampling.guided) ----------------------------------------

def guided_labels(net):
    conditional(net)
    return numpy.arange(5) % net.condition_dim


def test_guidance_weight_zero_is_plain_sampling(net):
    labels = guided_labels(net)
    plain = sample_cached(cached(net), len(labels), 6, 7, seed=2, progress=False,
                          condition=floatX(numpy.eye(net.condition_dim)[labels]))
    guided = sample_guided(cached(net), labels, 6, 7, 0.0, seed=2, progress=False)
    numpy.testing.assert_array_equal(guided, plain)
    assert (sample_guided(cached(net), labels, 6, 7, 3.0, seed=2, progress=False)
            != plain).any()  # guidance moves the draws


def test_guided_logits_by_hand():
    rng = numpy.random.RandomState(0)
    log_probs = log_softmax(rng.randn(2, 3, 1, 4))
    loglik, labels, w = rng.randn(2, 3) * 3, numpy.array([2, 0]), 1.5
    out = guided_logits(log_probs, loglik, labels, w)
    for n in range(2):
        evidence = [math.exp(v) for v in loglik[n]]
        posterior = [e / sum(evidence) for e in evidence]
        for x in range(4):
            mixture = sum(posterior[k] * math.exp(log_probs[n, k, 0, x]) for k in range(3))
            own = math.exp(log_probs[n, labels[n], 0, x])
            assert out[n, 0, x] == pytest.approx(
                (1 + w) * math.log(own) - w * math.log(mixture), rel=1e-9)


def test_guided_pixels_follow_the_full_networks_guided_distribution(net):
    """Score the guided draws with the full network under every label: each pixel
    must be the inverse-CDF draw of p(x|y)^(1+w) / p(x)^w from those logits, with
    the posterior over labels given by the pixels before it."""
    labels, k = guided_labels(net), net.condition_dim
    if net.num_layers != 3:
        pytest.skip("one conditional network is enough (the full network is slow to run)")
    height, width, w, seed = 5, 6, 2.0, 4
    bins = sample_guided(cached(net), labels, height, width, w, seed=seed, progress=False)
    inputs = targets_to_inputs(bins, net.q_levels)
    log_probs = numpy.stack([log_softmax(net.run(inputs, floatX(numpy.eye(k)[[y] * len(labels)]))
                                         ["logits"]) for y in range(k)], axis=1)
    picked = numpy.take_along_axis(log_probs, bins[:, None, ..., None].repeat(k, 1),
                                   axis=-1)[..., 0, 0]                   # (num, K, H, W)
    uniforms = uniforms_for(seed, len(labels), height, width, 1)
    loglik = numpy.zeros((len(labels), k))
    for i in range(height):
        for j in range(width):
            logits = guided_logits(log_probs[:, :, i, j], loglik, labels, w)
            numpy.testing.assert_array_equal(draw(logits, uniforms[i, j]), bins[:, i, j])
            loglik += picked[:, :, i, j]
    assert len(numpy.unique(bins)) > 1


def test_guided_sampling_refuses_what_it_cannot_guide(net):
    labels = guided_labels(net)
    with pytest.raises(ValueError, match="finite number >= 0"):
        sample_guided(cached(net), labels, 3, 3, -1.0, progress=False)
    unconditional = SimpleNamespace(sees_current_pixel=False, conditional=False)
    with pytest.raises(ValueError, match="class-conditional"):
        sample_guided(unconditional, labels, 3, 3, 1.0, progress=False)
