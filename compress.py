"""Lossless image compression with a trained PixelCNN / PixelRNN: the model's
likelihood put to work as a code.

    python compress.py encode --test 10000 --out test.pxc     # binarized MNIST test digits
    python compress.py decode test.pxc --out test.npy          # the same bins, bit for bit
    python compress.py encode --checkpoint pretrained/pixelconv.npz --test 100 --out q4.pxc
    python compress.py encode --npy digits.npy --out digits.pxc
    python compress.py encode --png scans/ --out scans.pxc     # a folder of PNG files
    python compress.py encode --checkpoint pretrained/gated_class.npz --npy d.npy --labels 7
    python compress.py info test.pxc                           # what a file holds

An autoregressive model gives every sub-pixel a distribution given the ones
before it; a range coder (the ``constriction`` library) spends -log2 p bits on
each, so a file costs about the model's NLL of its images. The decoder
rebuilds each distribution from the pixels it has decoded, on the same code
path and batch layout as the encoder, so it computes the same numbers (see
``codec/``).

The codec is lossless on the model's bins (Q_LEVELS values per sub-pixel):
0..255 images are quantized by the tool first (``bin = floor(value * Q / 256)``,
as the project quantizes its data) and it says so; MNIST test images for a
two-level model are binarized as ``evaluate.py`` binarizes them (the seed is
recorded). Decoding writes the bins (a ``.npy`` in the input's shape) or PNGs
of them.

A file records the checkpoint's SHA-256 and settings, the batch layout and
what the numbers depend on (NumPy and its SIMD paths, the BLAS library and its
kernels and thread count, the probability code's hash, the coder's version).
The decoder refuses another checkpoint, and refuses where the numerics differ
unless ``--allow-different-numerics``; even then every decoded batch is
checked against its checksum, and nothing is written unless all match. A
truncated or altered file fails its checksum before any decoding.

Exit codes: 0 done, 2 bad input (arguments, images, checkpoint, a damaged or
mismatched file, an existing output without --force), 130 stopped by Ctrl-C.
Outputs are written only when complete (temporary file, then renamed).
"""
import argparse
import os
import subprocess
import sys
import time

import numpy

from codec import batches, container, images, model as models, numerics
from codec.coder import PRECISION

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
PROJECT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CHECKPOINT = os.path.join("pretrained", "binarized_diagbilstm.npz")
DEFAULT_BATCH = 500


