"""Evaluate a PixelCNN checkpoint on the MNIST test set (or its validation images).

    python evaluate.py --checkpoint pretrained/pixelconv.npz
    python evaluate.py --checkpoint runs/mnist/epoch_012_val_0.14050.npz --split valid
    python evaluate.py --checkpoint pretrained/gated_class.npz --sample-accuracy
    python evaluate.py --checkpoint pretrained/gated_embedding.npz --sample-accuracy --limit 1000

Prints the test negative log-likelihood in nats per sub-pixel, bits per
dimension and nats per image of the test images, or with ``--split valid`` of
the validation images ``train_mnist.py`` held out of training (the last
``--valid-split`` training images, binarized as the run binarized them): the
figure for choosing between checkpoints, leaving the test images to be scored
once, at the end. The split is the checkpoint's own: recorded in it, or for
checkpoints written before it was, read from its run's config.json beside it
(pretrained/<name>_run/config.json for pretrained/<name>.npz). A checkpoint
whose run held no image out, whose split cannot be known, or a --valid-split
reaching into the images it trained on is refused. For class-conditional checkpoints also the NLL
under wrong labels (the mean over the nine shifts (label + k) % 10; nine more
passes over the images, which ``--skip-wrong-labels`` leaves out). With
``--sample-accuracy`` it draws digits and scores them with the project's
classifier (``train_classifier.py``): for class-conditional checkpoints,
``--per-label`` digits of each label (the ``--labels all`` grid) and the
share classified as their label; for embedding checkpoints, one digit like
each of the first ``--like-samples`` images and the share classified
as that image's digit. ``--temperature`` and, for class-conditional
checkpoints, ``--guidance`` (``sampling.guided``) change how the digits are
drawn. The first line says which weights the checkpoint holds, as it records
them (``lib.checkpoint.describe_weights``: a moving average of the training
steps', the raw ones, or a mean of checkpoints). The last line is
machine-readable, e.g.

    nll=0.1428 bits_per_dim=0.2060 nats_per_image=111.9 label_accuracy=0.93

For embedding checkpoints the NLL is conditioned on f(x) of the very image
scored: a conditional figure, not the image's likelihood, printed as
``nll_given_fx``, ``bits_per_dim_given_fx`` and ``nats_per_image_given_fx``.

Exit codes: 0 done, 2 bad input (arguments, checkpoint, data, classifier,
validation split, a missing BLAS library) or an NLL that is not finite, 130
stopped by Ctrl-C.
"""
import argparse
import math
import sys

import numpy
from tqdm import tqdm

import lib  # noqa: F401  (configures Theano before it is imported)
import theano
import theano.tensor as T

import quantize
import sampling
from data import binarized, mnist
from lib import WrapperLayer, backend
from lib.checkpoint import (CheckpointError, describe_weights, non_finite, read_checkpoint,
                            recorded_data)
from lib.training import nll_per_example
from models import build as builder
from models.classifier import Classifier
from training import run_folder

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
DEFAULT_CLASSIFIER = "pretrained/classifier.npz"
DRAW_CHUNK = 5000  # digits per sampler call (--sample-accuracy); 5,000 fit here


