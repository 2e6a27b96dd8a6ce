"""Benchmark: naive versus cached sampling of 25 MNIST-sized digits.

Builds the default model (10 layers, DIM 32, Q_LEVELS 4) with random weights,
draws 25 images with each sampler from the same seed, and prints as its last line

    naive_s=<s> cached_s=<s> speedup=<ratio> identical=<True|False>

Run: .venv/bin/python benchmarks/sample_speed.py [--num 25] [--seed 0]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy  # noqa: E402

import lib  # noqa: E402,F401
import theano  # noqa: E402

from fast_sampling import CachedPixelConv, sample_cached  # noqa: E402
from models import build as builder  # noqa: E402
from sampling import sample_naive  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-layers", type=int, default=10)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--q-levels", type=int, default=4)
    args = p.parse_args(argv)
    numpy.random.seed(1234)
    config = {"input_dim": 1, "dim": args.dim, "num_layers": args.num_layers,
              "q_levels": args.q_levels}
    net = builder.build(config)
    start = time.time()
    logits_fn = theano.function([net.X], net.logits)
    print("compile_s={:.1f}".format(time.time() - start))

    start = time.time()
    naive = sample_naive(logits_fn, args.num, 28, 28, 1, args.q_levels, seed=args.seed)
    naive_s = time.time() - start
    start = time.time()
    cached = CachedPixelConv(net.model.param_values(), builder.PREFIX, args.num_layers, 1,
                             args.q_levels)
    fast = sample_cached(cached, args.num, 28, 28, seed=args.seed)
    cached_s = time.time() - start
    print("naive_s={:.2f} cached_s={:.2f} speedup={:.1f} identical={}".format(
        naive_s, cached_s, naive_s / cached_s, bool((naive == fast).all())))


if __name__ == "__main__":
    main()
