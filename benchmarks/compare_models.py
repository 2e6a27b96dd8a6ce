"""Benchmark: every model of the toolkit trained on real MNIST with the same small budget.

Six runs, identical except for the network:

    pixelconv        num_layers 10, DIM 32 (num_layers counts all layers)
    gated            num_layers 10, DIM 32
    gated_class      the same, conditioned on the one-hot digit label
    masked           num_layers 8 residual blocks (1x1, 3x3, 1x1), DIM 32
    rowlstm          num_layers 2 Row LSTM layers (each in a residual block), DIM 32
    diagbilstm       --diag-layers Diagonal BiLSTM layers (default 1), DIM 32

Every model trains on its fast graph, compiled as ``train_mnist.py`` compiles
it (``--graph faithful`` for the original layouts). All runs use Q_LEVELS 4, the same seed (weights drawn after
``numpy.random.seed(seed)``), the same batch size and number of steps, the
same data order (one seeded permutation of the 60000 training images, read in
consecutive batches) and clipped Adam (lr 1e-3, clip 1), as ``train_mnist.py``.

Reported per model: validation NLL on the first --valid-count test images (nats
per sub-pixel and bits/dim), the median training-step time (and steps/s; the
compile is timed separately), the compile time and the number of parameters.
For the class-conditional model also the validation NLL with every label
replaced by a wrong one, (label + k) % 10, for each k = 1..9 and on average.

Writes ``benchmarks/results/compare_models.json`` (after every model, so a
partial run keeps what it measured), and beside it ``class_grid.png`` (10x10:
one row per digit, drawn by the class-conditional model) and
``gated_samples.png`` (5x5 from the unconditional gated model). Prints a
markdown table; the last line is machine-readable::

    pixelconv=<nll> gated=<nll> ... class_wrong=<nll> total_s=<s>

Run:  .venv/bin/python benchmarks/compare_models.py [--steps 250] [--batch-size 32]
      [--valid-count 500] [--models gated,masked] [--data-dir DIR]
Quick smoke test: --steps 3 --valid-count 64 --no-pictures --out /tmp/cmp.json
"""
import argparse
import json
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy  # noqa: E402

import lib  # noqa: E402,F401  (configures Theano before it is imported)
import theano  # noqa: E402
import theano.tensor as T  # noqa: E402

import quantize  # noqa: E402
import sampling  # noqa: E402
from data import mnist, pictures  # noqa: E402
from lib.checkpoint import atomic_write  # noqa: E402
from lib.training import compile_train_step, nll_per_example, nll_per_subpixel  # noqa: E402
from models import build as builder  # noqa: E402

LN2 = math.log(2.0)
DIM = 32

# name -> config (without the shared keys); the order the runs go in.
RUNS = {
    "pixelconv": {"model": "pixelconv", "num_layers": 10},
    "gated": {"model": "gated", "num_layers": 10},
    "gated_class": {"model": "gated", "num_layers": 10, "conditional": "class"},
    "masked": {"model": "masked", "num_layers": 8},
    "rowlstm": {"model": "rowlstm", "num_layers": 2},
    "diagbilstm": {"model": "diagbilstm", "num_layers": 1},
}


def parse_args(argv=None):
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(
        description="Train every model on MNIST with the same small budget and compare "
                    "validation NLL, speed and size.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=250, help="training steps per model")
    p.add_argument("--batch-size", type=int, default=32, help="training images per step")
    p.add_argument("--valid-count", type=int, default=500,
                   help="validate on the first N test images")
    p.add_argument("--valid-batch-size", type=int, default=100,
                   help="images per validation call (speed only)")
    p.add_argument("--diag-layers", type=int, default=1,
                   help="Diagonal BiLSTM layers of the diagbilstm model")
    p.add_argument("--seed", type=int, default=1234,
                   help="seeds the weights, the data order and the samples")
    p.add_argument("--q-levels", type=int, default=4, help="grey levels per pixel")
    p.add_argument("--graph", choices=["fast", "faithful"], default="fast",
                   help="train each model's fast graph (as train_mnist.py does) or its "
                        "original layout")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--grad-clip", type=float, default=1.0, help="elementwise gradient clip")
    p.add_argument("--models", default=",".join(RUNS),
                   help="comma-separated subset of: " + ", ".join(RUNS))
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DIR"),
                   help="folder with the MNIST IDX files")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                                 "compare_models.json"),
                   help="JSON file for the results")
    p.add_argument("--pictures-dir", default=os.path.join(ROOT, "benchmarks", "results"),
                   help="where class_grid.png and gated_samples.png go")
    p.add_argument("--no-pictures", action="store_true",
                   help="do not draw the sample grids")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in RUNS]
    if unknown:
        p.error("unknown model(s) {}; choose from {}".format(", ".join(unknown), ", ".join(RUNS)))
    for name in ("steps", "batch_size", "valid_count", "valid_batch_size", "diag_layers"):
        if getattr(args, name) < 1:
            p.error("--{} must be at least 1".format(name.replace("_", "-")))
    return args


