"""Receptive fields of the five models, measured with gradients, drawn as one PNG.

For each model (tiny, random weights: DIM 8, a few layers, a 15x15 grey image)
this takes the gradient of a random weighted sum of the logits at one target
pixel (default the centre, (7, 7)) with respect to the input image, on two
random images, and classifies every input pixel:

    target     the pixel whose logits are differentiated            red
    seen       an earlier pixel (raster order) with a non-zero       white/grey, brighter for a
               gradient                                              larger log |grad|
    not seen   an earlier pixel with an exactly zero gradient:        orange
               a blind spot, or outside a limited field
    future     the target and every later pixel; none may be seen    dark (magenta if one is:
                                                                     a causality bug)

All weights and biases are drawn uniformly from [-0.5, 0.5] so that no ReLU
unit is exactly inactive and every structural path shows up as a non-zero
gradient; a zero gradient therefore means "no path in the architecture".

Writes ``docs/receptive_fields.png`` (one labelled panel per model, and a
legend) and prints per model how many of the earlier pixels are seen; the last
line is machine-readable::

    pixelconv=<seen>/<earlier> gated=... masked=... rowlstm=... diagbilstm=...

Run: .venv/bin/python benchmarks/receptive_fields.py [--size 15] [--row 7 --col 7]
     [--masked-layers 4] [--out docs/receptive_fields.png]
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy  # noqa: E402

import lib  # noqa: E402,F401  (configures Theano before it is imported)
import theano  # noqa: E402
import theano.tensor as T  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from data import pictures  # noqa: E402
from lib.ops import floatX  # noqa: E402
from models import build as builder  # noqa: E402

TARGET = (230, 30, 30)
NOT_SEEN = (255, 150, 0)
FUTURE = (35, 35, 45)
CAUSALITY_BUG = (255, 0, 255)
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)


def parse_args(argv=None):
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(
        description="Measure which input pixels the logits at one pixel depend on, for "
                    "each model, and draw the receptive fields.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--size", type=int, default=15, help="image height and width")
    p.add_argument("--row", type=int, default=None, help="target row (default: centre)")
    p.add_argument("--col", type=int, default=None, help="target column (default: centre)")
    p.add_argument("--dim", type=int, default=8, help="feature maps per layer")
    p.add_argument("--conv-layers", type=int, default=6,
                   help="num_layers of pixelconv and gated (counts the first and the "
                        "output layers: num_layers - 2 3x3 blocks)")
    p.add_argument("--masked-layers", type=int, default=4,
                   help="hidden 3x3 layers of masked (4 matches --conv-layers 6)")
    p.add_argument("--rowlstm-layers", type=int, default=2, help="Row LSTM layers")
    p.add_argument("--diag-layers", type=int, default=1, help="Diagonal BiLSTM layers")
    p.add_argument("--scale", type=int, default=12, help="screen pixels per image pixel")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights and the inputs")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "receptive_fields.png"),
                   help="PNG to write")
    args = p.parse_args(argv)
    args.row = args.size // 2 if args.row is None else args.row
    args.col = args.size // 2 if args.col is None else args.col
    if not (0 <= args.row < args.size and 0 <= args.col < args.size):
        p.error("the target pixel must lie inside the {0}x{0} image".format(args.size))
    return args


def model_configs(args):
    """(name, config, short description) for each of the five models."""
    base = {"input_dim": 1, "dim": args.dim, "q_levels": 4}
    return [
        ("pixelconv", dict(base, model="pixelconv", num_layers=args.conv_layers),
         "{} layers".format(args.conv_layers)),
        ("gated", dict(base, model="gated", num_layers=args.conv_layers),
         "{} layers".format(args.conv_layers)),
        ("masked", dict(base, model="masked", num_layers=args.masked_layers),
         "{} hidden 3x3".format(args.masked_layers)),
        ("rowlstm", dict(base, model="rowlstm", num_layers=args.rowlstm_layers),
         "{} Row LSTM".format(args.rowlstm_layers)),
        ("diagbilstm", dict(base, model="diagbilstm", num_layers=args.diag_layers),
         "{} Diag BiLSTM".format(args.diag_layers)),
    ]


def gradient_map(config, args):
    """|d (weighted logits at the target) / d input| summed over two random images:
    a (size, size) float array, exactly zero where there is no path."""
    numpy.random.seed(args.seed)
    net = builder.build(config)
    rng = numpy.random.RandomState(args.seed + 1)
    for p in net.model.get_params():  # biases too, so that no unit is exactly inactive
        p.set_value(floatX(rng.uniform(-0.5, 0.5, p.get_value(borrow=True).shape)))
    weights = floatX(rng.rand(config["q_levels"]) + 0.5)
    target = (net.logits[:, args.row, args.col, 0, :] * weights).sum()
    grad_fn = theano.function([net.X], T.grad(target, net.X))
    x = floatX(rng.rand(2, args.size, args.size, 1))
    return numpy.abs(grad_fn(x)).sum(axis=(0, 3))


def classify(grad, row, col):
    """Counts and boolean maps: earlier pixels seen / not seen, future pixels seen."""
    height, width = grad.shape
    index = numpy.arange(height * width).reshape(height, width)
    earlier = index < row * width + col
    seen = grad != 0
    return {"earlier": earlier, "seen": seen & earlier, "not_seen": earlier & ~seen,
            "future_seen": ~earlier & seen}


def draw_panel(grad, classes, row, col, scale, title, subtitle):
    """One model's panel: the coloured image grid with two lines of text above."""
    height, width = grad.shape
    rgb = numpy.zeros((height, width, 3), dtype=numpy.uint8)
    rgb[:] = FUTURE
    rgb[classes["not_seen"]] = NOT_SEEN
    seen = classes["seen"]
    if seen.any():
        logs = numpy.log(grad[seen])
        lo, hi = logs.min(), logs.max()
        level = (logs - lo) / (hi - lo) if hi > lo else numpy.ones_like(logs)
        rgb[seen] = numpy.round(90 + 165 * level).astype(numpy.uint8)[:, None]
    rgb[classes["future_seen"]] = CAUSALITY_BUG
    rgb[row, col] = TARGET
    grid = pictures.make_grid(rgb[None], 1, 1, pad=0, scale=scale)
    header = 32
    panel = Image.new("RGB", (grid.shape[1] + 2, grid.shape[0] + header + 2), BACKGROUND)
    panel.paste(Image.fromarray(grid), (1, header + 1))
    draw = ImageDraw.Draw(panel)
    draw.rectangle([0, header, grid.shape[1] + 1, header + grid.shape[0] + 1], outline=TEXT)
    draw.text((2, 2), title, fill=TEXT)
    draw.text((2, 16), subtitle, fill=TEXT)
    return panel


