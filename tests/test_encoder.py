"""The image encoder and its triplet loss: the loss against NumPy, the triplet
builder, the embeddings' shape and norm, and a few training steps lowering the loss."""
import numpy
import pytest
import theano
import theano.tensor as T

from lib import WrapperLayer, floatX
from models import build as builder
from models.encoder import (Encoder, centroid_accuracy, compile_triplet_functions,
                            embed_in_batches, make_triplets, train_encoder, triplet_batch,
                            triplet_loss)

SIZE = 8  # synthetic images are SIZE x SIZE


def numpy_triplet_loss(a, p, n, margin):
    """mean(max(0, |a-p|^2 - |a-n|^2 + margin)) in float64 over rows of (batch, dim)."""
    d_ap = ((a - p) ** 2).sum(axis=1)
    d_an = ((a - n) ** 2).sum(axis=1)
    return numpy.maximum(d_ap - d_an + margin, 0.0).mean()


def test_triplet_loss_matches_numpy_on_a_hand_made_batch():
    a, p, n = T.matrices("a", "p", "n")
    loss = theano.function([a, p, n], triplet_loss(a, p, n, margin=0.5))
    anchor = floatX([[0, 0], [1, 0], [0, 1], [2, 2]])
    positive = floatX([[0, 1], [1, 0], [0, 0], [2, 1]])
    negative = floatX([[3, 0], [1, 0.5], [0, 1], [2, 2.5]])
    # per triplet: 1 - 9 + .5 -> 0;  0 - .25 + .5 = .25;  1 - 0 + .5 = 1.5;  1 - .25 + .5 = 1.25
    expected = (0 + 0.25 + 1.5 + 1.25) / 4
    assert numpy_triplet_loss(anchor, positive, negative, 0.5) == pytest.approx(expected)
    assert loss(anchor, positive, negative) == pytest.approx(expected, rel=1e-6)
    rng = numpy.random.RandomState(0)
    batch = [floatX(rng.randn(6, 3)) for _ in range(3)]
    assert loss(*batch) == pytest.approx(numpy_triplet_loss(*batch, 0.5), rel=1e-5)


@pytest.mark.parametrize("rng", [numpy.random.RandomState(1), numpy.random.default_rng(1)],
                         ids=["RandomState", "Generator"])
def test_triplets_pair_same_and_other_classes(rng):
    labels = numpy.array([0, 0, 1, 1, 1, 2])  # class 2 has no partner: never an anchor
    a, p, n = make_triplets(labels, 200, rng)
    assert a.shape == p.shape == n.shape == (200,)
    assert (labels[a] == labels[p]).all() and (a != p).all()
    assert (labels[a] != labels[n]).all()
    assert not (labels[a] == 2).any() and set(a) == {0, 1, 2, 3, 4}
    assert (labels[n] == 2).any()


def test_triplets_are_reproducible_and_need_two_classes():
    labels = numpy.arange(20) % 4
    first = make_triplets(labels, 10, numpy.random.RandomState(3))
    again = make_triplets(labels, 10, numpy.random.RandomState(3))
    for x, y in zip(first, again):
        numpy.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="two classes"):
        make_triplets(numpy.zeros(5), 3, numpy.random.RandomState(0))
    with pytest.raises(ValueError, match="two classes"):
        make_triplets(numpy.arange(5), 3, numpy.random.RandomState(0))


def synthetic_digits(per_class=4, seed=0):
    """(3 * per_class, SIZE, SIZE, 1) float32 images of three classes (a horizontal
    bar, a vertical bar, a diagonal) at random offsets with noise; labels (n,)."""
    rng = numpy.random.RandomState(seed)
    images, labels = [], []
    for label in range(3):
        for _ in range(per_class):
            img = rng.rand(SIZE, SIZE) * 0.2
            k = rng.randint(1, SIZE - 2)
            if label == 0:
                img[k:k + 2, :] = 1.0
            elif label == 1:
                img[:, k:k + 2] = 1.0
            else:
                img[numpy.arange(SIZE), (numpy.arange(SIZE) + k) % SIZE] = 1.0
            images.append(img)
            labels.append(label)
    return floatX(numpy.array(images)[..., None]), numpy.array(labels)


