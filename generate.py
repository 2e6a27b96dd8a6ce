"""Sample digits pixel by pixel from a trained PixelCNN checkpoint.

    python generate.py                            # the shipped model (pretrained/pixelconv.npz)
    python generate.py --checkpoint runs/mnist/epoch_020_val_0.14300.npz
    python generate.py --checkpoint original_epoch_19.pkl --sampler naive --out naive.png
    python generate.py --checkpoint ckpt.npz --reconstruct 25 --out recon.png
    python generate.py --checkpoint class_ckpt.npz --labels all       # one row per digit
    python generate.py --checkpoint embedding_ckpt.npz --interpolate 3 7 --steps 8
    python generate.py --complete 8 --keep-rows 14 --num 3 --out complete.png

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

EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130
DEFAULT_NUM = 25
DEFAULT_COMPLETIONS, DEFAULT_KEEP_ROWS = 3, 14
TEST_IMAGE_SIZE = 28   # the test images' height and width (MNIST, Fashion-MNIST)
EXIT_CODES = """exit codes:
  0    the pictures were written
  1    the run failed (the output could not be written, or memory ran out)
  2    bad input: an invalid option, a checkpoint that does not load or fit,
       missing or damaged data, an unreadable --like picture, more images than
       memory holds
  130  stopped by Ctrl-C (nothing was written)"""


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
                        "digit: num // 10, default 10; with --complete, completions per "
                        "image, default 3)")
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
    p.add_argument("--complete", type=int, metavar="N", default=None,
                   help="complete the first N test images: their top --keep-rows rows are "
                        "given, the rows below drawn --num times each (default 3). The "
                        "picture has one row per image: the original, the input with the "
                        "hidden rows grey, the completions; the .npy holds the N x num "
                        "completions, image by image. A class-conditional model is given "
                        "each image's label; an embedding model the embedding of the "
                        "input with the hidden rows black")
    p.add_argument("--keep-rows", type=int, metavar="R", default=None,
                   help="--complete: how many top rows of each test image are given, "
                        "0 .. 27 (default 14)")
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
    d = p.add_argument_group("test images (for --reconstruct, --complete, --like-test-index "
                             "and --interpolate)")
    d.add_argument("--data-dir", default=None,
                   help="folder with the test split's IDX files (default: $MNIST_DIR, else "
                        "a per-user cache, downloading when absent)")
    d.add_argument("--dataset", choices=["mnist", "fashion-mnist", "binarized-mnist"],
                   default="mnist",
                   help="which dataset's test images; binarized-mnist (Q_LEVELS 2 "
                        "checkpoints): the fixed binarization when the data folder holds "
                        "binarized_mnist_test.amat, else MNIST's test images binarized "
                        "once with a fixed seed, as evaluate.py scores them")
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
    """Raise UsageError for options that are wrong on their own or together, and for an
    output that cannot be written (before any work starts)."""
    if args.num is not None and args.num < 1:
        raise UsageError("--num must be at least 1, got {}".format(args.num))
    for option in ("reconstruct", "complete"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise UsageError("--{} must be at least 1, got {}".format(option, value))
    if not (args.temperature > 0 and numpy.isfinite(args.temperature)):
        raise UsageError("--temperature must be a finite number > 0, got {}".format(
            args.temperature))
    if args.seed < 0:
        raise UsageError("--seed must be at least 0, got {}".format(args.seed))
    if args.steps < 2:
        raise UsageError("--steps must be at least 2, got {}".format(args.steps))
    if sum(x is not None for x in (args.like, args.like_test_index, args.interpolate,
                                   args.label, args.labels, args.reconstruct,
                                   args.complete)) > 1:
        raise UsageError("choose one of --label, --labels, --like, --like-test-index, "
                         "--interpolate, --reconstruct, --complete")
    if args.height < 1 or args.width < 1:
        raise UsageError("--height and --width must be at least 1")
    check_test_image_modes(args)
    check_model_overrides(args)
    check_output(args.out)


def check_test_image_modes(args):
    """--reconstruct and --complete draw at the test images' size; --keep-rows
    belongs to --complete."""
    mode = "--reconstruct" if args.reconstruct else "--complete" if args.complete else None
    if mode and (args.height, args.width) != (TEST_IMAGE_SIZE, TEST_IMAGE_SIZE):
        raise UsageError("{} draws at the test images' own size, {} x {}: leave out --height "
                         "and --width".format(mode, TEST_IMAGE_SIZE, TEST_IMAGE_SIZE))
    if args.keep_rows is not None and not args.complete:
        raise UsageError("--keep-rows applies to --complete only")
    if args.complete and not 0 <= keep_rows(args) < TEST_IMAGE_SIZE:
        raise UsageError("--keep-rows must be from 0 to {} (the test images have {} rows, "
                         "and at least one is drawn), got {}".format(
                             TEST_IMAGE_SIZE - 1, TEST_IMAGE_SIZE, args.keep_rows))


def keep_rows(args):
    """The rows --complete gives (--keep-rows, default 14)."""
    return DEFAULT_KEEP_ROWS if args.keep_rows is None else args.keep_rows


def check_model_overrides(args):
    """The model-size options, each within what any model can take."""
    if args.dim is not None and args.dim < 1:
        raise UsageError("--dim must be at least 1, got {}".format(args.dim))
    if args.num_layers is not None and args.num_layers < 1:
        raise UsageError("--num-layers must be at least 1, got {}".format(args.num_layers))
    if args.input_dim is not None and args.input_dim not in (1, 3):
        raise UsageError("--input-dim must be 1 (grey) or 3 (colour), got {}".format(
            args.input_dim))
    if args.q_levels is not None:
        try:
            quantize.check_levels(args.q_levels)
        except ValueError:
            raise UsageError("--q-levels must be from {} to {}, got {}".format(
                quantize.MIN_LEVELS, quantize.MAX_LEVELS, args.q_levels))


def check_output(png_path):
    """--out must be a .png in a writable folder, and neither it nor the .npy beside it
    a folder: checked before sampling, so that no work is lost and no file removed."""
    if not png_path.lower().endswith(".png"):
        raise UsageError("--out must name a .png file, got {}".format(png_path))
    folder = os.path.dirname(os.path.abspath(png_path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UsageError("cannot write {}: folder {} does not exist or is not writable".format(
            png_path, folder))
    for path in (png_path, npy_path_for(png_path)):
        if os.path.exists(path) and not os.path.isfile(path):
            raise UsageError("cannot write {}: it is a folder (or not a regular file); "
                             "choose another --out".format(path))


def npy_path_for(png_path):
    """The .npy written beside the picture ``png_path``."""
    return os.path.splitext(png_path)[0] + ".npy"


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
    if config.get("model") == "classifier":
        raise UsageError("{} is the digit classifier's file (train_classifier.py; evaluate.py "
                         "--classifier uses it), not a generative model: pass a PixelCNN "
                         "checkpoint, e.g. pretrained/pixelconv.npz".format(args.checkpoint))
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
    try:
        net = builder.build(config)
    except (ValueError, KeyError, TypeError) as err:
        raise UsageError("{}: cannot build its model with these settings ({}); check "
                         "--num-layers, --dim, --input-dim and --q-levels".format(
                             source, err.args[0] if err.args else err))
    try:
        builder.load_weights(net, weights, source)
    except CheckpointError as err:
        raise UsageError(str(err))
    return net


def load_test_split(args, q_levels):
    """The --dataset test images (n, 28, 28) uint8 and labels (n,) (None for the fixed
    binarized MNIST, whose files hold none); only the test split's files are read.
    binarized-mnist needs a model of ``q_levels`` 2. Warns (stderr) when the
    checkpoint was trained on other data, the binarization included."""
    from data import binarized, mnist
    from lib.checkpoint import read_checkpoint
    try:
        data = binarized.load_test_split(args.data_dir, args.dataset, q_levels,
                                         verify=not args.no_verify)
    except (mnist.DataError, ValueError) as err:
        raise UsageError(str(err))
    warning = binarized.other_dataset_warning(
        args.checkpoint, read_checkpoint(args.checkpoint)[1] or {}, args.dataset,
        data.get("binarization"))
    if warning:
        print(warning, file=sys.stderr, flush=True)
    return data["test_images"], data["test_labels"]


def quantised_test_images(args, indices, q_levels):
    """Quantised test images ``indices`` as (n, 28, 28, 1) bins."""
    images, _ = load_test_split(args, q_levels)
    for i in indices:
        if not 0 <= i < len(images):
            raise UsageError("test image index {} is outside 0..{}".format(
                i, len(images) - 1))
    return quantize.to_targets(images[list(indices)], q_levels)[..., None]


def reconstruction_inputs(args, net):
    """(true bins (n, 28, 28, input_dim), their conditions or None) of the first
    --reconstruct test images, grey on every colour for a colour model; a
    conditional model gets each image's own label or embedding."""
    from models import build as builder
    q = net.config["q_levels"]
    images, labels = load_test_split(args, q)
    if args.reconstruct > len(images):
        raise UsageError("--reconstruct {} asks for more images than the test split's "
                         "{}".format(args.reconstruct, len(images)))
    grey = quantize.to_targets(images[:args.reconstruct], q)[..., None]
    given = numpy.repeat(grey, net.config["input_dim"], axis=-1)
    if net.encoder is not None:
        return given, net.embed(quantize.targets_to_inputs(grey, q))
    if net.H is not None:
        return given, builder.one_hot(labels[:args.reconstruct])
    return given, None


