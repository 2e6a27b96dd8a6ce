"""Benchmark: compress.py against its model's NLL and general-purpose codecs, on MNIST.

Two tables, on the first ``--limit`` test images (all 10,000 by default):

* binarized MNIST (binarized as evaluate.py binarizes it) through
  ``pretrained/binarized_diagbilstm.npz``;
* 4-level MNIST (``quantize.to_targets``) through ``pretrained/pixelconv.npz``.

Rows: the model's NLL (the ideal code length), our file (``compress.py encode``
then ``decode``, run as the user runs them, every image checked; header and
checksums included; images per second of coding, start-up excluded), and on
the same bins: PNG (Pillow, 1-bit or 2-bit, best compression) one file per
image and all images in one grid; WebP lossless (where Pillow has it), likewise;
gzip / bz2 / lzma of the packed pixels (1 or 2 bits each, at their highest
levels); JBIG2 where Debian packages an encoder (it packages only a decoder,
jbig2dec) and JBIG (JBIG1, jbigkit-bin's pbmtojbg, if installed) of the grid;
BB-ANS as published (Townsend, Bird and Barber, "Practical lossless
compression with latent variables using bits back coding", ICLR 2019: 0.19
bits per pixel on binarized MNIST; not run here).

Bits per pixel count every sub-pixel (784 per MNIST image). The last line is
machine-readable: ``binarized_bpp=... binarized_above_nll=... four_level_bpp=...``.

Run:  .venv/bin/python benchmarks/compression.py --data-dir ../shared/data/mnist
      [--limit 10000] [--workers 2] [--batch-size 500] [--only binarized]
"""
import argparse
import bz2
import gzip
import io
import lzma
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy  # noqa: E402
from PIL import Image, features  # noqa: E402

from codec import images  # noqa: E402
from data.pictures import grid_shape  # noqa: E402

PYTHON = sys.executable
BB_ANS_BPP = 0.19
SETS = {"binarized": ("pretrained/binarized_diagbilstm.npz", 2, "binarized-mnist"),
        "four-level": ("pretrained/pixelconv.npz", 4, "mnist")}


# ----- our codec ----------------------------------------------------------------------
def run_tool(args, data_dir):
    """Run compress.py with ``args``; its machine-readable last line as a dict."""
    env = dict(os.environ)
    if data_dir:
        env["MNIST_DIR"] = os.path.abspath(data_dir)
    out = subprocess.run([PYTHON, os.path.join(ROOT, "compress.py")] + args + ["--no-progress"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit("compress.py {} failed ({}):\n{}".format(args[0], out.returncode,
                                                                  out.stderr))
    last = out.stdout.strip().splitlines()[-1]
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.e+]+)", last)}


def our_codec(name, count, workers, batch_size, data_dir, expected, folder):
    """(file bytes, NLL bits, encode images/s, decode images/s) of compress.py on the
    set; checks that the decoded bins are ``expected``."""
    checkpoint = SETS[name][0]
    path, decoded = os.path.join(folder, name + ".pxc"), os.path.join(folder, name + ".npy")
    enc = run_tool(["encode", "--checkpoint", checkpoint, "--test", str(count), "--out", path,
                    "--workers", str(workers), "--batch-size", str(batch_size)], data_dir)
    dec = run_tool(["decode", path, "--out", decoded, "--workers", str(workers)], data_dir)
    if not numpy.array_equal(numpy.load(decoded), expected):
        raise SystemExit("{}: the decoded images differ from the test images".format(name))
    nll_bits = enc["nll_bits_per_subpixel"] * expected.size
    return int(enc["bytes"]), nll_bits, enc["encode_images_per_s"], dec["decode_images_per_s"]