def legend(width):
    """A strip explaining the colours."""
    strip = Image.new("RGB", (width, 22), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    x = 4
    for colour, text in ((TARGET, "target pixel"), ((220, 220, 220), "seen (brighter: larger "
                         "log|grad|)"), (NOT_SEEN, "earlier, NOT seen"),
                         (FUTURE, "future (must not be seen)")):
        draw.rectangle([x, 5, x + 11, 16], fill=colour, outline=(0, 0, 0))
        draw.text((x + 16, 5), text, fill=TEXT)
        x += 16 + int(draw.textlength(text)) + 18
    return strip


def main(argv=None):
    args = parse_args(argv)
    panels, results = [], []
    for name, config, description in model_configs(args):
        grad = gradient_map(config, args)
        classes = classify(grad, args.row, args.col)
        seen, earlier = int(classes["seen"].sum()), int(classes["earlier"].sum())
        future = int(classes["future_seen"].sum())
        results.append((name, seen, earlier))
        missing = numpy.argwhere(classes["not_seen"])
        print("{:10s} {:16s} earlier pixels seen {:3d} / {:3d}, not seen {:3d}, future seen {}"
              .format(name, description, seen, earlier, earlier - seen, future), flush=True)
        if 0 < len(missing) <= 6:
            print("           not seen: {}".format(
                ", ".join("({}, {})".format(r, c) for r, c in missing)))
        panels.append(draw_panel(grad, classes, args.row, args.col, args.scale,
                                 "{} ({})".format(name, description),
                                 "seen {}/{}".format(seen, earlier) +
                                 ("  FUTURE {}!".format(future) if future else "")))
    gap = 10
    width = sum(p.width for p in panels) + gap * (len(panels) + 1)
    height = max(p.height for p in panels) + 2 * gap
    strip = legend(width)
    canvas = Image.new("RGB", (width, height + strip.height + gap // 2), BACKGROUND)
    x = gap
    for p in panels:
        canvas.paste(p, (x, gap))
        x += p.width + gap
    canvas.paste(strip, (0, height))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    pictures.save_png(args.out, numpy.asarray(canvas))
    print("wrote {} ({}x{}, target ({}, {}) of {}x{})".format(
        args.out, canvas.width, canvas.height, args.row, args.col, args.size, args.size))
    print(" ".join("{}={}/{}".format(n, s, e) for n, s, e in results))


if __name__ == "__main__":
    main()