def completion_inputs(args, net):
    """(originals (N, 28, 28, input_dim) bins, given top rows (N * K, R, 28, input_dim),
    conditions (N * K, condition_dim) or None) for --complete N, K completions each.

    A class-conditional model gets each image's label; an embedding model the
    embedding of the input it is given: the top rows, the hidden ones black (0).
    """
    from models import build as builder
    c = net.config
    images, labels = load_test_split(args, c["q_levels"])
    n, k, rows = args.complete, completions_per_image(args), keep_rows(args)
    if n > len(images):
        raise UsageError("--complete {} asks for more images than the test split's "
                         "{}".format(n, len(images)))
    originals = quantize.to_targets(images[:n], c["q_levels"])[..., None]
    originals = numpy.repeat(originals, c["input_dim"], axis=-1)   # grey on every colour
    top = numpy.repeat(originals[:, :rows], k, axis=0)
    if net.encoder is not None:
        shown = originals[..., :1].copy()
        shown[:, rows:] = 0
        embedding = net.embed(quantize.targets_to_inputs(shown, c["q_levels"]))
        return originals, top, numpy.repeat(embedding, k, axis=0)
    if net.H is not None:
        if labels is None:
            raise UsageError("these test images have no labels (the fixed binarized MNIST "
                             "files hold none), which this class-conditional checkpoint needs")
        return originals, top, builder.one_hot(numpy.repeat(labels[:n], k))
    return originals, top, None


