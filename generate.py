"""Sample digits pixel by pixel from a trained PixelCNN checkpoint.

    python generate.py                            # the shipped model (pretrained/pixelconv.npz)
    python generate.py --checkpoint runs/mnist/epoch_020_val_0.14300.npz
    python generate.py --checkpoint original_epoch_19.pkl --sampler naive --out naive.png
    python generate.py --checkpoint ckpt.npz --reconstruct 25 --out recon.png
    python generate.py --checkpoint class_ckpt.npz --labels all       # one row per digit
    python generate.py --checkpoint embedding_ckpt.npz --interpolate 3 7 --steps 8

Writes a grid PNG (5x5 for 25 images) and the images as .npy beside it
(uint8 grey levels 0..255, shape (num, height, width) or (num, height, width, 3)).
The model (kind, layers, DIM, input_dim, Q_LEVELS, conditioning) is read
from the checkpoint's description, or off the parameter shapes for the
original code's checkpoints. Checkpoints may be ours (.npz, also a training
state.npz) or the original code's pickles; loading never runs code from them.
"""
import argparse
import os
import sys

import numpy

import quantize
from data import pictures
from lib.checkpoint import CheckpointError

EXIT_BAD_INPUT, EXIT_FAILED = 2, 1
DEFAULT_NUM = 25
EXIT_CODES = """exit codes:
  0  the pictures were written
  1  the run failed (the output could not be written)
  2  bad input: an invalid option, a checkpoint that does not load or fit,
     missing or damaged data, an unreadable --like picture"""