class UsageError(Exception):
    """Bad input: reported in one line, exit code 2."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default only where it has one worth showing."""

    def _get_help_string(self, action):
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Lossless compression of images with a trained PixelCNN / PixelRNN "
                    "(range coding with the model's probabilities). 'encode' writes one "
                    "file, 'decode' gives the images back bit for bit, 'info' describes a "
                    "file.", epilog="Run 'compress.py encode --help' (or decode, info) for "
                    "the options of each. Exit codes: 0 done, 2 bad input, 130 Ctrl-C.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{encode,decode,info}")
    fmt = HelpFormatter

    e = sub.add_parser("encode", formatter_class=fmt, help="images -> one compressed file",
                       description="Compress images into one file with a model's "
                                   "probabilities. Images of 0..255 values are quantized "
                                   "to the model's levels first (and the tool says so).")
    source = e.add_mutually_exclusive_group(required=True)
    source.add_argument("--test", type=int, metavar="N",
                        help="the first N MNIST test images (binarized for a two-level "
                             "model, as evaluate.py binarizes them; else quantized)")
    source.add_argument("--npy", metavar="FILE",
                        help=".npy of images (num, height, width) grey or (num, height, "
                             "width, 3) colour, 0..255 integers (or bins with --bins)")
    source.add_argument("--png", nargs="+", metavar="PATH",
                        help="PNG files (8-bit grey or RGB, all one size), or folders of them")
    e.add_argument("--out", required=True, help="the compressed file to write (e.g. x.pxc)")
    e.add_argument("--checkpoint", default=None,
                   help="the model: any checkpoint of ours (two-level models for binary "
                        "images, colour models for RGB); not an embedding-conditioned one "
                        "(default: the shipped " + DEFAULT_CHECKPOINT + ")")
    e.add_argument("--bins", action="store_true",
                   help="with --npy: the array already holds the model's bins 0..Q-1 (no "
                        "quantization)")
    e.add_argument("--labels", metavar="L",
                   help="class-conditional models: each image's digit, as 3,1,4 or one digit "
                        "for all or a .npy/text file (--test uses the test labels); coded in "
                        "the file")
    e.add_argument("--dataset", choices=["mnist", "fashion-mnist", "binarized-mnist"],
                   default=None,
                   help="with --test: the test split (default: the one the checkpoint "
                        "records, else binarized-mnist for two levels, mnist otherwise)")
    e.add_argument("--data-dir", default=None,
                   help="MNIST folder (default: $MNIST_DIR, else the per-user cache)")
    e.add_argument("--no-verify-data", action="store_true",
                   help="skip the MD5 and size checks of the data files (custom IDX files)")
    e.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                   help="images coded together, pixel by pixel (recorded: the decoder uses "
                        "the same layout)")
    e.add_argument("--verify", action="store_true",
                   help="decode the file after writing it and compare (twice the time)")
    add_common(e)

    d = sub.add_parser("decode", formatter_class=fmt, help="compressed file -> images",
                       description="Give back the images of a file written by 'encode', "
                                   "bit for bit, after checking the checkpoint, the numerics "
                                   "and every batch's checksum.")
    d.add_argument("file", help="a file written by compress.py encode")
    d.add_argument("--out", required=True,
                   help="OUT.npy: the bins in the input's shape (labels of a conditional "
                        "model in OUT_labels.npy); otherwise a folder of PNGs")
    d.add_argument("--checkpoint", default=None,
                   help="the checkpoint the file was encoded with (default: the path the "
                        "file records); its SHA-256 must match")
    d.add_argument("--allow-different-numerics", action="store_true",
                   help="decode even where NumPy, the BLAS, the CPU's SIMD paths or the "
                        "probability code differ from the encoder's; every batch is still "
                        "checked, and nothing is written unless all match")
    add_common(d)

    i = sub.add_parser("info", formatter_class=fmt, help="describe a compressed file",
                       description="Print what a compressed file holds and what its numbers "
                                   "depend on (after checking its checksum).")
    i.add_argument("file")
    args = p.parse_args(argv)
    if args.command == "encode":
        for name in ("test", "batch_size"):
            value = getattr(args, name)
            if value is not None and value < 1:
                p.error("--{} must be at least 1, got {}".format(name.replace("_", "-"), value))
        if args.bins and not args.npy:
            p.error("--bins goes with --npy")
    if args.command in ("encode", "decode") and args.workers < 1:
        p.error("--workers must be at least 1, got {}".format(args.workers))
    return args