def completions_per_image(args):
    """--num with --complete: completions of each image (default 3)."""
    return DEFAULT_COMPLETIONS if args.num is None else args.num


def completion_picture(originals, completions, rows, q_levels):
    """The --complete picture's images, one grid row per image: the original, the input
    with the hidden rows (rows .. end) mid grey, then its K completions.

    originals (N, H, W, input_dim) and completions (N * K, H, W, input_dim) bins ->
    (N * (K + 2), H, W, input_dim) uint8 grey levels, and the grid shape (N, K + 2)."""
    n = len(originals)
    k = len(completions) // n
    shown = quantize.to_display(originals, q_levels)
    hidden = shown.copy()
    hidden[:, rows:] = HIDDEN_GREY
    drawn = quantize.to_display(completions, q_levels).reshape((n, k) + shown.shape[1:])
    per_row = numpy.concatenate([shown[:, None], hidden[:, None], drawn], axis=1)
    return per_row.reshape((-1,) + shown.shape[1:]), (n, k + 2)


HIDDEN_GREY = 128   # the hidden rows of a completion's input (the grid's padding too)
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def read_picture(path, q_levels):
    """A greyscale 28x28 picture file -> (1, 28, 28, 1) bins; 16-bit greyscale is
    scaled to 0..255, other wide formats are refused."""
    import warnings
    from PIL import Image
    try:
        with warnings.catch_warnings():   # a large picture is refused below, not warned of
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            picture = Image.open(path)
        if picture.size != (28, 28):   # checked before the pixels are decoded
            raise UsageError("{} is {}x{} pixels; --like needs a 28x28 picture (white digit "
                             "on black, as MNIST)".format(path, *picture.size))
        picture.load()
    except Image.DecompressionBombError as err:
        raise UsageError("{} is far too large to read ({}); --like needs a 28x28 "
                         "picture".format(path, str(err).split(" pixels")[0] + " pixels"))
    except (OSError, ValueError) as err:
        raise UsageError("cannot read picture {}: {}".format(path, err))
    return quantize.to_targets(grey_levels(picture, path)[None, :, :, None], q_levels)


