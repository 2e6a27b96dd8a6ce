"""Loss and optimiser: categorical cross-entropy on logits, clipped Adam (Lasagne)."""
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
                       keep_buffers=False):
    """theano.function(inputs) -> cost, applying one clipped-Adam step. Also
    returns the optimizer's state variables (for checkpoints).
    ``keep_buffers``: see :func:`keep_buffers_mode`."""
    updates, state = clipped_adam(cost, params, learning_rate, grad_clip)
    mode = keep_buffers_mode() if keep_buffers else None
    return theano.function(inputs, cost, updates=updates, mode=mode), state