# ----- other codecs -------------------------------------------------------------------
def pil_image(bins, q):
    """One image's bins (h, w) as a Pillow image of the fewest bits: 1-bit for two
    levels, a 2-bit palette of greys for up to four, else 8-bit grey."""
    if q == 2:
        return Image.fromarray(bins.astype(bool))
    if q <= 4:
        image = Image.fromarray(bins.astype(numpy.uint8), mode="P")
        greys = [int(round(255.0 * k / (q - 1))) for k in range(q)]
        image.putpalette([g for grey in greys for g in (grey, grey, grey)])
        return image
    return Image.fromarray((bins * (255 // (q - 1))).astype(numpy.uint8))


def png_size(bins, q):
    buf = io.BytesIO()
    extra = {"bits": 2} if 2 < q <= 4 else {}
    pil_image(bins, q).save(buf, format="PNG", optimize=True, compress_level=9, **extra)
    return len(buf.getvalue())


def webp_size(bins, q):
    buf = io.BytesIO()
    grey = (bins * (255 // (q - 1))).astype(numpy.uint8)
    Image.fromarray(grey).save(buf, format="WEBP", lossless=True, quality=100, method=6)
    return len(buf.getvalue())


def grid(bins):
    """All images (n, h, w) in one near-square grid (zeros where it is not full)."""
    n, h, w = bins.shape
    rows, cols = grid_shape(n)
    canvas = numpy.zeros((rows * cols, h, w), dtype=bins.dtype)
    canvas[:n] = bins
    return canvas.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)


def packed(bins, q):
    """The bins at ceil(log2 q) bits each, packed into bytes (raster order, image by image)."""
    bits = max(1, int(math.ceil(math.log2(q))))
    planes = [(bins.ravel() >> b) & 1 for b in reversed(range(bits))]
    return numpy.packbits(numpy.stack(planes, axis=1).ravel()).tobytes()


def jbig_size(bins, q, folder):
    """Bytes of pbmtojbg (JBIG1) on the grid of all images (PBM for two levels, PGM of
    the bins otherwise), or None when jbigkit-bin is not installed."""
    tool = shutil.which("pbmtojbg")
    if tool is None:
        return None
    picture = grid(bins)
    source = os.path.join(folder, "grid.pnm")
    if q == 2:
        Image.fromarray(picture.astype(bool)).save(source, format="PPM")   # writes P4
    else:
        with open(source, "wb") as f:
            f.write("P5 {} {} {}\n".format(picture.shape[1], picture.shape[0], q - 1).encode())
            f.write(picture.astype(numpy.uint8).tobytes())
    target = os.path.join(folder, "grid.jbg")
    subprocess.run([tool, "-q", source, target], check=True, capture_output=True)
    return os.path.getsize(target)


def others(bins, q, folder):
    """[(name, bytes or None, note)] of the general-purpose codecs on bins (n, h, w)."""
    rows = []
    depth = "1-bit" if q == 2 else "2-bit" if q <= 4 else "8-bit"
    rows.append(("PNG {}, one file per image".format(depth),
                 sum(png_size(b, q) for b in bins), ""))
    rows.append(("PNG {}, all images in one grid".format(depth), png_size(grid(bins), q), ""))
    if features.check("webp"):
        rows.append(("WebP lossless, one file per image", sum(webp_size(b, q) for b in bins), ""))
        rows.append(("WebP lossless, all images in one grid", webp_size(grid(bins), q), ""))
    else:
        rows.append(("WebP lossless", None, "this Pillow has no WebP"))
    data = packed(bins, q)
    rows.append(("packed pixels, no compression", len(data), ""))
    rows.append(("gzip -9 of the packed pixels", len(gzip.compress(data, 9, mtime=0)), ""))
    rows.append(("bz2 -9 of the packed pixels", len(bz2.compress(data, 9)), ""))
    rows.append(("lzma -9e of the packed pixels",
                 len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)), ""))
    rows.append(("JBIG2", None, "no encoder packaged by Debian (only the decoder jbig2dec)"))
    size = jbig_size(bins, q, folder)
    rows.append(("JBIG (JBIG1, pbmtojbg -q), all images in one grid", size,
                 "" if size is not None else "apt-get install jbigkit-bin"))
    return rows


# ----- the table ----------------------------------------------------------------------
def table(name, count, args, folder):
    checkpoint, q, dataset = SETS[name]
    bins, _, _ = images.test_images(count, q, dataset, args.data_dir)
    sub_pixels = bins.size
    size, nll_bits, enc_rate, dec_rate = our_codec(name, count, args.workers, args.batch_size,
                                                   args.data_dir, bins, folder)
    nll_bpp, ours_bpp = nll_bits / sub_pixels, 8.0 * size / sub_pixels
    print("\n{} MNIST, first {} test images, {} ({} sub-pixels)\n".format(
        "binarized" if q == 2 else "4-level", count, checkpoint, sub_pixels))
    print("| codec | bytes | bits/pixel | vs the model's NLL | encode img/s | decode img/s |")
    print("|---|---:|---:|---:|---:|---:|")
    print("| the model's NLL (ideal code length) | {:.0f} | {:.4f} | | | |".format(
        nll_bits / 8, nll_bpp))
    print("| **compress.py** (range coding, header and checksums included) | {} | {:.4f} | "
          "{:+.2f}% | {:.0f} | {:.0f} |".format(size, ours_bpp, 100 * (ours_bpp / nll_bpp - 1),
                                                enc_rate, dec_rate))
    for label, other, note in others(bins, q, folder):
        if other is None:
            print("| {}: not measured, {} | | | | | |".format(label, note))
        else:
            bpp = 8.0 * other / sub_pixels
            print("| {} | {} | {:.4f} | {:+.0f}% | | |".format(label, other, bpp,
                                                              100 * (bpp / nll_bpp - 1)))
    if q == 2:
        print("| BB-ANS (VAE, bits back), as published | | {:.2f} | {:+.0f}% | | |".format(
            BB_ANS_BPP, 100 * (BB_ANS_BPP / nll_bpp - 1)))
    sys.stdout.flush()
    return ours_bpp, 100 * (ours_bpp / nll_bpp - 1), dec_rate


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=None,
                   help="MNIST folder (default: $MNIST_DIR, else the per-user cache)")
    p.add_argument("--limit", type=int, default=10000, help="test images to compress")
    p.add_argument("--workers", type=int, default=2, help="compress.py --workers")
    p.add_argument("--batch-size", type=int, default=500, help="compress.py --batch-size")
    p.add_argument("--only", choices=sorted(SETS), default=None, help="one of the two tables")
    args = p.parse_args(argv)
    if args.limit < 1 or args.workers < 1 or args.batch_size < 1:
        p.error("--limit, --workers and --batch-size must be at least 1")
    figures = []
    with tempfile.TemporaryDirectory() as folder:
        for name in ([args.only] if args.only else ["binarized", "four-level"]):
            bpp, above, rate = table(name, args.limit, args, folder)
            key = name.replace("-", "_")
            figures += ["{}_bpp={:.5f}".format(key, bpp), "{}_above_nll={:.3f}%".format(key, above),
                        "{}_decode_images_per_s={:.1f}".format(key, rate)]
    print("\n" + " ".join(figures))


if __name__ == "__main__":
    main()