def grey_levels(picture, path):
    """A Pillow picture -> (height, width) uint8 grey levels 0..255."""
    sixteen_bit = picture.mode in SIXTEEN_BIT_MODES or (
        picture.mode == "I" and picture.format == "PNG")   # PNG's 16-bit grey opens as I
    if sixteen_bit:
        values = numpy.asarray(picture, dtype=numpy.int64)
        if values.min() < 0 or values.max() > 65535:
            raise UsageError("{} holds grey values outside 0..65535; save it as an 8-bit "
                             "greyscale picture".format(path))
        return numpy.round(values * (255.0 / 65535.0)).astype(numpy.uint8)
    if picture.mode in ("I", "F") or picture.mode.startswith("I;"):
        raise UsageError("{} is a {} picture (32-bit or floating-point values), whose grey "
                         "scale is unknown; save it as an 8-bit greyscale picture".format(
                             path, picture.mode))
    if picture.mode not in ("L", "1"):
        print("note: {} is a {} picture; using its grey levels (ITU-R 601 luma)".format(
            path, picture.mode), flush=True)
    return numpy.asarray(picture.convert("L"), dtype=numpy.uint8)


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
    from lib import backend
    check_args(args)
    if backend.blas_problem():
        raise UsageError(backend.blas_problem())
    config, weights = load_checkpoint(args)
    net = build_with_weights(config, weights, args.checkpoint)
    check_memory(images_asked(args), config, args)
    plan = what_to_draw(args, net)
    used = "cached" if args.sampler == "cached" and sampling.has_cached_sampler(config) \
        else "naive"
    print("sampling {} images with the {} sampler{}".format(
        plan.num, used, "" if used == args.sampler else " (this model has no cached one)"),
        flush=True)
    bins = sampling.sample(net, plan.num, plan.height, plan.width, seed=args.seed,
                           temperature=args.temperature, progress=not args.no_progress,
                           given=plan.given, sampler=args.sampler, condition=plan.condition,
                           top_rows=plan.top_rows)
    q = config["q_levels"]
    picture, grid = None, plan.grid
    if args.complete:
        picture, grid = completion_picture(plan.originals, bins, keep_rows(args), q)
    save_outputs(args.out, quantize.to_display(bins, q), grid, plan.row_labels, picture)
    return bins


def what_to_draw(args, net):
    """The drawing the options ask for: num images of height x width, with the true
    bins ``given`` (--reconstruct) or the ``top_rows`` given (--complete, which also
    keeps its ``originals``), their ``condition`` (or None), and the picture's ``grid``
    shape and ``row_labels`` (None: the defaults)."""
    from types import SimpleNamespace
    from models import build as builder
    plan = SimpleNamespace(given=None, top_rows=None, originals=None, grid=None,
                           row_labels=None, height=args.height, width=args.width)
    if args.complete:
        plan.originals, plan.top_rows, plan.condition = completion_inputs(args, net)
        plan.num, plan.height, plan.width = len(plan.top_rows), TEST_IMAGE_SIZE, TEST_IMAGE_SIZE
        k, given = completions_per_image(args), keep_rows(args)
        print("completing the first {} test images: {}, the rest drawn {} time{} each".format(
            args.complete, "no row given (--keep-rows 0)" if given == 0 else "row 0 given"
            if given == 1 else "rows 0..{} given".format(given - 1), k, "s" if k > 1 else ""),
            flush=True)
        return plan
    if args.reconstruct:
        plan.given, plan.condition = reconstruction_inputs(args, net)
        plan.num, plan.height, plan.width = plan.given.shape[:3]
        return plan
    plan.condition, plan.grid = embeddings_for(args, net)
    if plan.condition is None:
        labels, plan.grid = labels_for(args, net, args.num or DEFAULT_NUM)
        plan.condition = None if labels is None else builder.one_hot(labels)
    if plan.condition is None and net.encoder is not None:
        raise UsageError("this checkpoint is conditioned on image embeddings: use "
                         "--like, --like-test-index or --interpolate")
    plan.num = len(plan.condition) if plan.condition is not None else (args.num or DEFAULT_NUM)
    if args.labels is not None:
        plan.row_labels = list(range(10))
    return plan


