"""Loss and optimiser: categorical cross-entropy on logits, clipped Adam (Lasagne),
and an exponential moving average of the weights updated inside the same step."""
import numpy
import theano
import theano.tensor as T

from lib import backend  # noqa: F401  (Theano flags and the Lasagne import shim)
from lib.ops import floatX
import lasagne  # noqa: E402


def nll_per_subpixel(logits, targets):
    """Mean negative log-likelihood in nats per sub-pixel.

    logits: (..., Q_LEVELS) float32; targets: int tensor with the leading shape (...).
    Equal to the original's ``categorical_crossentropy(Softmax(...))`` but written on
    the logits, so Theano fuses it into one compiled softmax-cross-entropy op.
    """
    flat = logits.reshape((-1, logits.shape[logits.ndim - 1]))
    return T.nnet.categorical_crossentropy(T.nnet.softmax(flat), targets.flatten()).mean()


def nll_per_example(logits, targets):
    """Summed NLL per example in nats; logits (batch, ..., Q), targets (batch, ...) -> (batch,)."""
    flat = logits.reshape((-1, logits.shape[logits.ndim - 1]))
    per_subpixel = T.nnet.categorical_crossentropy(T.nnet.softmax(flat), targets.flatten())
    return per_subpixel.reshape((targets.shape[0], -1)).sum(axis=1)


def clipped_adam(cost, params, learning_rate=1e-3, grad_clip=1.0):
    """Updates of ``lasagne.updates.adam`` on gradients clipped elementwise to
    [-grad_clip, grad_clip]. Returns (updates OrderedDict, optimizer state list)."""
    grads = T.grad(cost, wrt=params)
    if grad_clip:
        grads = [T.clip(g, floatX(-grad_clip), floatX(grad_clip)) for g in grads]
    updates = lasagne.updates.adam(grads, params, learning_rate=learning_rate)
    param_set = set(params)
    state = [v for v in updates if v not in param_set]  # m, v per parameter, then t_prev
    for i, var in enumerate(state):
        var.name = "adam.{}".format(i)
    return updates, state


class WeightAverage(object):
    """An exponential moving average of ``params``, bias-corrected, kept in shared
    variables of the same shapes and updated by the compiled training step.

    After n steps with parameters p_1..p_n (the values each step left) the
    average is sum_k (1 - d) d^(n-k) p_k / (1 - d^n), the zero-started average
    divided by its bias 1 - d^n, so early steps are not pulled towards zero or
    towards the initial weights. It is stored already corrected, updated as
    a <- a + w_n (p_n - a) with w_n = (1 - d) / (1 - d^n) (w_1 = 1: a = p_1).
    ``count`` (int64) is n; ``decay`` d is in [0, 1).
    """

    def __init__(self, params, decay):
        self.params, self.decay = list(params), float(decay)
        self.averages = [theano.shared(p.get_value(), name="ema." + p.name) for p in self.params]
        self.count = theano.shared(numpy.int64(0), name="ema.count")

    @staticmethod
    def weight(decay, n):
        """w_n = (1 - d) / (1 - d^n), the share of step n's parameters (float64)."""
        return (1.0 - decay) / (1.0 - decay ** n)

    def updates(self, new_values):
        """(variable, expression) pairs moving the average to include the parameters
        ``new_values[p]`` (the optimiser's update of each parameter p)."""
        n = self.count + 1
        decay = T.constant(self.decay, dtype="float64")
        w = T.cast((1.0 - decay) / (1.0 - decay ** n), theano.config.floatX)
        pairs = [(a, a + w * (new_values[p] - a)) for p, a in zip(self.params, self.averages)]
        return pairs + [(self.count, n)]

    def restart(self):
        """Start averaging afresh from the next step (the averages hold the current
        parameters until then)."""
        for p, a in zip(self.params, self.averages):
            a.set_value(p.get_value())
        self.count.set_value(numpy.int64(0))


def keep_buffers_mode():
    """The mode of the fast graphs' training step: Theano's default mode, but

    * keeping every intermediate array between calls (``allow_gc=False`` for
      this function only): a training step then reuses its buffers instead of
      asking the system for ~1 GB of fresh pages each step, which costs a
      quarter of a fast step. Memory use is the step's peak, held;
    * without the rewrite ``dot(x, y).T -> dot(y.T, x.T)``. A weight gradient
      is ``dot(patches.T, grad)``, ``(columns, out)``, transposed to the
      ``(out, columns)`` weights; the rewrite turns it into ``dot(grad.T,
      patches)``, which BLAS runs ~1.8x slower on these shapes (a long inner
      dimension and few output rows: 0.51 against 0.29 ms for 16 x 12544 x 81).
    """
    return theano.compile.get_default_mode().clone(link_kwargs={"allow_gc": False}).excluding(
        "local_lift_transpose_through_dot")


def compile_train_step(inputs, cost, params, learning_rate=1e-3, grad_clip=1.0,
                       keep_buffers=False, average=None):
    """theano.function(inputs) -> cost, applying one clipped-Adam step. Also
    returns the optimizer's state variables (for checkpoints).
    ``learning_rate``: a number, or a floatX shared scalar to change between steps;
    ``keep_buffers``: see :func:`keep_buffers_mode`; ``average``: a
    :class:`WeightAverage` of ``params`` the step also updates."""
    updates, state = clipped_adam(cost, params, learning_rate, grad_clip)
    if average is not None:
        updates.update(average.updates(updates))
    mode = keep_buffers_mode() if keep_buffers else None
    return theano.function(inputs, cost, updates=updates, mode=mode), state
