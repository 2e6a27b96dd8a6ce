"""Benchmark: one model's training step under each installed BLAS library, interleaved.

The BLAS is fixed when a process loads it, so each library gets a worker
process of its own (``THEANO_FLAGS=blas.ldflags=...``); the parent then asks
the workers for one step each in turn (blis, openblas-openmp, ..., blis, ...),
so that all see the same machine noise, and reports medians, and how the
library that ``lib/blas_choice.py`` chose for this CPU compares with the best. A worker compiles the
same training function as ``train_mnist.py`` (``--graph`` fast or faithful,
clipped Adam, buffers kept for the fast graph) on the same random batch as
``train_step.py``, at that script's per-model defaults.

Libraries: those ``lib/blas_choice.py`` finds installed (``blis``,
``openblas-openmp``, or plain ``openblas`` where that build is missing), with
the ``blas.ldflags`` it gives them. Each worker prints which BLAS its process
actually mapped. Last line:

    <lib>_step_s=<median> ... best=<lib> chosen=<lib> chosen_over_best=<ratio>

Run: .venv/bin/python benchmarks/compare_blas.py [--model NAME] [--graph fast|faithful]
     [--steps 10] [--libs blis openblas-openmp ...]
"""
import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.train_step import DEFAULTS, random_batch  # noqa: E402


def blas_choice():
    """lib/blas_choice.py without importing ``lib`` (whose import loads Theano)."""
    spec = importlib.util.spec_from_file_location(
        "blas_choice", os.path.join(ROOT, "lib", "blas_choice.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHOICE = blas_choice()
LDFLAGS = {name: flags for name, (flags, _) in CHOICE.candidates().items()}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Time a training step under two BLAS "
                                "libraries, interleaved step by step.")
    p.add_argument("--model", choices=sorted(DEFAULTS), default="pixelconv",
                   help="model to time, at train_step.py's defaults (default: %(default)s)")
    p.add_argument("--graph", choices=["fast", "faithful"], default="fast",
                   help="which graph to time (default: %(default)s)")
    p.add_argument("--steps", type=int, default=10,
                   help="timed steps per library, interleaved (default: %(default)s)")
    p.add_argument("--libs", nargs="+", choices=sorted(LDFLAGS), default=sorted(LDFLAGS),
                   help="the libraries to time (default: every installed one, %(default)s)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be at least 1")
    return args


def mapped_blas():
    """The BLAS libraries this process has mapped, by name."""
    with open("/proc/self/maps") as f:
        maps = f.read()
    names = {"openblas-openmp": "/openblas-openmp/", "openblas-pthread": "/openblas-pthread/",
             "blis": "/libblis"}
    return ",".join(n for n, path in names.items() if path in maps) or "none"


def worker(args):
    """Compile, say ``ready <compile s> <blas>``, then time one step per ``step`` line.
    The replies go to the original stdout; everything else printed (Theano's
    compiler messages) goes to stderr, so it cannot break the exchange."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    import numpy
    import lib  # noqa: F401
    import theano.tensor as T
    from lib.training import compile_train_step, nll_per_subpixel
    from models import build as builder

    batch, layers, dim, q_levels = DEFAULTS[args.model]
    config = {"model": args.model, "conditional": "none", "input_dim": 1, "dim": dim,
              "num_layers": layers, "q_levels": q_levels}
    inputs, targets = random_batch(numpy.random.RandomState(0), batch, q_levels)
    numpy.random.seed(1234)
    net = builder.build(config, graph=args.graph)
    X_r = T.itensor4("X_r")
    start = time.time()
    fn, _ = compile_train_step([net.X, X_r], nll_per_subpixel(net.logits, X_r),
                               net.model.get_params(), 1e-3, 1.0, args.graph == "fast")
    fn(inputs, targets)  # allocates the buffers
    print("ready {:.1f} {}".format(time.time() - start, mapped_blas()), file=replies, flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        start = time.perf_counter()
        fn(inputs, targets)
        print("{:.6f}".format(time.perf_counter() - start), file=replies, flush=True)


def reply(name, proc):
    """The next line a worker sends; exits with a message when it has died."""
    line = proc.stdout.readline()
    if not line:
        sys.exit("the {} worker stopped (its messages are above)".format(name))
    return line.split()


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    workers = []
    for name in args.libs:
        env = dict(os.environ, THEANO_FLAGS=",".join(
            filter(None, [os.environ.get("THEANO_FLAGS", ""),
                          "blas.ldflags=" + LDFLAGS[name]])))
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--model", args.model,
               "--graph", args.graph]
        workers.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True))
    try:
        for name, proc in zip(args.libs, workers):
            ready = reply(name, proc)
            print("{}: compile_s={} mapped={}".format(name, ready[1], ready[2]), flush=True)
        times = [[] for _ in workers]
        for _ in range(args.steps):
            for name, proc, record in zip(args.libs, workers, times):
                proc.stdin.write("step\n")
                proc.stdin.flush()
                record.append(float(reply(name, proc)[0]))
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    medians = dict(zip(args.libs, (statistics.median(t) for t in times)))
    best = min(medians, key=medians.get)
    entry = CHOICE.read_record().get(CHOICE.cpu_key(), {})
    chosen = entry.get("choice", "none recorded")
    line = " ".join("{}_step_s={:.3f}".format(n, medians[n]) for n in args.libs)
    line += " best={} chosen={}".format(best, chosen)
    if chosen in medians:
        line += " chosen_over_best={:.3f}".format(medians[chosen] / medians[best])
    print("model={} graph={} steps={}".format(args.model, args.graph, args.steps))
    print(line)


if __name__ == "__main__":
    main()