class UsageError(Exception):
    """Bad input: reported as one line and exit code 2."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Adds "(default: X)" to an option's help when X says something: not for
    options without a value, and not when the help already tells the default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return text + " (default: %(default)s)"


def parse_args(argv=None):
    """The command line (see ``build_parser``)."""
    return build_parser().parse_args(argv)


def build_parser():
    """The argument parser; every option has a help text."""
    p = argparse.ArgumentParser(
        description="Draw images from a PixelCNN checkpoint, one pixel at a time in raster\n"
                    "order, each from the model's softmax given the pixels before it.",
        epilog=EXIT_CODES, formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", default=None,
                   help="parameters to load: our .npz (or a training state.npz) or a "
                        "pickle written by the original code. Without it, the shipped "
                        "model for the mode: pretrained/pixelconv.npz; with --label or "
                        "--labels pretrained/gated_class.npz; with --like, "
                        "--like-test-index or --interpolate pretrained/gated_embedding.npz")
    p.add_argument("--num", type=int, default=None,
                   help="how many images to draw (default 25; with --labels all, per "
                        "digit: num // 10, default 10)")
    p.add_argument("--label", type=int, default=None,
                   help="class-conditional checkpoints: draw this digit (0..9)")
    p.add_argument("--labels", default=None, metavar="all",
                   help="class-conditional checkpoints: 'all' draws a grid with one row "
                        "per digit")
    p.add_argument("--seed", type=int, default=0, help="same seed, same images")
    p.add_argument("--out", default="samples.png",
                   help="grid picture to write; the images also go to the same name .npy")
    p.add_argument("--sampler", choices=["cached", "naive"], default="cached",
                   help="cached: reuse the work of earlier pixels (same images, much "
                        "faster); naive: rerun the whole network for every pixel, as the "
                        "original does")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="divide the logits by T, a finite number > 0, before the "
                        "softmax (<1: sharper)")
    p.add_argument("--height", type=int, default=28, help="image height in pixels")
    p.add_argument("--width", type=int, default=28, help="image width in pixels")
    p.add_argument("--reconstruct", type=int, metavar="N", default=None,
                   help="instead of sampling, redraw each pixel of the first N test "
                        "images given the true pixels before it (N at most the test "
                        "split's size, 10,000 for MNIST; needs only the test files)")
    e = p.add_argument_group("embedding-conditioned checkpoints (--conditional embedding)")
    e.add_argument("--like", metavar="IMAGE.png", default=None,
                   help="draw new digits from the embedding f(image) of a 28x28 greyscale "
                        "picture")
    e.add_argument("--like-test-index", type=int, metavar="N", default=None,
                   help="draw new digits like test image N")
    e.add_argument("--interpolate", type=int, nargs=2, metavar=("A", "B"), default=None,
                   help="draw along the straight line between the embeddings of test "
                        "images A and B: one row per draw (--num rows, default 4)")
    e.add_argument("--steps", type=int, default=8,
                   help="points on the line for --interpolate, ends included")
    d = p.add_argument_group("test images (for --reconstruct, --like-test-index and "
                             "--interpolate)")
    d.add_argument("--data-dir", default=None,
                   help="folder with the test split's IDX files (default: $MNIST_DIR, else "
                        "a per-user cache, downloading when absent)")
    d.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist",
                   help="which dataset's test images")
    d.add_argument("--no-verify", action="store_true",
                   help="skip the MD5 and standard-size checks of the data files")
    o = p.add_argument_group("model size (read off the checkpoint; these override it)")
    o.add_argument("--num-layers", type=int, default=None,
                   help="depth, counted as train_mnist.py --help describes")
    o.add_argument("--dim", type=int, default=None, help="feature maps per stack (DIM)")
    o.add_argument("--input-dim", type=int, default=None,
                   help="channels per pixel: 1 (grey) or 3 (colour)")
    o.add_argument("--q-levels", type=int, default=None,
                   help="grey levels per channel (Q_LEVELS)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def check_args(args):
    if args.num is not None and args.num < 1:
        raise UsageError("--num must be at least 1, got {}".format(args.num))
    if args.reconstruct is not None and args.reconstruct < 1:
        raise UsageError("--reconstruct must be at least 1, got {}".format(args.reconstruct))
    if not (args.temperature > 0 and numpy.isfinite(args.temperature)):
        raise UsageError("--temperature must be a finite number > 0, got {}".format(
            args.temperature))
    if args.seed < 0:
        raise UsageError("--seed must be at least 0, got {}".format(args.seed))
    if args.steps < 2:
        raise UsageError("--steps must be at least 2, got {}".format(args.steps))
    if sum(x is not None for x in (args.like, args.like_test_index, args.interpolate,
                                   args.label, args.labels, args.reconstruct)) > 1:
        raise UsageError("choose one of --label, --labels, --like, --like-test-index, "
                         "--interpolate, --reconstruct")
    if args.height < 1 or args.width < 1:
        raise UsageError("--height and --width must be at least 1")
    if not args.out.lower().endswith(".png"):
        raise UsageError("--out must name a .png file, got {}".format(args.out))
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UsageError("cannot write {}: folder {} does not exist or is not writable".format(
            args.out, folder))


PRETRAINED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")


def default_checkpoint(args):
    """The shipped checkpoint for the mode ``args`` asks for."""
    if args.label is not None or args.labels is not None:
        name = "gated_class.npz"
    elif args.like is not None or args.like_test_index is not None or args.interpolate:
        name = "gated_embedding.npz"
    else:
        name = "pixelconv.npz"
    path = os.path.join(PRETRAINED, name)
    if not os.path.isfile(path):
        raise UsageError("no --checkpoint given and the shipped {} is not there; train a "
                         "model with train_mnist.py and pass --checkpoint".format(path))
    return path


def load_checkpoint(args):
    """(config, weights renamed to the builder's prefix) from --checkpoint (or the
    shipped one for the mode) and overrides."""
    from models import build as builder
    shipped = args.checkpoint is None
    if shipped:
        args.checkpoint = default_checkpoint(args)
    try:
        config, weights = builder.read_network_checkpoint(args.checkpoint)
    except (CheckpointError, ValueError) as err:
        raise UsageError(str(err))
    if shipped:
        print("loaded the shipped {}".format(os.path.relpath(args.checkpoint)), flush=True)
    for key in ("num_layers", "dim", "input_dim", "q_levels"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    limit = builder.condition_map_shape(config)
    if limit is not None and (args.height > limit[0] or args.width > limit[1]):
        raise UsageError("{} has a condition map of {} x {} positions: --height and --width "
                         "can be at most that, got {} x {}".format(
                             args.checkpoint, limit[0], limit[1], args.height, args.width))
    return config, weights


def build_with_weights(config, weights, source):
    """The Theano network for ``config`` holding the checkpoint's weights; a
    checkpoint that does not fit raises UsageError listing every problem."""
    from models import build as builder
    net = builder.build(config)
    try:
        builder.load_weights(net, weights, source)
    except CheckpointError as err:
        raise UsageError(str(err))
    return net


def load_test_split(args):
    """The --dataset test images (n, 28, 28) uint8 and labels (n,); only the test
    split's two files are read."""
    from data import mnist
    try:
        data = mnist.load_dataset(args.data_dir, dataset=args.dataset,
                                  verify=not args.no_verify, splits=("test",))
    except mnist.DataError as err:
        raise UsageError(str(err))
    return data["test_images"], data["test_labels"]


