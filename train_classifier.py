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

import mnist_data
import quantize
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
    p.add_argument("--epochs", type=int, default=4, help="passes over the 60,000 images")
    p.add_argument("--batch-size", type=int, default=100, help="images per Adam step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--q-levels", type=int, default=4,
                   help="grey levels of the inputs (as the PixelCNN to be scored)")
    p.add_argument("--seed", type=int, default=1234, help="weights and shuffles")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            p.error("--{} must be at least 1".format(name.replace("_", "-")))
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


def accuracy(logits_fn, inputs, labels, batch=500):
    """Share of ``inputs`` (n, 28, 28, 1) whose arg-max logit is the label."""
    hits = sum(int((logits_fn(inputs[s:s + batch]).argmax(axis=1) == labels[s:s + batch]).sum())
               for s in range(0, len(inputs), batch))
    return hits / float(len(inputs))


def train(args):
    data = mnist_data.load_dataset(args.data_dir)
    train_x, _ = quantize.quantize(data["train_images"][..., None], args.q_levels)
    test_x, _ = quantize.quantize(data["test_images"][..., None], args.q_levels)
    numpy.random.seed(args.seed)
    net, X, logits_fn = build(args.q_levels)
    y = T.ivector("y")
    cost = T.nnet.categorical_crossentropy(T.nnet.softmax(net.output()), y).mean()
    step, _ = compile_train_step([X, y], cost, net.params, args.lr, grad_clip=0)
    labels = data["train_labels"].astype(numpy.int32)
    for epoch in range(args.epochs):
        start = time.time()
        order = numpy.random.RandomState([args.seed, epoch]).permutation(len(train_x))
        costs = [float(step(train_x[idx], labels[idx]))
                 for idx in numpy.array_split(order, len(order) // args.batch_size)]
        acc = accuracy(logits_fn, test_x, data["test_labels"])
        print("epoch {}: train cost {:.4f}, test accuracy {:.4f} ({:.0f} s)".format(
            epoch + 1, numpy.mean(costs), acc, time.time() - start), flush=True)
    meta = {"model": "classifier", "q_levels": args.q_levels, "epochs": args.epochs,
            "test_accuracy": acc}
    save_arrays(args.out, {p.name: p.get_value() for p in net.params}, meta=meta)
    print("wrote {} (test accuracy {:.4f})".format(args.out, acc))


def main(argv=None):
    args = parse_args(argv)
    try:
        train(args)
    except (mnist_data.DataError, OSError) as err:
        print("error: {}".format(err), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
