"""Benchmark: how fast Theano's BLAS multiplies matrices of the shapes a training step needs.

A convolution of the MNIST model lowers to products of a (batch*28*28) x K
patch matrix with a K x 32 filter matrix (K = taps x channels: 192 for the 2x3
vertical layers, 64-128 for the horizontal ones, 32 for the 1x1 layers). The
GFLOP/s printed here bound what any BLAS-based training step can reach on this
machine. Last line: ``best_gflops=<max over the shapes>``.

Run: .venv/bin/python benchmarks/gemm_ceiling.py [--repeats 10]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy  # noqa: E402

import lib  # noqa: E402,F401
import theano  # noqa: E402
import theano.tensor as T  # noqa: E402

SHAPES = [(78400, 192, 32), (78400, 128, 32), (78400, 32, 32), (32, 78400, 192),
          (192, 78400, 32)]  # (M, K, N): forward, and the two gradient products


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    a, b = T.matrix("a"), T.matrix("b")
    product = theano.function([a, b], T.dot(a, b))
    best = 0.0
    for m, k, n in SHAPES:
        x = numpy.random.rand(m, k).astype("float32")
        y = numpy.random.rand(k, n).astype("float32")
        product(x, y)
        start = time.time()
        for _ in range(args.repeats):
            product(x, y)
        seconds = (time.time() - start) / args.repeats
        gflops = 2.0 * m * k * n / seconds / 1e9
        best = max(best, gflops)
        print("M={} K={} N={}: {:.2f} ms, {:.1f} GFLOP/s".format(m, k, n, seconds * 1e3, gflops))
    print("best_gflops={:.1f}".format(best))


if __name__ == "__main__":
    main()
