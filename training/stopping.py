"""When a run stops: after its last epoch, on Ctrl-C, or when its time budget is spent.

Each way saves the resumable state first. ``train`` returns which one it was,
so that the command line can exit with the matching code.
"""
import contextlib
import os
import signal
import sys
import time

from tqdm import tqdm

DONE, INTERRUPTED, OUT_OF_TIME = "done", "interrupted", "out of time"


class StopRequest(object):
    """Turns the first Ctrl-C (SIGINT) into a request to stop after the current step;
    a second one aborts (KeyboardInterrupt). Call the object to read the request."""

    def __init__(self):
        self.requested = False

    def __call__(self):
        return self.requested

    def handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("Stopping after this step and saving the state (Ctrl-C again to abort)...")

    @contextlib.contextmanager
    def installed(self):
        """Handle SIGINT inside the block (only possible in the main thread)."""
        try:
            previous = signal.signal(signal.SIGINT, self.handle)
        except ValueError:  # not the main thread: leave signals alone
            previous = None
            installed = False
        else:
            installed = True
        try:
            yield self
        finally:
            if installed:
                signal.signal(signal.SIGINT,
                              signal.SIG_DFL if previous is None else previous)


class Deadline(object):
    """Call to learn whether a time budget is spent. It keeps a reserve (a tenth
    of the budget, at most 3 minutes) for the end-of-epoch validation and the
    final save, so a run stops before the budget ends."""

    def __init__(self, minutes, start=None):
        budget = 60.0 * minutes
        self.end = (time.time() if start is None else start) + budget - min(180.0, budget / 10)

    def __call__(self):
        return time.time() >= self.end


def resume_command(out_dir):
    """The command that continues the run in ``out_dir`` (its settings are saved)."""
    return "{} train_mnist.py --resume {}".format(os.path.relpath(sys.executable), out_dir)


def train(trainer, epochs, on_step=None, deadline=None):
    """Train until ``epochs`` epochs are done, Ctrl-C asks to stop or ``deadline()``
    turns true (a :class:`Deadline`). Returns DONE, INTERRUPTED or OUT_OF_TIME."""
    request = StopRequest()

    def stop():
        return request() or (deadline is not None and deadline())

    with request.installed():
        while trainer.epoch < epochs and not stop():
            trainer.epoch_start = time.time()
            train_cost = trainer.train_epoch(stop, on_step)
            if train_cost is None:
                break
            trainer.end_of_epoch(train_cost, trainer.epoch_seconds())
    if trainer.epoch >= epochs:
        print("Done: {} epochs in {}".format(epochs, trainer.out_dir), flush=True)
        return DONE
    trainer.save_state()
    outcome = INTERRUPTED if request() else OUT_OF_TIME
    print("{}: saved the state at epoch {}, iteration {}. Continue with: {}".format(
        "Stopped" if outcome == INTERRUPTED else "The time budget is spent",
        trainer.epoch + 1, trainer.iteration, resume_command(trainer.out_dir)), flush=True)
    return outcome
