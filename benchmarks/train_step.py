"""Benchmark: one training step, the fast graph against today's faithful graph.

Builds two training functions of the same model on the same random batch:

* ours: the channels-last graph (``models.build(..., graph="fast")``), the cost
  on the logits, compiled keeping its buffers, as ``train_mnist.py`` trains;
* reference: the faithful graph. For ``pixelconv`` its cost is written as the
  original script writes it (``Softmax`` layer, reshape,
  ``categorical_crossentropy``); for the other models it is the graph and cost
  that ``train_mnist.py --graph faithful`` trains.

Each model's defaults are the configuration it is timed at: ``pixelconv`` and
``gated`` as ``train_mnist.py`` trains them (10 layers, DIM 32, Q_LEVELS 4,
batch 100); ``masked``, ``rowlstm`` and ``diagbilstm`` as
``benchmarks/paper_table.py`` trains them (7 blocks or LSTM layers, DIM 32,
Q_LEVELS 2, batch 16; the 1-layer Diagonal BiLSTM is ``--num-layers 1 --dim
64``). Images are 28 x 28.

Both use the same clipped ``lasagne.updates.adam``. The two functions are
timed in turn, step by step (ours, reference, ours, ...), so that both see
the same machine noise; medians are reported. Also printed: compile times,
each step's peak of allocated arrays (tracemalloc, measured on a separate
call) and the process's peak resident memory. Last line:

    step_s=<ours> images_per_s=<n> gflops=<model FLOPs / step_s> reference_step_s=<s> speedup=<reference / ours>

Model FLOPs: 2 * multiply-adds of every convolution of the faithful graph at
its (pre-crop) output size, times 3 (forward, input and weight gradients); for
the masked and PixelRNN models every filter, the LSTMs' state-to-state ones
included, counted once per pixel (masked taps too).

Run: .venv/bin/python benchmarks/train_step.py [--model NAME] [--conditional class]
     [--num-layers N] [--dim D] [--steps 10] [--cold]
     (--cold compiles into an empty Theano cache)
"""
import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


