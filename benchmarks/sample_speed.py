"""Benchmark: naive versus cached sampling of 25 MNIST-sized digits, for any model.

Builds the model with random weights (DIM 32, Q_LEVELS 4; 10 layers for
``pixelconv`` and ``gated``, the README comparison's depths for the others:
8 blocks ``masked``, 2 layers ``rowlstm``, 1 layer ``diagbilstm``;
``--num-layers`` overrides), draws 25 images with each sampler from the same
seed, and prints as its last line

    naive_s=<s> cached_s=<s> speedup=<ratio> identical=<True|False>

The cached sampler's time includes building its evaluator from the weights;
neither includes Theano's compile (printed as compile_s).

Run: .venv/bin/python benchmarks/sample_speed.py [--model masked] [--num 25] [--seed 0]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy  # noqa: E402

import lib  # noqa: E402,F401
import theano  # noqa: E402

import sampling  # noqa: E402
from models import build as builder  # noqa: E402
from sampling.naive import sample_naive  # noqa: E402

DEPTHS = {"pixelconv": 10, "gated": 10, "masked": 8, "rowlstm": 2, "diagbilstm": 1}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(DEPTHS), default="pixelconv",
                   help="which model to sample from")
    p.add_argument("--num", type=int, default=25, help="images to draw")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws")
    p.add_argument("--num-layers", type=int, default=None,
                   help="layers (blocks for masked, LSTM layers for the PixelRNNs); "
                        "default: " + ", ".join("{} {}".format(k, v) for k, v in DEPTHS.items()))
    p.add_argument("--dim", type=int, default=32, help="DIM")
    p.add_argument("--q-levels", type=int, default=4, help="Q_LEVELS")
    p.add_argument("--skip-naive", action="store_true",
                   help="time only the cached sampler (no speedup, no comparison)")
    args = p.parse_args(argv)
    numpy.random.seed(1234)
    config = {"model": args.model, "input_dim": 1, "dim": args.dim,
              "num_layers": args.num_layers or DEPTHS[args.model], "q_levels": args.q_levels}
    net = builder.build(config)
    print("model={} num_layers={} dim={} q_levels={}".format(
        args.model, config["num_layers"], args.dim, args.q_levels), flush=True)
    start = time.time()
    cached = sampling.sample(net, args.num, 28, 28, seed=args.seed, progress=False)
    cached_s = time.time() - start
    if args.skip_naive:
        print("cached_s={:.2f}".format(cached_s))
        return
    start = time.time()
    logits_fn = theano.function([net.X], net.logits)
    print("compile_s={:.1f}".format(time.time() - start), flush=True)
    start = time.time()
    naive = sample_naive(logits_fn, args.num, 28, 28, 1, args.q_levels, seed=args.seed)
    naive_s = time.time() - start
    print("naive_s={:.2f} cached_s={:.2f} speedup={:.1f} identical={}".format(
        naive_s, cached_s, naive_s / cached_s, bool((naive == cached).all())))


if __name__ == "__main__":
    main()
