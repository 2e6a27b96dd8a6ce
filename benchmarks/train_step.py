"""Benchmark: one training step of the default MNIST model (10 layers, DIM 32, Q_LEVELS 4).

Builds two training functions on random data at batch 100:

* ours: ``models.build`` + ``lib.training`` (the cost fused into one softmax
  cross-entropy op), as ``train_mnist.py`` trains;
* reference: the same network with the cost written as the original script
  writes it (``Softmax`` layer, reshape, ``categorical_crossentropy``).

Both use the same clipped ``lasagne.updates.adam``. Prints the compile times,
the median step times, the peak memory of this process and, as its last line,

    step_s=<ours> images_per_s=<n> gflops=<model FLOPs per step / step_s> reference_step_s=<s> speedup=<reference / ours>

Model FLOPs: 2 * multiply-adds of every convolution at its (pre-crop) output
size, times 3 for the forward pass, the input gradient and the weight gradient.

Run: .venv/bin/python benchmarks/train_step.py [--steps 10] [--batch-size 100] [--cold]
(--cold compiles into an empty Theano cache to time a first-ever compile.)
"""
import argparse
import os
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Time training steps of the MNIST PixelCNN.")
    p.add_argument("--steps", type=int, default=10, help="timed steps per function")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--num-layers", type=int, default=10)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--q-levels", type=int, default=4)
    p.add_argument("--cold", action="store_true",
                   help="compile into a fresh, empty Theano cache (first-compile time)")
    p.add_argument("--skip-reference", action="store_true", help="time ours only")
    return p.parse_args(argv)


def conv_flops(net, height, width, batch):
    """Forward FLOPs (2 per multiply-add) of every Conv2D in a built network."""
    import theano
    import numpy
    layer = net.layer
    names = list(layer.convs)
    shapes = theano.function([net.X], [layer.convs[n].output().shape for n in names])(
        numpy.zeros((batch, height, width, 1), dtype="float32"))
    total = 0
    for name, shape in zip(names, shapes):
        out_ch, in_ch, kh, kw = layer.convs[name].filter_shape
        total += 2 * int(numpy.prod(shape)) * in_ch * kh * kw
    return total


def time_steps(fn, x, t, steps):
    fn(x, t)  # warm-up: first call allocates
    times = []
    for _ in range(steps):
        start = time.time()
        fn(x, t)
        times.append(time.time() - start)
    times.sort()
    return times[len(times) // 2]


def main(argv=None):
    args = parse_args(argv)
    if args.cold:
        cache = tempfile.mkdtemp(prefix="theano-cold-")
        flags = os.environ.get("THEANO_FLAGS", "")
        os.environ["THEANO_FLAGS"] = ",".join(filter(None, [flags, "base_compiledir=" + cache]))

    import numpy
    import lib  # noqa: F401
    import theano
    import theano.tensor as T
    from lib import Softmax
    from lib.training import clipped_adam, nll_per_subpixel
    from models import build as builder

    config = {"input_dim": 1, "dim": args.dim, "num_layers": args.num_layers,
              "q_levels": args.q_levels}
    rng = numpy.random.RandomState(0)
    targets = rng.randint(0, args.q_levels, (args.batch_size, 28, 28, 1)).astype("int32")
    inputs = (targets / numpy.float32(args.q_levels - 1)).astype("float32")

    def compile_step(cost_of):
        numpy.random.seed(1234)
        net = builder.build(config)
        X_r = T.itensor4("X_r")
        updates, _ = clipped_adam(cost_of(net, X_r), net.model.get_params(), 1e-3, 1.0)
        start = time.time()
        fn = theano.function([net.X, X_r], updates=updates)
        return net, fn, time.time() - start

    def original_cost(net, X_r):
        probs = Softmax(net.layer).output()
        return T.nnet.categorical_crossentropy(
            probs.reshape((-1, probs.shape[probs.ndim - 1])), X_r.flatten()).mean()

    net, ours, ours_compile = compile_step(lambda n, X_r: nll_per_subpixel(n.logits, X_r))
    print("compile_s={:.1f} ({} cache)".format(ours_compile, "cold" if args.cold else "warm"))
    flops = 3 * conv_flops(net, 28, 28, args.batch_size)
    step = time_steps(ours, inputs, targets, args.steps)
    print("ours: median step {:.3f} s over {} steps".format(step, args.steps))
    line = "step_s={:.3f} images_per_s={:.1f} gflops={:.1f}".format(
        step, args.batch_size / step, flops / step / 1e9)
    if not args.skip_reference:
        _, reference, ref_compile = compile_step(original_cost)
        print("reference compile_s={:.1f}".format(ref_compile))
        ref_step = time_steps(reference, inputs, targets, args.steps)
        print("reference: median step {:.3f} s".format(ref_step))
        line += " reference_step_s={:.3f} speedup={:.2f}".format(ref_step, ref_step / step)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("model_gflop_per_step={:.1f} peak_rss_mb={:.0f}".format(flops / 1e9, peak_mb))
    print(line)


if __name__ == "__main__":
    main()