def add_common(parser):
    parser.add_argument("--workers", type=int, default=usable_cores(),
                        help="processes coding batches in parallel (does not change the "
                             "numbers: each runs NumPy's BLAS on one thread)")
    parser.add_argument("--force", action="store_true", help="replace an existing output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


# ----- encode -------------------------------------------------------------------------
def check_output(path, force, what="--out"):
    """UsageError when ``path`` exists (unless ``force``) or its folder does not."""
    if os.path.lexists(path) and not force:
        raise UsageError("{} {} exists; pass --force to replace it, or choose another "
                         "name".format(what, path))
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError("{} {}: the folder {} does not exist".format(what, path, folder))


def load_model(path):
    try:
        return models.load(path)
    except (models.ModelError, OSError) as err:
        raise UsageError(str(err))


def read_images(args, model):
    """(bins as given (3-d or 4-d), labels or None, source description)."""
    c = model.config
    labels = None
    if args.test is not None:
        from lib.checkpoint import read_checkpoint, recorded_data
        dataset = args.dataset or images.default_dataset(
            c["q_levels"], recorded_data(read_checkpoint(args.checkpoint)[1]).get("dataset"))
        bins, labels, source = images.test_images(args.test, c["q_levels"], dataset,
                                                  args.data_dir, not args.no_verify_data)
    elif args.npy:
        bins, source = images.npy_images(args.npy, c["q_levels"], args.bins)
    else:
        bins, source = images.png_images(args.png, c["q_levels"], c["input_dim"])
    if models.conditional(model):
        if args.labels is not None:
            labels = images.parse_labels(args.labels, len(bins))
        elif labels is None:
            raise UsageError("{} is class-conditional: give each image's digit with --labels "
                             "(the file codes them)".format(args.checkpoint))
    elif args.labels is not None:
        raise UsageError("{} is not conditional; it takes no --labels".format(args.checkpoint))
    else:
        labels = None
    return bins, labels, source


def check_fit(model, bins):
    """The 4-d bins, after checking that the model can code them."""
    four = images.as_four_d(bins, model.config["input_dim"])
    images.check_levels(four, model.config["q_levels"], "the images")
    limit = models.condition_map_size(model)
    if limit is not None and (four.shape[1] > limit[0] or four.shape[2] > limit[1]):
        raise UsageError("{} has a condition map of {} x {} positions; these images are "
                         "{} x {}: crop them or use a model without a map".format(
                             model.path, limit[0], limit[1], four.shape[1], four.shape[2]))
    return four


def git_commit():
    """The project's commit (informational), or None."""
    try:
        out = subprocess.run(["git", "-C", PROJECT, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def encode(args):
    check_output(args.out, args.force)
    if args.checkpoint is None:
        args.checkpoint = os.path.join(PROJECT, DEFAULT_CHECKPOINT)
    model = load_model(args.checkpoint)
    bins, labels, source = read_images(args, model)
    four = check_fit(model, bins)
    print("note: {}".format(images.describe_quantization(source, model.config["q_levels"])),
          flush=True)
    numerics.use_one_blas_thread()
    start = time.time()
    coded, nll, info = batches.encode(model, four, labels, args.batch_size, args.workers,
                                      not args.no_progress)
    seconds = time.time() - start
    header = {"images": len(four), "shape": list(bins.shape), "labels": labels is not None,
              "q_levels": model.config["q_levels"], "source": source,
              "model": models.description(model, PROJECT), "batch_size": args.batch_size,
              "precision": PRECISION, "numerics": numerics.fingerprint(),
              "images_sha256": container.images_digest(four, labels).hex(),
              "nll_bits": round(nll, 3), "information_bits": round(info, 3),
              "written_by": {"commit": git_commit(), "workers": args.workers}}
    data = container.pack(header, coded)
    if args.verify:   # decode the bytes before they are written
        decoded, decoded_labels = batches.decode(model, container.unpack(data)[1], four.shape,
                                                 args.batch_size, args.workers,
                                                 not args.no_progress)
        if not (numpy.array_equal(decoded, four) and (
                labels is None or numpy.array_equal(decoded_labels, labels))):
            raise UsageError("verification failed: the file would not decode to the same "
                             "images; nothing was written")
        print("verified: the file decodes to the same images", flush=True)
    container.save(args.out, data)
    size = len(data)
    report("wrote {}".format(args.out), four, size, nll, seconds, "encode")


def report(what, four, size, nll, seconds, verb):
    """Print the summary lines of an encode or decode."""
    sub_pixels = four.size
    bits = 8.0 * size
    print("{}: {} images of {}x{}x{}, {} bytes: {:.4f} bits per sub-pixel; the model's NLL "
          "{:.4f} (file {:+.2f}% of it, header and checksums included)".format(
              what, len(four), four.shape[1], four.shape[2], four.shape[3], size,
              bits / sub_pixels, nll / sub_pixels, 100.0 * (bits / nll - 1) if nll else 0.0))
    print("images={} bytes={} bits_per_subpixel={:.5f} nll_bits_per_subpixel={:.5f} "
          "{}_seconds={:.2f} {}_images_per_s={:.1f}".format(
              len(four), size, bits / sub_pixels, nll / sub_pixels, verb, seconds, verb,
              len(four) / max(seconds, 1e-9)), flush=True)


# ----- decode -------------------------------------------------------------------------
def resolve_checkpoint(args, recorded):
    """The checkpoint to decode with: --checkpoint, else the recorded path (as written,
    then under the project folder); UsageError when it is not the file's."""
    path = args.checkpoint
    if path is None:
        candidates = [recorded["path"], os.path.join(PROJECT, recorded["path"])]
        path = next((c for c in candidates if os.path.isfile(c)), None)
        if path is None:
            raise UsageError("the file was encoded with {} (SHA-256 {}), which is not here; "
                             "pass it with --checkpoint".format(recorded["path"],
                                                                recorded["sha256"]))
    try:
        sha = models.sha256_of(path)
    except OSError as err:
        raise UsageError("cannot read --checkpoint {}: {}".format(path, err.strerror or err))
    if sha != recorded["sha256"]:
        raise UsageError("{} is not the checkpoint the file was encoded with: its SHA-256 is "
                         "{}, the file's {} ({}); decoding with another model would give "
                         "wrong images. Pass the encoder's checkpoint with --checkpoint".format(
                             path, sha, recorded["sha256"], recorded["path"]))
    return path


def check_numerics(args, recorded):
    """UsageError listing what differs from the encoder's numerics (unless allowed)."""
    numerics.use_one_blas_thread()
    lines = numerics.differences(recorded, numerics.fingerprint())
    if not lines:
        return
    if args.allow_different_numerics:
        print("warning: the numerics differ from the encoder's; decoding anyway, every batch "
              "checked:\n" + "\n".join(lines), file=sys.stderr, flush=True)
        return
    raise UsageError("the file's probabilities were computed with other numerics than this "
                     "machine's, so decoding could not be trusted to give the same "
                     "numbers:\n{}\nDecode where they match (the project's commit that wrote "
                     "it: {}), or pass --allow-different-numerics to try: every batch is "
                     "checked against its checksum and nothing is written unless all "
                     "match".format("\n".join(lines), args.written_by))


def labels_path(out):
    return os.path.splitext(out)[0] + "_labels.npy"


def decode(args):
    try:
        header, coded = container.read(args.file)
    except container.ContainerError as err:
        raise UsageError(str(err))
    as_npy = args.out.endswith(".npy")
    check_output(args.out, args.force)
    if as_npy and header["labels"]:
        check_output(labels_path(args.out), args.force, "the labels file")
    path = resolve_checkpoint(args, header["model"])
    model = load_model(path)
    args.written_by = (header.get("written_by") or {}).get("commit")
    check_numerics(args, header["numerics"])
    shape = tuple(header["shape"])
    four_shape = shape if len(shape) == 4 else shape + (1,)
    start = time.time()
    try:
        four, labels = batches.decode(model, coded, four_shape, header["batch_size"],
                                      args.workers, not args.no_progress)
    except batches.MismatchError as err:
        raise UsageError(str(err))
    seconds = time.time() - start
    if container.images_digest(four, labels).hex() != header["images_sha256"]:
        raise UsageError("the decoded images do not match the file's checksum; nothing was "
                         "written")
    if as_npy:
        images.write_array(args.out, four.reshape(shape))
        if labels is not None:
            images.write_array(labels_path(args.out), labels)
    else:
        names = images.png_names(header["source"], len(four))
        pictures = four[..., 0] if four.shape[3] == 1 else four
        images.write_png_folder(args.out, pictures, header["q_levels"], names)
        if labels is not None:
            print("labels: " + ",".join(str(v) for v in labels))
    size = os.path.getsize(args.file)
    report("decoded {} into {} (checksums match)".format(args.file, args.out), four, size,
           header["nll_bits"], seconds, "decode")


def info(args):
    try:
        header, coded = container.read(args.file)
    except container.ContainerError as err:
        raise UsageError(str(err))
    import json
    print("{}: intact (SHA-256 checked), {} batches".format(args.file, len(coded)))
    print(json.dumps(header, indent=2, sort_keys=True))


def main(argv=None):
    args = parse_args(argv)
    try:
        {"encode": encode, "decode": decode, "info": info}[args.command](args)
    except (UsageError, images.InputError, batches.MismatchError, OSError) as err:
        print("error: {}".format(err), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("aborted (Ctrl-C); nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
