"""Label-guided sampling of a class-conditional model.

Plain sampling draws each pixel from p(x | drawn so far, y). Guided sampling
draws it from

    p(x | y)^(1 + w) / p(x)^w,    p(x) = sum_k p(k | drawn so far) p(x | k),

renormalised over the Q_LEVELS bins: it leans away from what the other
labels would draw as well, by the guidance weight w (w = 0 is plain
sampling). Everything comes from the model itself: every image is run under
all K labels at once (a batch of num * K in the cached evaluator), the
log-likelihood of the pixels drawn so far under each label gives the
posterior p(k | drawn so far) (uniform prior), and that weights the mixture.
The draws use ``sampling.draws`` with the plain sampler's random numbers, so
w = 0 gives the plain sampler's images for the same seed.
"""
import numpy
from tqdm import tqdm

from quantize import targets_to_inputs
from sampling.draws import draw, uniforms_for


def log_softmax(logits):
    """(..., Q) logits -> (..., Q) float64 log-probabilities."""
    z = numpy.asarray(logits, dtype=numpy.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - numpy.log(numpy.exp(z).sum(axis=-1, keepdims=True))


def logsumexp(a, axis):
    """log(sum(exp(a))) along ``axis``, without overflow."""
    top = a.max(axis=axis, keepdims=True)
    return numpy.squeeze(top, axis) + numpy.log(numpy.exp(a - top).sum(axis=axis))


def guided_logits(log_probs, loglik, labels, weight):
    """Logits (num, input_dim, Q) of p(x | y)^(1 + w) / p(x)^w for each image.

    log_probs: (num, K, input_dim, Q) log p(x | drawn so far, k) under every label k;
    loglik: (num, K) log p(drawn so far | k); labels: (num,) the wanted y.
    """
    posterior = loglik - logsumexp(loglik, axis=1)[:, None]                   # (num, K)
    mixture = logsumexp(posterior[:, :, None, None] + log_probs, axis=1)      # (num, input_dim, Q)
    own = log_probs[numpy.arange(len(labels)), labels]                        # (num, input_dim, Q)
    return (1.0 + weight) * own - weight * mixture


def sample_guided(net, labels, height, width, weight, seed=0, temperature=1.0, progress=True):
    """Draw one image per wanted label, (num, height, width, input_dim) uint8 bins,
    with guidance weight ``weight`` >= 0.

    net: a cached evaluator of a class-conditional model (one-hot conditions of
    length K), without colour masks; labels: (num,) ints in 0..K-1.
    """
    if net.sees_current_pixel or not net.conditional:
        raise ValueError("guided sampling needs a class-conditional model without colour masks")
    if not (weight >= 0 and numpy.isfinite(weight)):
        raise ValueError("the guidance weight must be a finite number >= 0, got {}".format(weight))
    labels = numpy.asarray(labels, dtype=int)
    num, k, q = len(labels), net.condition_dim, net.q_levels
    uniforms = uniforms_for(seed, num, height, width, net.input_dim)
    bins = numpy.zeros((num, height, width, net.input_dim), dtype=numpy.uint8)
    # image n runs as rows n*K .. n*K + K-1 of the batch, one label each
    net.start(num * k, width, numpy.tile(numpy.eye(k, dtype=numpy.float32), (num, 1)))
    loglik = numpy.zeros((num, k))

    def for_every_label(inputs):
        return numpy.repeat(inputs, k, axis=0)

    for i in tqdm(range(height), desc="rows", unit="row", disable=not progress):
        net.start_row()
        for j in range(width):
            log_probs = log_softmax(net.pixel_logits(j)).reshape(num, k, net.input_dim, q)
            drawn = draw(guided_logits(log_probs, loglik, labels, weight), uniforms[i, j],
                         temperature)                                          # (num, input_dim)
            bins[:, i, j] = drawn
            picked = numpy.take_along_axis(
                log_probs, numpy.broadcast_to(drawn[:, None, :, None], (num, k, net.input_dim, 1)),
                axis=-1)
            loglik += picked[..., 0].sum(axis=-1)
            net.set_pixel(j, for_every_label(targets_to_inputs(drawn, q)))
        net.finish_row(for_every_label(targets_to_inputs(bins[:, i], q)))
    return bins