def quantised_test_images(args, indices, q_levels):
    """Quantised test images ``indices`` as (n, 28, 28, 1) bins."""
    images, _ = load_test_split(args)
    for i in indices:
        if not 0 <= i < len(images):
            raise UsageError("test image index {} is outside 0..{}".format(
                i, len(images) - 1))
    return quantize.to_targets(images[list(indices)], q_levels)[..., None]


def reconstruction_inputs(args, net):
    """(true bins (n, 28, 28, 1), their conditions or None) of the first --reconstruct
    test images; a conditional model gets each image's own label or embedding."""
    from models import build as builder
    images, labels = load_test_split(args)
    if args.reconstruct > len(images):
        raise UsageError("--reconstruct {} asks for more images than the test split's "
                         "{}".format(args.reconstruct, len(images)))
    q = net.config["q_levels"]
    given = quantize.to_targets(images[:args.reconstruct], q)[..., None]
    if net.encoder is not None:
        return given, net.embed(quantize.targets_to_inputs(given, q))
    if net.H is not None:
        return given, builder.one_hot(labels[:args.reconstruct])
    return given, None


def read_picture(path, q_levels):
    """A greyscale 28x28 picture file -> (1, 28, 28, 1) bins."""
    from PIL import Image
    try:
        picture = Image.open(path)
        picture.load()
    except (OSError, ValueError) as err:
        raise UsageError("cannot read picture {}: {}".format(path, err))
    if picture.size != (28, 28):
        raise UsageError("{} is {}x{} pixels; --like needs a 28x28 picture (white digit on "
                         "black, as MNIST)".format(path, *picture.size))
    if picture.mode not in ("L", "1", "I", "I;16", "F"):
        print("note: {} is a {} picture; using its grey levels (ITU-R 601 luma)".format(
            path, picture.mode), flush=True)
    pixels = numpy.asarray(picture.convert("L"), dtype=numpy.uint8)
    return quantize.to_targets(pixels[None, :, :, None], q_levels)


def embeddings_for(args, net):
    """(condition rows or None, grid shape or None) from --like/--like-test-index/--interpolate."""
    if args.like is None and args.like_test_index is None and args.interpolate is None:
        return None, None
    if net.encoder is None:
        raise UsageError("--like/--interpolate need a checkpoint trained with --conditional "
                         "embedding; this one has no image encoder")
    q = net.config["q_levels"]
    num = args.num or DEFAULT_NUM
    if args.interpolate is not None:
        ends = quantised_test_images(args, args.interpolate, q)
        ends = net.embed(quantize.targets_to_inputs(ends, q))
        rows = args.num or 4
        t = numpy.linspace(0.0, 1.0, args.steps, dtype=numpy.float32)[:, None]
        line = (1 - t) * ends[0] + t * ends[1]                  # (steps, embed_dim)
        return numpy.tile(line, (rows, 1)), (rows, args.steps)
    bins = read_picture(args.like, q) if args.like is not None \
        else quantised_test_images(args, [args.like_test_index], q)
    embedding = net.embed(quantize.targets_to_inputs(bins, q))
    return numpy.repeat(embedding, num, axis=0), None