class UsageError(Exception):
    """Bad input: reported in one line, exit code 2."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Test-set (or validation) likelihood of a PixelCNN checkpoint and, on "
                    "request, how often a classifier recognises its conditional samples.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="our .npz (or a training state.npz) or the original's pickle")
    p.add_argument("--graph", choices=builder.GRAPHS, default="fast",
                   help="fast: the channels-last graph with compiled kernels; faithful: "
                        "the original layout (same numbers to float32 rounding)")
    p.add_argument("--data-dir", default=None,
                   help="MNIST folder (default: $MNIST_DIR, else the per-user cache)")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist", "binarized-mnist"],
                   default="mnist",
                   help="the data set to score; binarized-mnist: the fixed binarization "
                        "when the data folder holds binarized_mnist_test.amat, else MNIST's "
                        "test images binarized once with a fixed seed (close to the fixed "
                        "benchmark, not the same); needs a Q_LEVELS 2 checkpoint")
    p.add_argument("--split", choices=["test", "valid"], default="test",
                   help="test: the test images; valid: the validation images train_mnist.py "
                        "held out of training (the last --valid-split training images, "
                        "binarized as the run did), for choosing between checkpoints")
    p.add_argument("--valid-split", type=int, default=None, metavar="N",
                   help="with --split valid: score the last N training images (default: "
                        "the N the checkpoint's run held out, recorded in the checkpoint or "
                        "in its run's config.json beside it); refused when they reach into "
                        "the images it trained on")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the MD5 and standard-size checks of the data files (for "
                        "small or custom IDX files)")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N images of the split (default: all)")
    p.add_argument("--batch-size", type=int, default=100,
                   help="images per forward pass (speed and memory only)")
    p.add_argument("--skip-wrong-labels", action="store_true",
                   help="class-conditional: leave out the NLL under wrong labels (nine "
                        "more passes over the images)")
    p.add_argument("--sample-accuracy", action="store_true",
                   help="also draw conditional samples and score them with --classifier")
    p.add_argument("--classifier", default=DEFAULT_CLASSIFIER,
                   help="weights written by train_classifier.py")
    p.add_argument("--per-label", type=int, default=10,
                   help="class-conditional: samples drawn per digit")
    p.add_argument("--like-samples", type=int, default=100,
                   help="embedding-conditioned: one sample like each of the first N "
                        "images of --split")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample draws")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="sampling temperature of the draws (below 1: each pixel's softmax "
                        "sharpened); the last line names it when it is not 1")
    p.add_argument("--guidance", type=float, default=0.0,
                   help="class-conditional: label-guided draws with this weight w, "
                        "p(x|y)^(1+w) / p(x)^w per pixel (0: plain sampling); the last "
                        "line names it when it is not 0")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (for logs)")
    args = p.parse_args(argv)
    for name in ("limit", "batch_size", "per_label", "like_samples", "valid_split"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error("--{} must be at least 1, got {}".format(name.replace("_", "-"), value))
    if args.seed < 0:
        p.error("--seed must be at least 0, got {}".format(args.seed))
    if not (args.guidance >= 0 and math.isfinite(args.guidance)):
        p.error("--guidance must be a finite number >= 0, got {}".format(args.guidance))
    if args.guidance and not args.sample_accuracy:
        p.error("--guidance changes only the --sample-accuracy draws; add --sample-accuracy")
    if not (args.temperature > 0 and math.isfinite(args.temperature)):
        p.error("--temperature must be a finite number > 0, got {}".format(args.temperature))
    return args


def load_network(path, graph="fast"):
    """The network of a checkpoint, in the fast or the faithful graph, with its weights."""
    return load_checkpoint(path, graph)[0]


def load_checkpoint(path, graph="fast"):
    """(network, description or None) of a checkpoint; UsageError for a file that is
    not a PixelCNN of ours or whose weights are not all finite."""
    try:
        arrays, meta = read_checkpoint(path)
        config, weights = builder.network_of(arrays, meta, path)
        if config.get("model") == "classifier":
            raise UsageError("{} holds train_classifier.py's digit classifier (for "
                             "--classifier), not a PixelCNN: give --checkpoint a model of "
                             "train_mnist.py, e.g. pretrained/pixelconv.npz".format(path))
        bad = non_finite(weights)
        if bad:
            raise UsageError("{}: {} hold{} NaN or infinite values (its run diverged, or it "
                             "averages such a checkpoint): use an earlier checkpoint".format(
                                 path, ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else ""),
                                 "s" if len(bad) == 1 else ""))
        net = builder.build(config, graph=graph)
        builder.load_weights(net, weights, path)
    except (CheckpointError, ValueError) as err:
        raise UsageError(str(err))
    return net, meta


def run_split(args, config, meta):
    """(split, source) of the checkpoint for --split valid (run_folder.recorded_split);
    UsageError, before any data is read, when it cannot be known or its run held
    no image out (a --valid-split can then be given only with a --train-limit)."""
    split, source = run_folder.recorded_split(args.checkpoint, meta, config)
    if split is None:
        raise UsageError("{}: --split valid cannot tell the images it held out from those it "
                         "trained on. Put its run's config.json beside it, or score it with "
                         "--split test".format(source))
    if split["valid_split"] == 0 and (split["train_limit"] is None or args.valid_split is None):
        raise UsageError(
            "{} held no training image out (--valid-split 0 in {}: its run validated on the "
            "test images{}), so --split valid would score images it trained on. {}".format(
                args.checkpoint, source, "" if split["train_limit"] is None else
                " and trained on the first {} training images".format(split["train_limit"]),
                "Score it with --split test; to choose between checkpoints without the "
                "test images, train with --valid-split N (10000 by default)"
                if split["train_limit"] is None else
                "Give --valid-split N to score the last N training images, which it never "
                "saw when N is at most the training split's size minus {}".format(
                    split["train_limit"])))
    return split, source


def held_out_count(args, split, source, num_images):
    """The --valid-split to score (the run's own unless given) of a training split of
    ``num_images``; UsageError when those images reach into the ones it trained on."""
    num = split["valid_split"] if args.valid_split is None else args.valid_split
    trained = mnist.trained_count(num_images, split["valid_split"], split["train_limit"])
    run = "--valid-split {}{}, in {}".format(
        split["valid_split"], "" if split["train_limit"] is None else
        " --train-limit {}".format(split["train_limit"]), source)
    overlap = trained - (num_images - num)
    if overlap > 0:
        raise UsageError(
            "--valid-split {} would score {} image{} {} was trained on: its run ({}) trained "
            "on the first {} of the {} training images. {}".format(
                num, overlap, "s" if overlap > 1 else "", args.checkpoint, run, trained,
                num_images,
                "Leave --valid-split out to score the {} it held out{}".format(
                    split["valid_split"], ", or give at most {}".format(num_images - trained)
                    if num_images - trained != split["valid_split"] else "")
                if split["valid_split"] else
                "Give at most --valid-split {}".format(num_images - trained)))
    if num >= num_images:
        raise UsageError("the training split in the data folder holds {} images, not more "
                         "than the {} to score: is it the data {} was trained on "
                         "(--data-dir, --dataset)?".format(num_images, num, args.checkpoint))
    print("validation images: the last {} of the {} training images (its run: {})".format(
        num, num_images, run), flush=True)
    return num


def scored_images(args, q_levels, meta, split=None):
    """(inputs, targets, labels) of the first --limit images of --split; ``meta``: the
    checkpoint's description, ``split``: (split, source) of run_split for --split valid."""
    try:
        if args.split == "valid":
            pool = binarized.load_training_pool(args.data_dir, args.dataset, q_levels,
                                                verify=not args.no_verify)
            num = held_out_count(args, *split, len(pool["train_images"]))
            data = binarized.split_pool(pool, num)
        else:
            data = binarized.load_test_split(args.data_dir, args.dataset, q_levels,
                                             verify=not args.no_verify)
    except (mnist.DataError, ValueError) as err:
        raise UsageError(str(err))
    warning = binarized.other_dataset_warning(args.checkpoint, recorded_data(meta),
                                              args.dataset, data.get("binarization"))
    if warning:
        print(warning, file=sys.stderr, flush=True)
    images, labels = data[args.split + "_images"], data[args.split + "_labels"]
    if args.limit is not None:
        images = images[:args.limit]
        labels = None if labels is None else labels[:args.limit]
    inputs, targets = quantize.quantize(images[..., None], q_levels)
    return inputs, targets, labels


def finite(nll, what, path):
    """``nll`` (nats) when it is finite; UsageError otherwise."""
    if not math.isfinite(nll):
        raise UsageError("the {} of {} is {}: its weights give some image no finite "
                         "likelihood; use an earlier checkpoint of its run".format(what, path,
                                                                                   nll))
    return nll


def conditions(net, inputs, labels):
    """The condition rows of a conditional model for these images, else None."""
    if net.encoder is not None:
        return net.embed(inputs)
    if net.H is not None:
        return builder.one_hot(labels)
    return None


def compile_nll(net):
    """Compiled (inputs, [condition,] targets) -> summed NLL in nats of each image (n,)."""
    X_r = T.itensor4("X_r")
    return theano.function(net.inputs + [X_r], nll_per_example(net.logits, X_r))


def nll_per_image(fn, inputs, targets, condition, batch_size, desc="test NLL", progress=True):
    """``fn`` (from compile_nll) over the images in batches: (n,) float64."""
    out = []
    starts = range(0, len(inputs), batch_size)
    for s in tqdm(starts, desc=desc, unit="batch", leave=False, disable=not progress):
        extra = [condition[s:s + batch_size]] if condition is not None else []
        out.append(fn(inputs[s:s + batch_size], *extra, targets[s:s + batch_size]))
    return numpy.concatenate(out).astype(numpy.float64)


def load_classifier(path, q_levels):
    """Compiled (n, 28, 28, 1) inputs -> predicted digits, from train_classifier.py's file."""
    try:
        arrays, meta = read_checkpoint(path)
    except CheckpointError as err:
        raise UsageError("{} (train one with train_classifier.py)".format(err))
    if not meta or meta.get("model") != "classifier":
        raise UsageError("{} is not a classifier written by train_classifier.py".format(path))
    if meta.get("q_levels") != q_levels:
        raise UsageError("the classifier reads {} grey levels, the checkpoint {}".format(
            meta.get("q_levels"), q_levels))
    X = T.tensor4("X")
    net = Classifier(WrapperLayer(X))
    values = {p.name: p for p in net.params}
    if set(values) != set(arrays):
        raise UsageError("{} does not hold the classifier's parameters".format(path))
    for name, p in values.items():
        if arrays[name].shape != p.get_value(borrow=True).shape:
            raise UsageError("{}: {} has shape {}".format(path, name, arrays[name].shape))
        p.set_value(arrays[name].astype(numpy.float32))
    fn = theano.function([X], net.output().argmax(axis=1))
    return lambda x: numpy.concatenate([fn(x[s:s + 500]) for s in range(0, len(x), 500)])


def number_of_draws(args, net, inputs):
    """How many digits --sample-accuracy draws; says so when --like-samples asks for
    more draws than there are images of --split to draw like."""
    if net.encoder is None:
        return 10 * args.per_label
    if args.like_samples > len(inputs):
        print("note: only {} {} images{}, so {} draws are scored, not --like-samples "
              "{}".format(len(inputs), args.split,
                          " (--limit {})".format(args.limit) if args.limit else "",
                          len(inputs), args.like_samples), file=sys.stderr, flush=True)
    return min(args.like_samples, len(inputs))


def draw_chunk(args, net, inputs, labels, start, stop):
    """(bins (n, 28, 28, 1), intended digits (n,)) of draws start..stop-1; the first
    DRAW_CHUNK draws use --seed itself (as one call for all would), later chunks
    the seed [--seed, chunk number]."""
    chunk = start // DRAW_CHUNK
    seed = args.seed if chunk == 0 else [args.seed, chunk]
    if net.encoder is not None:
        wanted, condition = labels[start:stop], net.embed(inputs[start:stop])
    else:  # the --labels all order: --per-label 0s, then 1s, ...
        wanted = numpy.arange(start, stop) // args.per_label
        condition = builder.one_hot(wanted)
    if args.guidance:
        bins = sampling.sample_with_guidance(net, wanted, 28, 28, args.guidance, seed=seed,
                                             temperature=args.temperature,
                                             progress=not args.no_progress)
    else:
        bins = sampling.sample(net, len(wanted), 28, 28, seed=seed, condition=condition,
                               temperature=args.temperature, progress=not args.no_progress)
    return bins, wanted


def sample_accuracy(args, net, inputs, labels, classify):
    """(name, share of samples classified as intended) for a conditional model; the
    digits are drawn DRAW_CHUNK at a time, so memory does not grow with their number."""
    q = net.config["q_levels"]
    name = "like_accuracy" if net.encoder is not None else "label_accuracy"
    total = number_of_draws(args, net, inputs)
    hits, counts = numpy.zeros(10, dtype=numpy.int64), numpy.zeros(10, dtype=numpy.int64)
    for start in range(0, total, DRAW_CHUNK):
        bins, wanted = draw_chunk(args, net, inputs, labels, start, min(start + DRAW_CHUNK,
                                                                         total))
        right = classify(quantize.targets_to_inputs(bins, q)) == wanted
        hits += numpy.bincount(wanted[right], minlength=10)
        counts += numpy.bincount(wanted, minlength=10)
    print("{} by digit: {}".format(name, " ".join(
        "{}:{}/{}".format(d, hits[d], counts[d]) for d in range(10) if counts[d])), flush=True)
    return name, float(hits.sum()) / float(counts.sum())


def evaluate(args):
    """Run as ``args`` says; returns the figures as an ordered list of (name, value)."""
    if backend.blas_problem():
        raise UsageError(backend.blas_problem())
    net, meta = load_checkpoint(args.checkpoint, args.graph)
    print("weights: {}".format(describe_weights(meta)), flush=True)
    if args.sample_accuracy and net.H is None:
        raise UsageError("--sample-accuracy needs a conditional checkpoint (class or "
                         "embedding); this one is not conditional")
    if args.guidance and (net.encoder is not None or net.H is None):
        raise UsageError("--guidance needs a class-conditional checkpoint")
    q = net.config["q_levels"]
    # checked before the long passes, not after them
    classify = load_classifier(args.classifier, q) if args.sample_accuracy else None
    split = run_split(args, net.config, meta) if args.split == "valid" else None
    inputs, targets, labels = scored_images(args, q, meta, split)
    if labels is None and net.H is not None:
        raise UsageError("the fixed binarized MNIST files hold no labels, which this "
                         "conditional checkpoint needs")
    subpixels = targets[0].size
    fn, progress = compile_nll(net), not args.no_progress
    split_name = "validation" if args.split == "valid" else "test"
    per_image = nll_per_image(fn, inputs, targets, conditions(net, inputs, labels),
                              args.batch_size, desc=split_name + " NLL", progress=progress)
    nll = finite(per_image.mean(), split_name + " NLL", args.checkpoint) / subpixels
    # an embedding checkpoint is conditioned on f(x) of the very image it scores
    given, suffix = ((" given its own embedding f(x) (a conditional figure, not the "
                      "image's likelihood)", "_given_fx") if net.encoder is not None
                     else ("", ""))
    figures = [("nll" + suffix, nll), ("bits_per_dim" + suffix, nll / math.log(2.0)),
               ("nats_per_image" + suffix, per_image.mean())]
    print("{} NLL{} on {} images: {:.5f} nats/sub-pixel, {:.5f} bits/dim, {:.2f} "
          "nats/image".format(split_name, given, len(inputs), *[v for _, v in figures]),
          flush=True)
    if net.H is not None and net.encoder is None and not args.skip_wrong_labels:
        wrong = finite(numpy.mean([nll_per_image(fn, inputs, targets,
                                                 builder.one_hot((labels + k) % 10),
                                                 args.batch_size,
                                                 "wrong labels, pass {}/9".format(k), progress
                                                 ).mean() / subpixels
                                   for k in range(1, 10)]), "wrong-label NLL", args.checkpoint)
        figures.append(("wrong_label_nll", wrong))
        print("with wrong labels: {:.5f} nats/sub-pixel".format(wrong), flush=True)
    if args.sample_accuracy:
        figures.append(sample_accuracy(args, net, inputs, labels, classify))
        print("{}: {:.3f}".format(*figures[-1]), flush=True)
        if args.temperature != 1.0:
            figures.append(("temperature", args.temperature))
        if args.guidance:
            figures.append(("guidance", args.guidance))
    print(" ".join("{}={:.4f}".format(k, v) if not k.startswith("nats_per_image")
                   else "{}={:.1f}".format(k, v) for k, v in figures))
    return figures


def main(argv=None):
    args = parse_args(argv)
    try:
        evaluate(args)
    except (UsageError, OSError) as err:
        print("error: {}".format(err), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("aborted (Ctrl-C); nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
