"""Train the small MNIST classifier that scores generated digits (models/classifier.py).

    python train_classifier.py --data-dir ../shared/data/mnist      # writes runs/classifier.npz
    python train_classifier.py --out pretrained/classifier.npz       # replaces the shipped one

It sees the same Q_LEVELS-level inputs as the PixelCNNs. Adam, a few epochs;
the test accuracy after each epoch is printed, and the file (weights plus a
description: q_levels, epochs, test accuracy) is written atomically at the end.
The output folder and the data are checked before training starts.
"""
import argparse
import math
import os
import sys
import tempfile
import time

import numpy

import lib  # noqa: F401  (configures Theano before it is imported)
import theano
import theano.tensor as T
from tqdm import tqdm

import quantize
from data import mnist
from lib import WrapperLayer, backend
from lib.checkpoint import save_arrays
from lib.training import compile_train_step
from models.classifier import Classifier

DEFAULT_OUT = os.path.join("runs", "classifier.npz")
SHIPPED = os.path.join("pretrained", "classifier.npz")
MAX_SEED = 2 ** 32 - 1
EXIT_CODES = """exit codes:
  0    done
  1    the run failed: out of memory, or --out could not be written at the end
  2    bad input: an invalid option, missing or damaged data, an unusable --out folder
  130  stopped by Ctrl-C (nothing is written)"""


class UsageError(Exception):
    """Bad input found before training: one line, exit code 2."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    """Shows each option's default and keeps the epilog's line breaks."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Train the digit classifier used by evaluate.py --sample-accuracy.",
        epilog=EXIT_CODES, formatter_class=HelpFormatter)
    p.add_argument("--data-dir", default=None,
                   help="MNIST folder (default: $MNIST_DIR, else the per-user cache, "
                        "downloading when absent)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the MD5 and standard-size checks of the data files (for "
                        "small or custom IDX files)")
    p.add_argument("--train-limit", type=int, default=None,
                   help="train on the first N training images only (None: all of them)")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help="weights file to write (replaced if it exists; its folder must "
                        "exist, except the default's, which is created). evaluate.py "
                        "reads {0} unless told otherwise: to ship a new classifier, pass "
                        "--out {0}".format(SHIPPED))
    p.add_argument("--epochs", type=int, default=6, help="passes over the training images")
    p.add_argument("--shift", type=int, default=2,
                   help="move each training image by up to N pixels in x and y, afresh "
                        "every step (0: no augmentation)")
    p.add_argument("--lr-decay", type=float, default=0.7,
                   help="multiply the learning rate by this after every epoch")
    p.add_argument("--batch-size", type=int, default=100, help="images per Adam step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--q-levels", type=int, default=4,
                   help="grey levels of the inputs (as the PixelCNN to be scored)")
    p.add_argument("--seed", type=int, default=1234, help="weights and shuffles")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "train_limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error("--{} must be at least 1, got {}".format(name.replace("_", "-"), value))
    if not 0 <= args.shift <= 8:
        p.error("--shift must be 0..8 pixels, got {}".format(args.shift))
    if not 0 < args.lr_decay <= 1:
        p.error("--lr-decay must be in (0, 1], got {}".format(args.lr_decay))
    if not 0 <= args.seed <= MAX_SEED:
        p.error("--seed must be 0..{}, got {}".format(MAX_SEED, args.seed))
    if not (args.lr > 0 and math.isfinite(args.lr)):
        p.error("--lr must be a positive number, got {}".format(args.lr))
    if not args.out.endswith(".npz"):
        p.error("--out must name a .npz file, got {}".format(args.out))
    try:
        quantize.check_levels(args.q_levels)
    except ValueError as err:
        p.error(str(err))
    return args


