"""A small convolutional image encoder trained with a triplet loss.

f: images ``(batch, H, W)`` or ``(batch, H, W, 1)`` float32 ->
embeddings ``(batch, embed_dim)``, L2-normalised, to condition a
GatedPixelCNN on (``conditional: embedding``). The triplet loss (Schroff et
al. 2015, "FaceNet") pulls an anchor's embedding towards a positive (same
class) and pushes it from a negative (another class) until the squared
distances differ by at least ``margin``.

Network: ``num_convs`` 3x3 stride-2 convolutions with leaky ReLU
(``<name>.conv{i}``; the first from 1 to DIM channels, the others DIM to DIM),
a mean over all positions, a linear map to ``embed_dim`` (``<name>.embed``, a
1x1 convolution on the pooled ``(batch, DIM, 1, 1)`` map) and the L2
normalisation. The mean makes it work for any image size.
"""
import numpy
import theano
import theano.tensor as T

from lib.layers import Conv2D, Layer, WrapperLayer
from lib.ops import floatX
from lib.training import compile_train_step

EPSILON = 1e-8  # keeps the normalisation's gradient finite at a zero vector


class Encoder(Layer):
    """Conv encoder: input layer output ``(batch, H, W)`` or ``(batch, H, W, 1)`` ->
    ``output()`` ``(batch, embed_dim)`` (unit length when ``normalise``)."""

    def __init__(self, input_layer, embed_dim, DIM=16, num_convs=2, normalise=True, name=""):
        Layer.__init__(self, name)
        images = input_layer.output()
        if images.ndim == 3:
            x = images.dimshuffle(0, "x", 1, 2)              # (batch, 1, H, W)
        elif images.ndim == 4:
            x = images.dimshuffle(0, 3, 1, 2)
        else:
            raise ValueError("expected (batch, H, W) or (batch, H, W, 1) images, got a "
                             "{}-d tensor".format(images.ndim))
        channels = 1
        for i in range(1, num_convs + 1):
            conv = Conv2D(WrapperLayer(x), channels, DIM, 3, subsample=(2, 2),
                          border_mode="half", activation="relu",
                          name="%s.conv%d" % (name, i))
            self.params += conv.params
            x, channels = conv.output(), DIM                 # (batch, DIM, ~H/2^i, ~W/2^i)
        pooled = x.mean(axis=(2, 3), keepdims=True)          # (batch, DIM, 1, 1)
        embed = Conv2D(WrapperLayer(pooled), DIM, embed_dim, 1, border_mode="valid",
                       name=name + ".embed")
        self.params += embed.params
        y = embed.output()[:, :, 0, 0]                       # (batch, embed_dim)
        if normalise:
            y = y / T.sqrt(T.sqr(y).sum(axis=1, keepdims=True) + floatX(EPSILON))
        self.Y = y

    def output(self):
        return self.Y


def squared_distances(a, b):
    """Row-wise squared Euclidean distances: a, b (batch, dim) -> (batch,)."""
    return T.sqr(a - b).sum(axis=1)


def triplet_loss(anchor, positive, negative, margin=0.2):
    """mean over the batch of max(0, |a - p|^2 - |a - n|^2 + margin);
    anchor, positive, negative: symbolic (batch, dim) -> scalar."""
    hinge = squared_distances(anchor, positive) - squared_distances(anchor, negative) + margin
    return T.maximum(hinge, floatX(0.0)).mean()


def make_triplets(labels, num, rng):
    """Indices (anchor, positive, negative), each (num,) int64, into ``labels`` (n,).

    Anchors are drawn uniformly among the examples whose class has another
    example; the positive is another example of the anchor's class, the
    negative an example of any other class. rng: a numpy Generator or RandomState.
    """
    labels = numpy.asarray(labels)
    classes, counts = numpy.unique(labels, return_counts=True)
    if len(classes) < 2 or counts.max() < 2:
        raise ValueError("triplets need two classes and a class with two examples")
    usable = numpy.flatnonzero(numpy.isin(labels, classes[counts >= 2]))
    anchors = usable[_integers(rng, len(usable), num)]
    positives, negatives = numpy.empty(num, numpy.int64), numpy.empty(num, numpy.int64)
    for n, a in enumerate(anchors):
        same = numpy.flatnonzero(labels == labels[a])
        same = same[same != a]
        other = numpy.flatnonzero(labels != labels[a])
        positives[n] = same[_integers(rng, len(same))]
        negatives[n] = other[_integers(rng, len(other))]
    return anchors.astype(numpy.int64), positives, negatives


def _integers(rng, n, size=None):
    """Uniform indices in 0..n-1 (shape ``size``) from a Generator or a RandomState."""
    return rng.integers(n, size=size) if hasattr(rng, "integers") else rng.randint(n, size=size)


def triplet_cost(encoder, margin):
    """The triplet loss of a batch made of three equal thirds (anchors, positives,
    negatives) stacked along the batch axis of the encoder's input."""
    y = encoder.output()                                     # (3n, embed_dim)
    n = y.shape[0] // 3
    return triplet_loss(y[:n], y[n:2 * n], y[2 * n:], margin)


def compile_triplet_functions(images, encoder, margin=0.2, learning_rate=1e-3,
                              grad_clip=1.0):
    """(step, loss, embed) Theano functions of the encoder's input variable ``images``:

    step(batch) -> loss before one clipped-Adam update, loss(batch) -> loss,
    where batch is ``concatenate([anchors, positives, negatives])`` images
    (3n, H, W) or (3n, H, W, 1); embed(images) -> (batch, embed_dim).
    """
    cost = triplet_cost(encoder, margin)
    step, _ = compile_train_step([images], cost, encoder.params, learning_rate, grad_clip)
    loss = theano.function([images], cost)
    embed = theano.function([images], encoder.output())
    return step, loss, embed


def triplet_batch(images, labels, num, rng):
    """(3 num, ...) float32 images: anchors, then positives, then negatives."""
    a, p, n = make_triplets(labels, num, rng)
    return numpy.asarray(images[numpy.concatenate([a, p, n])], dtype=numpy.float32)


def train_encoder(step, images, labels, steps, batch_size=32, seed=0):
    """Run ``steps`` updates of ``step`` (from compile_triplet_functions) on fresh
    triplets of ``images`` (n, H, W[, 1]) float32 with ``labels`` (n,).
    Returns the per-step losses (before each update) as a float array."""
    rng = numpy.random.RandomState(seed)
    return numpy.array([float(step(triplet_batch(images, labels, batch_size, rng)))
                        for _ in range(steps)])


def centroid_accuracy(train_embeddings, train_labels, test_embeddings, test_labels):
    """How well embeddings separate the classes: the share of test rows nearest
    (Euclidean) to the mean training embedding of their own class.
    Embeddings (n, dim), labels (n,) ints; returns a float in [0, 1]."""
    train_labels, test_labels = numpy.asarray(train_labels), numpy.asarray(test_labels)
    classes = numpy.unique(train_labels)
    centroids = numpy.stack([train_embeddings[train_labels == k].mean(axis=0)
                             for k in classes])                        # (classes, dim)
    distances = ((test_embeddings[:, None, :] - centroids[None]) ** 2).sum(axis=2)
    return float((classes[distances.argmin(axis=1)] == test_labels).mean())


def embed_in_batches(embed, images, batch_size=500):
    """embed(images) in chunks: (n, H, W[, 1]) -> (n, embed_dim) float32."""
    chunks = [embed(numpy.asarray(images[s:s + batch_size], dtype=numpy.float32))
              for s in range(0, len(images), batch_size)]
    return numpy.concatenate(chunks).astype(numpy.float32)