# model -> (batch size, layers, DIM, Q_LEVELS) it is timed at (module docstring)
DEFAULTS = {"pixelconv": (100, 10, 32, 4), "gated": (100, 10, 32, 4),
            "masked": (16, 7, 32, 2), "rowlstm": (16, 7, 32, 2), "diagbilstm": (16, 7, 32, 2)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Time training steps of the fast graph against the faithful one.")
    p.add_argument("--model", choices=sorted(DEFAULTS), default="pixelconv",
                   help="model to time (default: %(default)s)")
    p.add_argument("--conditional", choices=["none", "class"], default="none",
                   help="gated only: condition on one-hot labels (default: %(default)s)")
    p.add_argument("--steps", type=int, default=10,
                   help="timed steps per function, interleaved (default: %(default)s)")
    p.add_argument("--batch-size", type=int, help="(default: the model's, see above)")
    p.add_argument("--num-layers", type=int, help="(default: the model's)")
    p.add_argument("--dim", type=int, help="(default: the model's)")
    p.add_argument("--q-levels", type=int, help="(default: the model's)")
    p.add_argument("--cold", action="store_true",
                   help="compile into a fresh, empty Theano cache (first-compile time)")
    p.add_argument("--skip-reference", action="store_true", help="time ours only")
    args = p.parse_args(argv)
    if args.conditional != "none" and args.model != "gated":
        p.error("--conditional needs --model gated")
    if args.steps < 1:
        p.error("--steps must be at least 1")
    for key, value in zip(("batch_size", "num_layers", "dim", "q_levels"),
                          DEFAULTS[args.model]):
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def conv_flops(net, inputs):
    """Forward FLOPs (2 per multiply-add) of every Conv2D of a faithful network."""
    import numpy
    import theano
    if not hasattr(net.layer, "convs"):  # masked / PixelRNN: every filter at every pixel
        batch, height, width = inputs[0].shape[:3]
        return 2 * batch * height * width * sum(
            int(numpy.prod(p.get_value().shape)) for p in net.model.get_params()
            if p.name.endswith(".filter"))
    convs = net.layer.convs
    names = list(convs)
    shapes = theano.function(net.inputs, [convs[n].output().shape for n in names],
                             on_unused_input="ignore")(*inputs)
    total = 0
    for name, shape in zip(names, shapes):
        _, in_ch, kh, kw = convs[name].filter_shape
        total += 2 * int(numpy.prod(shape)) * in_ch * kh * kw
    return total


def random_batch(rng, batch_size, q_levels):
    """(inputs float32, targets int32), both (batch_size, 28, 28, 1): random bins
    drawn from ``rng`` and their network inputs."""
    import numpy
    targets = rng.randint(0, q_levels, (batch_size, 28, 28, 1)).astype("int32")
    return (targets / numpy.float32(q_levels - 1)).astype("float32"), targets


def step_peak_mb(fn, args):
    """Peak MB of arrays allocated during the first call of ``fn``: its working
    memory (kept between calls by a function compiled with allow_gc=False)."""
    tracemalloc.start()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2.0 ** 20


def interleaved_medians(fns, args, steps):
    """Median seconds per call of each function, calling them in turn."""
    times = [[] for _ in fns]
    for _ in range(steps):
        for fn, record in zip(fns, times):
            start = time.perf_counter()
            fn(*args)
            record.append(time.perf_counter() - start)
    return [sorted(t)[len(t) // 2] for t in times]


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
    from lib.training import compile_train_step, nll_per_subpixel
    from models import build as builder

    config = {"model": args.model, "conditional": args.conditional, "input_dim": 1,
              "dim": args.dim, "num_layers": args.num_layers, "q_levels": args.q_levels}
    rng = numpy.random.RandomState(0)
    inputs, targets = random_batch(rng, args.batch_size, args.q_levels)
    extra = [builder.one_hot(rng.randint(0, 10, args.batch_size))] \
        if args.conditional == "class" else []
    call_args = [inputs, targets] + extra

    def compile_step(graph, cost_of, keep_buffers):
        numpy.random.seed(1234)
        net = builder.build(config, graph=graph)
        X_r = T.itensor4("X_r")
        start = time.time()
        fn, _ = compile_train_step([net.X, X_r] + net.inputs[1:], cost_of(net, X_r),
                                   net.model.get_params(), 1e-3, 1.0, keep_buffers)
        return net, fn, time.time() - start

    def original_cost(net, X_r):
        probs = Softmax(net.layer).output()
        return T.nnet.categorical_crossentropy(
            probs.reshape((-1, probs.shape[probs.ndim - 1])), X_r.flatten()).mean()

    def our_cost(net, X_r):
        return nll_per_subpixel(net.logits, X_r)

    cache = "cold" if args.cold else "warm"
    print("model={} conditional={} blas.ldflags={!r} BLIS_NUM_THREADS={}".format(
        args.model, args.conditional, theano.config.blas.ldflags,
        os.environ.get("BLIS_NUM_THREADS")), flush=True)
    _, ours, ours_compile = compile_step("fast", our_cost, True)
    print("ours: compile_s={:.1f} ({} cache)".format(ours_compile, cache), flush=True)
    fns, names = [ours], ["ours"]
    if not args.skip_reference:
        ref_cost = original_cost if args.model == "pixelconv" else our_cost
        ref_net, reference, ref_compile = compile_step("faithful", ref_cost, False)
        print("reference: compile_s={:.1f} ({} cache)".format(ref_compile, cache), flush=True)
        fns.append(reference)
        names.append("reference")
        flops = 3 * conv_flops(ref_net, [inputs] + extra)
    else:
        numpy.random.seed(1234)
        flops = 3 * conv_flops(builder.build(config), [inputs] + extra)

    for name, fn in zip(names, fns):  # the first call allocates every buffer
        print("{}: step_peak_mb={:.0f}".format(name, step_peak_mb(fn, call_args)), flush=True)
    medians = interleaved_medians(fns, call_args, args.steps)
    for name, median in zip(names, medians):
        print("{}: median step {:.3f} s over {} interleaved steps".format(
            name, median, args.steps))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("model_gflop_per_step={:.1f} process_peak_rss_mb={:.0f}".format(flops / 1e9, peak_mb))
    step = medians[0]
    line = "step_s={:.3f} images_per_s={:.1f} gflops={:.1f}".format(
        step, args.batch_size / step, flops / step / 1e9)
    if not args.skip_reference:
        line += " reference_step_s={:.3f} speedup={:.2f}".format(medians[1], medians[1] / step)
    print(line)


if __name__ == "__main__":
    main()