def check_out(path):
    """Refuse an --out that cannot be written, before any training: its folder must
    exist (the default's is created) and take a new file. Raises UsageError; returns
    the folder this call created, else None."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError("--out {} is a folder; name a .npz file".format(path))
    created = None
    try:
        if path == DEFAULT_OUT and not os.path.isdir(folder):
            os.makedirs(folder)
            created = folder
        if not os.path.isdir(folder):
            raise UsageError("--out {}: {} {}; create the folder or choose another "
                             "--out".format(path, folder, "is not a folder" if os.path.exists(
                                 folder) else "does not exist"))
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise UsageError("--out {}: cannot write in folder {} ({}); choose another "
                         "--out".format(path, folder, err.strerror or err))
    return created


def remove_if_empty(folder):
    """Remove ``folder`` when nothing is in it (the default's, made by a failed run)."""
    try:
        os.rmdir(folder)
    except OSError:
        pass  # something else is in it now: keep it


def load_data(args):
    """(train inputs (n, 28, 28, 1), train labels (n,) int32, test inputs, test labels)
    at Q_LEVELS levels, the training split cut to --train-limit; UsageError for missing
    or damaged data or fewer images than one batch."""
    try:
        data = mnist.load_dataset(args.data_dir, verify=not args.no_verify)
    except mnist.DataError as err:
        raise UsageError(str(err))
    train_images = data["train_images"][:args.train_limit]
    if len(train_images) < args.batch_size:
        raise UsageError("{} training images are fewer than one batch of {}; lower "
                         "--batch-size".format(len(train_images), args.batch_size))
    train_x, _ = quantize.quantize(train_images[..., None], args.q_levels)
    test_x, _ = quantize.quantize(data["test_images"][..., None], args.q_levels)
    labels = data["train_labels"][:args.train_limit].astype(numpy.int32)
    return train_x, labels, test_x, data["test_labels"]


def build(q_levels):
    """(classifier, input variable, compiled logits function)."""
    X = T.tensor4("X")
    net = Classifier(WrapperLayer(X))
    return net, X, theano.function([X], net.output())


def shifted(images, shift, rng):
    """Each (28, 28, 1) image moved by a random (dy, dx) in [-shift, shift], zeros
    filling in: (n, 28, 28, 1) -> same shape."""
    if shift == 0:
        return images
    out = numpy.zeros_like(images)
    size = images.shape[1]
    for dst, src, (dy, dx) in zip(out, images, rng.randint(-shift, shift + 1, (len(images), 2))):
        dst[max(0, dy):size + min(0, dy), max(0, dx):size + min(0, dx)] = \
            src[max(0, -dy):size + min(0, -dy), max(0, -dx):size + min(0, -dx)]
    return out


def accuracy(logits_fn, inputs, labels, batch=500):
    """Share of ``inputs`` (n, 28, 28, 1) whose arg-max logit is the label."""
    hits = sum(int((logits_fn(inputs[s:s + batch]).argmax(axis=1) == labels[s:s + batch]).sum())
               for s in range(0, len(inputs), batch))
    return hits / float(len(inputs))


def train(args, data):
    """Train on ``data`` (from load_data) and write --out."""
    train_x, labels, test_x, test_labels = data
    numpy.random.seed(args.seed)
    net, X, logits_fn = build(args.q_levels)
    y = T.ivector("y")
    cost = T.nnet.categorical_crossentropy(T.nnet.softmax(net.output()), y).mean()
    learning_rate = theano.shared(numpy.float32(args.lr), name="learning_rate")
    step, _ = compile_train_step([X, y], cost, net.params, learning_rate, grad_clip=0)
    rng = numpy.random.RandomState(args.seed)
    for epoch in range(args.epochs):
        start = time.time()
        order = numpy.random.RandomState([args.seed, epoch]).permutation(len(train_x))
        batches = numpy.array_split(order, len(order) // args.batch_size)
        costs = [float(step(shifted(train_x[idx], args.shift, rng), labels[idx]))
                 for idx in tqdm(batches, desc="epoch %d" % (epoch + 1), leave=False,
                                 disable=args.no_progress, dynamic_ncols=True)]
        acc = accuracy(logits_fn, test_x, test_labels)
        print("epoch {}: train cost {:.4f}, test accuracy {:.4f} ({:.0f} s)".format(
            epoch + 1, numpy.mean(costs), acc, time.time() - start), flush=True)
        learning_rate.set_value(numpy.float32(learning_rate.get_value() * args.lr_decay))
    meta = {"model": "classifier", "q_levels": args.q_levels, "epochs": args.epochs,
            "shift": args.shift, "lr": args.lr, "lr_decay": args.lr_decay, "seed": args.seed,
            "train_images": len(train_x), "test_accuracy": acc}
    save_arrays(args.out, {p.name: p.get_value() for p in net.params}, meta=meta)
    print("wrote {} (test accuracy {:.4f})".format(args.out, acc))


def main(argv=None):
    """Command-line entry point; returns the exit code (see ``EXIT_CODES``)."""
    args = parse_args(argv)
    created = None
    try:
        if backend.blas_problem():
            raise UsageError(backend.blas_problem())
        created = check_out(args.out)
        train(args, load_data(args))
    except UsageError as err:
        print("error: {}".format(err), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aborted; nothing was written", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory with --batch-size {}; use a smaller one".format(
            args.batch_size), file=sys.stderr)
        return 1
    except OSError as err:
        print("error: could not write {}: {}".format(args.out, err.strerror or err),
              file=sys.stderr)
        return 1
    finally:
        if created and not os.path.exists(args.out):
            remove_if_empty(created)
    return 0


if __name__ == "__main__":
    sys.exit(main())