@pytest.fixture(scope="module")
def encoder():
    """A tiny encoder (DIM 8, 4-d embeddings) on (batch, SIZE, SIZE, 1) images and its
    (step, loss, embed) functions."""
    numpy.random.seed(0)
    images = T.tensor4("images")
    layer = Encoder(WrapperLayer(images), embed_dim=4, DIM=8, name="enc")
    return layer, compile_triplet_functions(images, layer, margin=0.5, learning_rate=1e-2)


def test_embeddings_have_unit_length_and_the_named_parameters(encoder):
    layer, (step, loss, embed) = encoder
    images, _ = synthetic_digits()
    y = embed_in_batches(embed, images, batch_size=5)
    assert y.shape == (len(images), 4) and y.dtype == numpy.float32
    numpy.testing.assert_allclose(numpy.linalg.norm(y, axis=1), 1.0, rtol=1e-5)
    numpy.testing.assert_allclose(y[:3], embed(images[:3]), rtol=1e-5, atol=1e-6)
    assert [p.name for p in layer.params] == [
        "enc.conv1.filter", "enc.conv1.b", "enc.conv2.filter", "enc.conv2.b",
        "enc.embed.filter", "enc.embed.b"]


def test_three_dimensional_images_give_the_same_embeddings(encoder):
    layer, (step, loss, embed) = encoder
    flat = T.tensor3("flat")
    other = Encoder(WrapperLayer(flat), embed_dim=4, DIM=8, name="enc")
    for mine, theirs in zip(other.params, layer.params):
        mine.set_value(theirs.get_value())
    images, _ = synthetic_digits(per_class=1)
    numpy.testing.assert_allclose(theano.function([flat], other.output())(images[..., 0]),
                                  embed(images), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="images"):
        Encoder(WrapperLayer(T.matrix()), embed_dim=4)


def test_a_few_adam_steps_lower_the_triplet_loss(encoder):
    layer, (step, loss, embed) = encoder
    images, labels = synthetic_digits()
    held = triplet_batch(images, labels, 12, numpy.random.RandomState(9))
    before = float(loss(held))
    losses = train_encoder(step, images, labels, steps=40, batch_size=6, seed=1)
    after = float(loss(held))
    assert losses.shape == (40,) and numpy.isfinite(losses).all()
    assert after < 0.5 * before, (before, after)
    assert losses[-10:].mean() < losses[:10].mean()


def test_centroid_accuracy_on_hand_placed_points():
    """Class means (0, 0) and (4, 0); test points at x = 1, 3, 1.9, 2.1 with labels
    0, 1, 1, 1: the first, second and fourth lie nearest their own class's mean."""
    train = floatX([[0, 1], [0, -1], [4, 1], [4, -1]])
    test = floatX([[1, 0], [3, 0], [1.9, 0], [2.1, 0]])
    assert centroid_accuracy(train, [0, 0, 1, 1], test, [0, 1, 1, 1]) == 0.75
    assert centroid_accuracy(train, [5, 5, 7, 7], test, [5, 7, 5, 7]) == 1.0  # any labels


def test_the_builder_sizes_the_encoder_from_the_config():
    """encoder_dim / encoder_convs shape the encoder; a config without them (runs
    saved before they existed) gets builder.ENCODER_DEFAULTS."""
    config = {"model": "gated", "conditional": "embedding", "input_dim": 1, "dim": 2,
              "num_layers": 2, "q_levels": 2, "embed_dim": 3}

    def filters(net):
        return [p.get_value().shape for p in net.encoder.params if p.name.endswith("filter")]

    assert filters(builder.build(dict(config, encoder_dim=5, encoder_convs=3))) == [
        (5, 1, 3, 3), (5, 5, 3, 3), (5, 5, 3, 3), (3, 5, 1, 1)]
    old = builder.ENCODER_DEFAULTS
    dim = old["encoder_dim"]
    assert filters(builder.build(config)) == (
        [(dim, 1, 3, 3)] + [(dim, dim, 3, 3)] * (old["encoder_convs"] - 1) + [(3, dim, 1, 1)])
