"""Train the small MNIST classifier that scores generated digits (models/classifier.py).

    python train_classifier.py --data-dir ../shared/data/mnist      # writes pretrained/classifier.npz

It sees the same Q_LEVELS-level inputs as the PixelCNNs. Adam, a few epochs;
the test accuracy after each epoch is printed, and the file (weights plus a
description: q_levels, epochs, test accuracy) is written atomically at the end.

Exit codes: 0 done, 1 a failed run (missing data, unwritable output), 2 bad arguments.
"""
import argparse
import math
import sys
import time

import numpy

import lib  # noqa: F401  (configures Theano before it is imported)
import theano
import theano.tensor as T
from tqdm import tqdm

import quantize
from data import mnist
from lib import WrapperLayer
from lib.checkpoint import save_arrays
from lib.training import compile_train_step
from models.classifier import Classifier


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Train the digit classifier used by evaluate.py --sample-accuracy.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default=None,
                   help="MNIST folder (default: $MNIST_DIR, else the per-user cache, "
                        "downloading when absent)")
    p.add_argument("--out", default="pretrained/classifier.npz", help="weights file to write")
    p.add_argument("--epochs", type=int, default=6, help="passes over the 60,000 images")
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
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            p.error("--{} must be at least 1".format(name.replace("_", "-")))
    if not 0 <= args.shift <= 8:
        p.error("--shift must be 0..8 pixels, got {}".format(args.shift))
    if not 0 < args.lr_decay <= 1:
        p.error("--lr-decay must be in (0, 1], got {}".format(args.lr_decay))
    if args.seed < 0:
        p.error("--seed must be at least 0, got {}".format(args.seed))
    if not (args.lr > 0 and math.isfinite(args.lr)):
        p.error("--lr must be a positive number, got {}".format(args.lr))
    if not args.out.endswith(".npz"):
        p.error("--out must name a .npz file, got {}".format(args.out))
    try:
        quantize.check_levels(args.q_levels)
    except ValueError as err:
        p.error(str(err))
    return args


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


def train(args):
    data = mnist.load_dataset(args.data_dir)
    train_x, _ = quantize.quantize(data["train_images"][..., None], args.q_levels)
    test_x, _ = quantize.quantize(data["test_images"][..., None], args.q_levels)
    numpy.random.seed(args.seed)
    net, X, logits_fn = build(args.q_levels)
    y = T.ivector("y")
    cost = T.nnet.categorical_crossentropy(T.nnet.softmax(net.output()), y).mean()
    learning_rate = theano.shared(numpy.float32(args.lr), name="learning_rate")
    step, _ = compile_train_step([X, y], cost, net.params, learning_rate, grad_clip=0)
    rng = numpy.random.RandomState(args.seed)
    labels = data["train_labels"].astype(numpy.int32)
    for epoch in range(args.epochs):
        start = time.time()
        order = numpy.random.RandomState([args.seed, epoch]).permutation(len(train_x))
        batches = numpy.array_split(order, len(order) // args.batch_size)
        costs = [float(step(shifted(train_x[idx], args.shift, rng), labels[idx]))
                 for idx in tqdm(batches, desc="epoch %d" % (epoch + 1), leave=False,
                                 disable=args.no_progress, dynamic_ncols=True)]
        acc = accuracy(logits_fn, test_x, data["test_labels"])
        print("epoch {}: train cost {:.4f}, test accuracy {:.4f} ({:.0f} s)".format(
            epoch + 1, numpy.mean(costs), acc, time.time() - start), flush=True)
        learning_rate.set_value(numpy.float32(learning_rate.get_value() * args.lr_decay))
    meta = {"model": "classifier", "q_levels": args.q_levels, "epochs": args.epochs,
            "shift": args.shift, "lr": args.lr, "lr_decay": args.lr_decay, "seed": args.seed,
            "test_accuracy": acc}
    save_arrays(args.out, {p.name: p.get_value() for p in net.params}, meta=meta)
    print("wrote {} (test accuracy {:.4f})".format(args.out, acc))


def main(argv=None):
    args = parse_args(argv)
    try:
        train(args)
    except (mnist.DataError, OSError) as err:
        print("error: {}".format(err), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
