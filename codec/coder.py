"""Entropy coding of a batch of images with a model's cached evaluator and ``constriction``.

Encoding and decoding run one function, :func:`code_batch`: the batch's
images advance together through the pixels in raster order (colour by colour
where the model reads a pixel's earlier colours), exactly as the cached
samplers draw them (``sampling.cached.sample_cached``). At each sub-pixel the
evaluator gives logits ``(batch, Q)``; :func:`fixed_point` turns them into
integer weights; the encoder codes the known bins with them and the decoder
reads the bins back; either way the bins are then fed to the evaluator. So
the decoder computes every distribution from the same numbers, in the same
order, as the encoder did, and gets the same weights.

Fixed point. The coder's model is categorical with integer weights summing to
``2 ** PRECISION`` (constriction's range coder works at 24 bits), every bin at
least 1 so that every bin can be coded whatever the model says::

    weight = 1 + floor(p * (2**24 - Q)),   the remainder added to the likeliest bin

They go to constriction's categorical model as ``weight - 1`` (floats holding
integers): its leaky quantizer gives each bin 1 plus its share of ``2**24 - Q``
scaled by ``(2**24 - Q) / sum``, which is 1 here, so it codes with exactly these
weights, and the code length is ``sum(-log2(weight / 2**24))`` of the coded
bins plus the range coder's few bits (``tests/test_compress.py`` checks it).

Labels of a class-conditional model are coded first, uniform over the classes.

Shapes: bins ``(batch, height, width, channels)`` uint8; labels ``(batch,)``.
"""
import constriction
import numpy

from models.build import NUM_CLASSES, one_hot
from quantize import targets_to_inputs

PRECISION = 24
TOTAL = 1 << PRECISION
FAMILY = constriction.stream.model.Categorical(perfect=False)


def probabilities(logits):
    """Softmax in float64: logits (n, Q) -> (n, Q) rows summing to 1."""
    z = numpy.asarray(logits, dtype=numpy.float64)
    z = numpy.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def fixed_point(p):
    """Probabilities (n, Q) -> integer weights (n, Q) int64, each >= 1, every row
    summing to ``TOTAL``."""
    q = p.shape[1]
    weights = 1 + numpy.floor(p * (TOTAL - q)).astype(numpy.int64)
    rows = numpy.arange(len(p))
    weights[rows, p.argmax(axis=1)] += TOTAL - weights.sum(axis=1)
    return weights


def information(weights, bins):
    """Bits the fixed-point model spends on ``bins`` (n,) under ``weights`` (n, Q)."""
    chosen = weights[numpy.arange(len(bins)), bins]
    return float(-numpy.log2(chosen / float(TOTAL)).sum())


class Stream(object):
    """One batch's range code: encodes given bins (``words`` None) or decodes them
    (from ``words``, uint32). Counts, in bits, the model's NLL of the pixels'
    bins (``nll_bits``) and what the fixed-point weights spend on everything
    coded (``information_bits``)."""

    def __init__(self, words=None):
        self.decoding = words is not None
        self.coder = (constriction.stream.queue.RangeDecoder(words) if self.decoding
                      else constriction.stream.queue.RangeEncoder())
        self.nll_bits = 0.0
        self.information_bits = 0.0

    def code(self, logits, bins=None, pixels=True):
        """Encode ``bins`` (n,) or decode n bins, under the distributions of
        ``logits`` (n, Q); returns the bins, uint8. ``pixels``: count their NLL."""
        p = probabilities(logits)
        weights = fixed_point(p)
        table = (weights - 1).astype(numpy.float64)
        if self.decoding:
            bins = self.coder.decode(FAMILY, table)
        else:
            self.coder.encode(numpy.asarray(bins, dtype=numpy.int32), FAMILY, table)
        bins = numpy.asarray(bins, dtype=numpy.intp)
        self.information_bits += information(weights, bins)
        if pixels:
            self.nll_bits -= float(numpy.log2(p[numpy.arange(len(bins)), bins]).sum())
        return bins.astype(numpy.uint8)

    def words(self):
        """The encoded batch, uint32 words."""
        return self.coder.get_compressed()

    def exhausted(self):
        """True when the decoder has read all of its words (and no more)."""
        return self.coder.maybe_exhausted()


def code_batch(evaluator, stream, shape, bins=None, labels=None, conditional=False):
    """Encode (``bins`` given) or decode (``bins`` None) one batch through ``stream``.

    evaluator: a cached evaluator (sampling.CACHED_EVALUATORS) of the model;
    shape: (batch, height, width, channels); labels (batch,) ints for a
    class-conditional model (``conditional``), coded first.
    Returns (bins (batch, height, width, channels) uint8, labels (batch,) or None).
    """
    num, height, width, channels = shape
    q = evaluator.q_levels
    if conditional:   # uniform over the classes
        labels = stream.code(numpy.zeros((num, NUM_CLASSES)), labels, pixels=False)
    condition = one_hot(labels) if conditional else None
    known = bins
    bins = numpy.zeros(shape, dtype=numpy.uint8)

    def sub_pixel(i, j, d, logits):
        truth = None if known is None else known[:, i, j, d]
        bins[:, i, j, d] = stream.code(logits, truth)
        evaluator.set_channel(j, d, targets_to_inputs(bins[:, i, j, d], q))

    evaluator.start(num, width, condition)
    for i in range(height):
        evaluator.start_row()
        for j in range(width):
            if evaluator.sees_current_pixel:     # colour d is predicted from colours < d
                for d in range(channels):
                    sub_pixel(i, j, d, evaluator.pixel_logits(j)[:, d])
                evaluator.pixel_logits(j)        # the column's states with the whole pixel
            else:
                logits = evaluator.pixel_logits(j)
                for d in range(channels):
                    sub_pixel(i, j, d, logits[:, d])
        evaluator.finish_row(targets_to_inputs(bins[:, i], q))
    return bins, (None if labels is None else numpy.asarray(labels, dtype=numpy.uint8))