def labels_for(args, net, num):
    """(labels (num,) or None, grid shape or None) from --label / --labels."""
    if args.label is None and args.labels is None:
        if net.H is not None and net.encoder is None:
            raise UsageError("this checkpoint is class-conditional: choose a digit with "
                             "--label D or --labels all")
        return None, None
    if net.H is None or net.encoder is not None:
        raise UsageError("--label/--labels need a class-conditional checkpoint (trained "
                         "with --model gated --conditional class); this one is not")
    if args.labels is not None:
        if args.labels != "all":
            raise UsageError("--labels takes 'all', got {!r}".format(args.labels))
        per_row = max(1, args.num // 10) if args.num is not None else 10
        return numpy.repeat(numpy.arange(10), per_row), (10, per_row)
    if not 0 <= args.label <= 9:
        raise UsageError("--label must be a digit 0..9, got {}".format(args.label))
    return numpy.full(num, args.label), None


def generate(args):
    """Run as ``args`` says; returns the drawn bins (num, height, width, input_dim)."""
    import sampling
    from models import build as builder
    check_args(args)
    config, weights = load_checkpoint(args)
    net = build_with_weights(config, weights, args.checkpoint)
    if args.reconstruct:
        given, condition = reconstruction_inputs(args, net)
        (num, height, width), grid = given.shape[:3], None
    else:
        given = None
        condition, grid = embeddings_for(args, net)
        if condition is None:
            labels, grid = labels_for(args, net, args.num or DEFAULT_NUM)
            condition = None if labels is None else builder.one_hot(labels)
        if condition is None and net.encoder is not None:
            raise UsageError("this checkpoint is conditioned on image embeddings: use "
                             "--like, --like-test-index or --interpolate")
        num = len(condition) if condition is not None else (args.num or DEFAULT_NUM)
        height, width = args.height, args.width
    used = "cached" if args.sampler == "cached" and sampling.has_cached_sampler(config) \
        else "naive"
    print("sampling {} images with the {} sampler{}".format(
        num, used, "" if used == args.sampler else " (this model has no cached one)"),
        flush=True)
    bins = sampling.sample(net, num, height, width, seed=args.seed,
                           temperature=args.temperature, progress=not args.no_progress,
                           given=given, sampler=args.sampler, condition=condition)
    row_labels = list(range(10)) if args.labels is not None and not args.reconstruct else None
    save_outputs(args.out, quantize.to_display(bins, config["q_levels"]), grid, row_labels)
    return bins


def save_outputs(png_path, images, grid=None, row_labels=None):
    """Write the grid PNG and the .npy; on failure neither is left behind."""
    from lib.checkpoint import atomic_write
    images = images[..., 0] if images.shape[-1] == 1 else images
    npy_path = os.path.splitext(png_path)[0] + ".npy"
    atomic_write(npy_path, lambda f: numpy.save(f, images))
    try:
        pictures.save_grid(png_path, images, *(grid or (None, None)), row_labels=row_labels)
    except BaseException:
        os.remove(npy_path)
        raise
    print("wrote {} and {}".format(png_path, npy_path))


def main(argv=None):
    """Command-line entry point; returns the exit code (see ``EXIT_CODES``)."""
    args = parse_args(argv)
    try:
        generate(args)
    except (UsageError, CheckpointError) as err:
        print("error: {}".format(err), file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:
        print("error: {}".format(err), file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