class Data(object):
    """Quantised MNIST: training inputs/targets/labels and the validation subset."""

    def __init__(self, data_dir, q_levels, valid_count):
        data = mnist.load_dataset(data_dir)
        self.train_x, self.train_t = quantize.quantize(data["train_images"][..., None], q_levels)
        self.train_labels = data["train_labels"].astype(numpy.int64)
        test = data["test_images"][:valid_count]
        self.valid_x, self.valid_t = quantize.quantize(test[..., None], q_levels)
        self.valid_labels = data["test_labels"][:valid_count].astype(numpy.int64)

    def batch(self, idx, step):
        """(inputs, targets, labels) of training images ``idx`` at ``step``."""
        return self.train_x[idx], self.train_t[idx], self.train_labels[idx]


class Run(object):
    """One model: built, compiled, trained and validated."""

    def __init__(self, name, config, args):
        self.name, self.args = name, args
        self.config = dict({"dim": DIM}, input_dim=1, q_levels=args.q_levels, **config)
        numpy.random.seed(args.seed)  # the same weight stream for every model
        self.net = builder.build(self.config, graph=args.graph)
        self.conditional = self.net.H is not None
        params = self.net.model.get_params()
        self.num_params = int(sum(p.get_value(borrow=True).size for p in params))
        start = time.time()
        targets = T.itensor4("targets")
        inputs = [self.net.X, targets] + self.net.inputs[1:]
        cost = nll_per_subpixel(self.net.logits, targets)
        self.train_fn, _ = compile_train_step(inputs, cost, params, args.lr, args.grad_clip,
                                              keep_buffers=args.graph == "fast")
        self.nll_fn = theano.function(inputs, nll_per_example(self.net.logits, targets))
        self.compile_s = time.time() - start

    def train(self, data, order):
        """``args.steps`` Adam steps over consecutive batches of ``order``; returns the
        per-step costs and wall-clock times."""
        bs = self.args.batch_size
        costs, times = [], []
        for step in range(self.args.steps):
            idx = order[(step * bs) % len(order):][:bs]
            x, t, labels = data.batch(idx, step)
            batch = [x, t]
            if self.conditional:
                batch.append(builder.one_hot(labels))
            start = time.time()
            cost = float(self.train_fn(*batch))
            times.append(time.time() - start)
            if not math.isfinite(cost):
                raise RuntimeError("{}: training cost {} at step {}".format(
                    self.name, cost, step + 1))
            costs.append(cost)
            if (step + 1) % 25 == 0 or step == 0:
                print("  {} step {}/{}: cost {:.4f} ({:.2f} s/step)".format(
                    self.name, step + 1, self.args.steps, cost, times[-1]), flush=True)
        return costs, times

    def validate(self, data, labels=None):
        """Mean NLL (nats per sub-pixel) on the validation images; ``labels`` gives the
        class of each image for the conditional model."""
        bs = self.args.valid_batch_size
        total = 0.0
        for s in range(0, len(data.valid_x), bs):
            batch = [data.valid_x[s:s + bs], data.valid_t[s:s + bs]]
            if self.conditional:
                batch.append(builder.one_hot(labels[s:s + bs]))
            total += float(self.nll_fn(*batch).sum())
        return total / data.valid_t.size


def save_bins(path, bins, rows, cols, q_levels):
    """Sampled bins (num, h, w, 1) -> a PNG grid at ``path``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pictures.save_png(path, pictures.make_grid(quantize.to_display(bins[..., 0], q_levels),
                                           rows, cols))


def draw_pictures(run, args):
    """The sample grids of the gated models; returns {picture: seconds}."""
    timing = {}
    if run.name == "gated_class":
        labels = numpy.repeat(numpy.arange(10), 10)  # row r: ten samples of digit r
        start = time.time()
        bins = sampling.sample(run.net, len(labels), 28, 28, seed=args.seed, progress=False,
                               condition=builder.one_hot(labels))
        save_bins(os.path.join(args.pictures_dir, "class_grid.png"), bins, 10, 10, args.q_levels)
        timing["class_grid_s"] = time.time() - start
    elif run.name == "gated":
        start = time.time()
        bins = sampling.sample(run.net, 25, 28, 28, seed=args.seed, progress=False)
        save_bins(os.path.join(args.pictures_dir, "gated_samples.png"), bins, 5, 5, args.q_levels)
        timing["gated_samples_s"] = time.time() - start
    return timing


def describe(config):
    """Short text of a model's size options."""
    unit = {"masked": "block", "rowlstm": "Row LSTM layer",
            "diagbilstm": "Diagonal BiLSTM layer"}.get(config["model"], "layer")
    return "{} {}{}".format(config["num_layers"], unit, "" if config["num_layers"] == 1 else "s")