def images_asked(args):
    """How many images the options ask to draw at once."""
    if args.complete:
        return args.complete * completions_per_image(args)
    if args.reconstruct:
        return args.reconstruct
    if args.labels is not None:
        return 10 * (max(1, args.num // 10) if args.num is not None else 10)
    if args.interpolate is not None:
        return (args.num or 4) * args.steps
    return args.num or DEFAULT_NUM


# Bytes per sub-pixel of the arrays every image needs: its random numbers (8), bins
# and grey levels (2), the float inputs (4), the grid picture (2x2 enlarged, 4) and its
# PNG buffers (about 4 more).
BYTES_PER_SUBPIXEL = 22


def memory_needed(num, height, width, config, sampler):
    """A low estimate of the bytes drawing ``num`` images at once takes: the arrays of
    every image, and float32 maps: the cached samplers keep one row of DIM maps per
    layer; the naive sampler's network pass holds at least two whole-image layers."""
    per_image = height * width * config["input_dim"] * BYTES_PER_SUBPIXEL
    maps = 4 * config["dim"] * (config["num_layers"] * width if sampler == "cached"
                                else 2 * height * width)
    return num * (per_image + maps)


def available_memory():
    """Bytes of memory available now (Linux MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(num, config, args):
    """Refuse (UsageError) a number of images whose arrays cannot fit in the memory
    available, before anything is allocated."""
    import sampling
    height, width = (TEST_IMAGE_SIZE, TEST_IMAGE_SIZE) if args.complete or args.reconstruct \
        else (args.height, args.width)
    sampler = "cached" if args.sampler == "cached" and sampling.has_cached_sampler(config) \
        else "naive"
    need, have = memory_needed(num, height, width, config, sampler), available_memory()
    if have is not None and need > have:
        most = max(1, int(num * have / need))
        raise UsageError("{:,} images of {} x {} need at least {} of memory at once, more "
                         "than the {} available: ask for at most about {:,} (run again with "
                         "another --seed for more)".format(num, height, width, size_text(need),
                                                           size_text(have), most))


def size_text(nbytes):
    """Bytes as '3.2 GB' (powers of 1000)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000 or unit == "PB":
            return "{:.0f} {}".format(nbytes, unit) if unit == "bytes" \
                else "{:.1f} {}".format(nbytes, unit)
        nbytes /= 1000.0


def save_outputs(png_path, images, grid=None, row_labels=None, picture=None):
    """Write the .npy of ``images`` (num, height, width[, 3]) uint8 and the grid PNG of
    ``picture`` (the same images when None), both or neither: each goes to a temporary
    file beside its name, and only once both are written are they renamed into place,
    so a failure leaves every existing file as it was."""
    from lib.checkpoint import atomic_write

    def grey(x):
        return x[..., 0] if x.shape[-1] == 1 else x

    images = grey(images)
    picture = images if picture is None else grey(picture)
    png = pictures.grid_png(picture, *(grid or (None, None)), row_labels=row_labels)
    npy_path = npy_path_for(png_path)
    staged = [(staging_path(path), path, write) for path, write in (
        (npy_path, lambda f: numpy.save(f, images)), (png_path, lambda f: f.write(png)))]
    try:
        for temporary, _, write in staged:
            atomic_write(temporary, write)   # whole or absent
        for temporary, path, _ in staged:
            os.replace(temporary, path)
    finally:
        for temporary, _, _ in staged:
            if os.path.exists(temporary):
                os.remove(temporary)
    print("wrote {} and {}".format(png_path, npy_path))


def staging_path(path):
    """A hidden name beside ``path`` for the file before it takes ``path``'s place."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, ".staged-{}-{}".format(os.getpid(), name))


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
    except MemoryError:
        print("error: out of memory while drawing; ask for fewer images (--num)",
              file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
