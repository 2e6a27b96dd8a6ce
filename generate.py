"""Sample digits pixel by pixel from a trained PixelCNN checkpoint.

    python generate.py --checkpoint runs/mnist/epoch_020_val_0.14300.npz
    python generate.py --checkpoint original_epoch_19.pkl --sampler naive --out naive.png
    python generate.py --checkpoint ckpt.npz --reconstruct 25 --out recon.png

Writes a grid PNG (5x5 for 25 images) and the images as .npy beside it
(uint8 grey levels 0..255, shape (num, height, width) or (num, height, width, 3)).
The model's size (layers, DIM, input_dim, Q_LEVELS) is read off the
checkpoint's parameter shapes. Checkpoints may be ours (.npz, also a training
state.npz) or the original code's pickles; loading never runs code from them.
"""
import argparse
import os
import sys

import numpy

import images
import quantize
from lib.checkpoint import CheckpointError, read_checkpoint

EXIT_BAD_INPUT = 2
DEFAULT_NUM = 25


class UsageError(Exception):
    """Bad input: reported as one line and exit code 2."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Draw images from a PixelCNN checkpoint, one pixel at a time in raster "
                    "order, each from the model's softmax given the pixels before it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="parameters to load: our .npz (or a training state.npz) or a "
                        "pickle written by the original code")
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
                   help="divide the logits by T before the softmax (<1: sharper)")
    p.add_argument("--height", type=int, default=28, help="image height in pixels")
    p.add_argument("--width", type=int, default=28, help="image width in pixels")
    p.add_argument("--reconstruct", type=int, metavar="N", default=None,
                   help="instead of sampling, redraw each pixel of the first N test "
                        "images given the true pixels before it")
    p.add_argument("--data-dir", default=None,
                   help="MNIST folder for --reconstruct (default: $MNIST_DIR or the cache)")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    o = p.add_argument_group("model size (read off the checkpoint unless given)")
    o.add_argument("--num-layers", type=int, default=None)
    o.add_argument("--dim", type=int, default=None)
    o.add_argument("--input-dim", type=int, default=None)
    o.add_argument("--q-levels", type=int, default=None)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def check_args(args):
    if args.num is not None and args.num < 1:
        raise UsageError("--num must be at least 1, got {}".format(args.num))
    if args.reconstruct is not None and args.reconstruct < 1:
        raise UsageError("--reconstruct must be at least 1, got {}".format(args.reconstruct))
    if args.temperature <= 0:
        raise UsageError("--temperature must be > 0, got {}".format(args.temperature))
    if args.height < 1 or args.width < 1:
        raise UsageError("--height and --width must be at least 1")
    if not args.out.lower().endswith(".png"):
        raise UsageError("--out must name a .png file, got {}".format(args.out))
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UsageError("cannot write {}: folder {} does not exist or is not writable".format(
            args.out, folder))


def load_checkpoint(args):
    """(config, weights renamed to the builder's prefix) from --checkpoint and overrides."""
    from models import build as builder
    try:
        arrays, meta = read_checkpoint(args.checkpoint)
    except CheckpointError as err:
        raise UsageError(str(err))
    if any(k.startswith("param/") for k in arrays):  # a training state.npz
        arrays = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    try:
        config = dict(meta) if meta else builder.infer_config(arrays)
        builder.condition_dim(config)
    except (ValueError, TypeError) as err:
        raise UsageError("{}: {}".format(args.checkpoint, err))
    for key in ("num_layers", "dim", "input_dim", "q_levels"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    return config, builder.rename_to_prefix(arrays)


def build_with_weights(config, weights, source):
    """The Theano network for ``config`` holding the checkpoint's weights; a
    checkpoint that does not fit raises UsageError listing every problem."""
    from models import build as builder
    net = builder.build(config)
    try:
        net.model.set_param_values(weights, source=source)
    except CheckpointError as err:
        raise UsageError(str(err))
    return net


def load_test_targets(args, config):
    import mnist_data
    try:
        data = mnist_data.load_dataset(args.data_dir, dataset=args.dataset)
    except mnist_data.DataError as err:
        raise UsageError(str(err))
    targets = quantize.to_targets(data["test_images"][:args.reconstruct], config["q_levels"])
    return targets[..., None]


def labels_for(args, net, num):
    """(labels (num,) or None, grid shape or None) from --label / --labels."""
    if args.label is None and args.labels is None:
        if net.H is not None:
            raise UsageError("this checkpoint is class-conditional: choose a digit with "
                             "--label D or --labels all")
        return None, None
    if net.H is None:
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
    from models import build as builder
    check_args(args)
    config, weights = load_checkpoint(args)
    net = build_with_weights(config, weights, args.checkpoint)
    given = load_test_targets(args, config) if args.reconstruct else None
    labels, grid = labels_for(args, net, args.num or DEFAULT_NUM)
    if given is not None:
        num, height, width = given.shape[:3]
        if labels is not None:
            labels = labels[:num] if len(labels) >= num else numpy.resize(labels, num)
    else:
        num = len(labels) if labels is not None else (args.num or DEFAULT_NUM)
        height, width = args.height, args.width
    bins = net.sample(num, height, width, seed=args.seed, temperature=args.temperature,
                      progress=not args.no_progress, given=given, sampler=args.sampler,
                      condition=None if labels is None else builder.one_hot(labels))
    save_outputs(args.out, quantize.to_display(bins, config["q_levels"]), grid)
    return bins


def save_outputs(png_path, pictures, grid=None):
    """Write the grid PNG and the .npy; on failure neither is left behind."""
    from lib.checkpoint import atomic_write
    pictures = pictures[..., 0] if pictures.shape[-1] == 1 else pictures
    npy_path = os.path.splitext(png_path)[0] + ".npy"
    atomic_write(npy_path, lambda f: numpy.save(f, pictures))
    try:
        images.save_grid(png_path, pictures, *(grid or (None, None)))
    except BaseException:
        os.remove(npy_path)
        raise
    print("wrote {} and {}".format(png_path, npy_path))


def main(argv=None):
    args = parse_args(argv)
    try:
        generate(args)
    except (UsageError, CheckpointError, OSError) as err:
        print("error: {}".format(err), file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