def table(results):
    """Markdown table of the results."""
    lines = ["| model | config | params | val NLL (nats/sub-px) | bits/dim | train cost (last 20) "
             "| step (s) | steps/s | compile (s) | train (s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    row = "| {} | {} | {} | {:.4f} | {:.4f} | {:.4f} | {:.3f} | {:.2f} | {:.1f} | {:.0f} |"
    for name, r in results["models"].items():
        lines.append(row.format(name, describe(r["config"]), r["params"], r["valid_nll"],
                                r["valid_bits_per_dim"], r["train_cost_last20"],
                                r["median_step_s"], r["steps_per_s"], r["compile_s"],
                                r["train_s"]))
    wrong = results["models"].get("gated_class", {}).get("wrong_label")
    if wrong:
        lines.append("")
        lines.append("gated_class with wrong labels (label + k) % 10: mean {:.4f} nats/sub-px "
                     "(right labels {:.4f}); per k: {}".format(
                         wrong["mean_nll"], results["models"]["gated_class"]["valid_nll"],
                         ", ".join("{}: {:.4f}".format(k, v)
                                   for k, v in sorted(wrong["per_k"].items(),
                                                      key=lambda kv: int(kv[0])))))
    return "\n".join(lines)


def write_json(path, results):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: f.write(json.dumps(results, indent=1).encode()))


def main(argv=None):
    args = parse_args(argv)
    begin = time.time()
    data = Data(args.data_dir, args.q_levels, args.valid_count)
    order = numpy.random.RandomState(args.seed).permutation(len(data.train_x))
    runs = dict(RUNS)
    runs["diagbilstm"] = dict(RUNS["diagbilstm"], num_layers=args.diag_layers)
    results = {"settings": {
        "steps": args.steps, "batch_size": args.batch_size, "valid_count": args.valid_count,
        "seed": args.seed, "q_levels": args.q_levels, "dim": DIM, "lr": args.lr,
        "grad_clip": args.grad_clip, "data": "MNIST train (seeded permutation), first {} "
        "test images for validation".format(args.valid_count),
        "machine": "2 cores, shared with a training run"}, "models": {}}
    for name in args.models:
        print("== {} ==".format(name), flush=True)
        start = time.time()
        run = Run(name, runs[name], args)
        print("  compiled in {:.1f} s, {} parameters".format(run.compile_s, run.num_params),
              flush=True)
        costs, times = run.train(data, order)
        train_s = float(sum(times))
        median = float(numpy.median(times))
        start_valid = time.time()
        nll = run.validate(data, data.valid_labels)
        r = {"config": run.config, "params": run.num_params, "valid_nll": nll,
             "valid_bits_per_dim": nll / LN2, "valid_nats_per_image": nll * 28 * 28,
             "train_cost_first20": float(numpy.mean(costs[:20])),
             "train_cost_last20": float(numpy.mean(costs[-20:])),
             "median_step_s": median, "steps_per_s": 1.0 / median,
             "compile_s": run.compile_s, "train_s": train_s,
             "valid_s": time.time() - start_valid}
        if run.conditional:
            per_k = {str(k): run.validate(data, (data.valid_labels + k) % 10)
                     for k in range(1, 10)}
            r["wrong_label"] = {"per_k": per_k, "mean_nll": float(numpy.mean(list(per_k.values()))),
                                "rule": "(label + k) % 10"}
            print("  wrong labels: mean {:.4f} vs right {:.4f}".format(
                r["wrong_label"]["mean_nll"], nll), flush=True)
        if not args.no_pictures:
            r.update(draw_pictures(run, args))
        r["total_s"] = time.time() - start
        results["models"][name] = r
        results["total_s"] = time.time() - begin
        write_json(args.out, results)
        print("  {}: valid NLL {:.4f} nats/sub-px, {:.3f} s/step, {:.0f} s in all".format(
            name, nll, median, r["total_s"]), flush=True)
    print()
    print(table(results))
    fields = ["{}={:.4f}".format(n, r["valid_nll"]) for n, r in results["models"].items()]
    if "gated_class" in results["models"]:
        fields.append("class_wrong={:.4f}".format(
            results["models"]["gated_class"]["wrong_label"]["mean_nll"]))
    fields.append("total_s={:.0f}".format(results["total_s"]))
    print(" ".join(fields))


if __name__ == "__main__":
    main()
