"""Benchmark: the binarized-MNIST table of "Pixel Recurrent Neural Networks"
(van den Oord, Kalchbrenner, Kavukcuoglu, ICML 2016, table 4), on this machine's budget.

Every model is trained for the same number of Adam steps (``--steps``, batch
``--batch-size``) on binarized MNIST (Q_LEVELS 2) and scored on the first
``--valid-count`` binarized test images, in nats per image (the paper's unit)
and per sub-pixel:

    masked       the paper's PixelCNN: 7x7 mask A, residual blocks of figure 5, h = 16
    rowlstm      Row LSTM, 7 layers, h = 16
    diag1        Diagonal BiLSTM, 1 layer, h = 32          (the paper's MNIST setting)
    diag7        Diagonal BiLSTM, 7 layers, h = 16         (the paper's MNIST setting)
    pixelconv    the original code's model, 10 layers, DIM 32
    gated        the gated PixelCNN, 10 layers, DIM 32

The paper gives its MNIST layer counts for the Diagonal BiLSTM only; the
PixelCNN and the Row LSTM get 7 blocks of h = 16 here, like the deep BiLSTM.
Binarization: the fixed one of Salakhutdinov and Murray when the data folder
holds ``binarized_mnist_*.amat``, else MNIST binarized afresh every epoch (the
test images once, with a fixed seed); NLLs on the two are close, not the
same. The paper trained to convergence on GPUs; a CPU budget of a few hundred
steps ranks early training only, far above the paper's numbers.

Writes ``benchmarks/results/paper_table.json`` after every model, prints a
markdown table; the last line is machine-readable::

    masked=<nats/image> rowlstm=<...> ... total_s=<s>

Run:  .venv/bin/python benchmarks/paper_table.py --data-dir ../shared/data/mnist
      [--steps 300] [--batch-size 16] [--valid-count 1000] [--models masked,diag1]
Quick smoke test: --steps 2 --valid-count 16 --models masked --out /tmp/paper.json
"""
import argparse
import os
import time

import numpy

import compare_models as common  # the script's folder is on sys.path; it adds the root
import quantize  # noqa: E402
from data import binarized  # noqa: E402

# name -> (the paper's name, its NLL in nats per image, our config)
RUNS = {
    "masked": ("PixelCNN", 81.30, {"model": "masked", "num_layers": 7, "dim": 32}),
    "rowlstm": ("Row LSTM", 80.54, {"model": "rowlstm", "num_layers": 7, "dim": 32}),
    "diag1": ("Diagonal BiLSTM (1 layer, h = 32)", 80.75,
              {"model": "diagbilstm", "num_layers": 1, "dim": 64}),
    "diag7": ("Diagonal BiLSTM (7 layers, h = 16)", 79.20,
              {"model": "diagbilstm", "num_layers": 7, "dim": 32}),
    "pixelconv": ("(not in the paper) pixelConv, 10 layers, DIM 32", None,
                  {"model": "pixelconv", "num_layers": 10, "dim": 32}),
    "gated": ("(not in the paper) gated PixelCNN, 10 layers, DIM 32", None,
              {"model": "gated", "num_layers": 10, "dim": 32}),
}
PIXELS = 28 * 28


def parse_args(argv=None):
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(
        description="Train each model of the PixelRNN paper's MNIST table (and pixelConv, "
                    "gated) for the same budget on binarized MNIST; compare with the paper.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=300, help="training steps per model")
    p.add_argument("--batch-size", type=int, default=16, help="training images per step")
    p.add_argument("--valid-count", type=int, default=1000,
                   help="score on the first N binarized test images")
    p.add_argument("--valid-batch-size", type=int, default=100,
                   help="images per validation call (speed only)")
    p.add_argument("--seed", type=int, default=1234,
                   help="seeds the weights, the data order and the binarization")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--grad-clip", type=float, default=1.0, help="elementwise gradient clip")
    p.add_argument("--models", default=",".join(RUNS),
                   help="comma-separated subset of: " + ", ".join(RUNS))
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DIR"),
                   help="folder with the MNIST IDX files (and, optionally, the fixed "
                        "binarized_mnist_*.amat files)")
    p.add_argument("--out", default=os.path.join(common.ROOT, "benchmarks", "results",
                                                 "paper_table.json"),
                   help="JSON file for the results")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in RUNS]
    if unknown:
        p.error("unknown model(s) {}; choose from {}".format(", ".join(unknown), ", ".join(RUNS)))
    for name in ("steps", "batch_size", "valid_count", "valid_batch_size"):
        if getattr(args, name) < 1:
            p.error("--{} must be at least 1".format(name.replace("_", "-")))
    args.q_levels = 2
    return args


class BinarizedData(object):
    """Binarized MNIST for ``compare_models.Run``: the training bits of each epoch
    (drawn when the epoch starts, for dynamic binarization) and the validation subset."""

    def __init__(self, data_dir, valid_count, seed, batch_size):
        data = binarized.load_binarized(data_dir)
        self.binarization = data["binarization"]
        self.grey = data["train_images"]
        self.seed, self.batch_size, self.epoch = seed, batch_size, None
        self.train_labels = data["train_labels"]
        test = data["test_images"][:valid_count]
        self.valid_x, self.valid_t = quantize.quantize(test[..., None], 2)
        self.valid_labels = None

    def batch(self, idx, step):
        epoch = step * self.batch_size // len(self.grey)
        if epoch != self.epoch:
            bits = self.grey if self.binarization == binarized.FIXED else \
                binarized.epoch_binarization(self.grey, self.seed, epoch)
            self.train_x, self.train_t = quantize.quantize(bits[..., None], 2)
            self.epoch = epoch
        return self.train_x[idx], self.train_t[idx], None


def table(results):
    """Markdown table of the results beside the paper's."""
    lines = ["| model | ours: config | params | NLL (nats/image) | nats/sub-pixel | paper "
             "(nats/image) | step (s) |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, r in results["models"].items():
        paper = "{:.2f}".format(r["paper_nll"]) if r["paper_nll"] is not None else "-"
        c = r["config"]
        unit = "layer" if c["model"] in ("pixelconv", "gated") else "block"
        config = "{} {}{}, DIM {}".format(c["num_layers"], unit,
                                          "" if c["num_layers"] == 1 else "s", c["dim"])
        lines.append("| {} | {} | {:,} | {:.2f} | {:.4f} | {} | {:.3f} |".format(
            r["paper_name"], config, r["params"], r["nats_per_image"], r["valid_nll"], paper,
            r["median_step_s"]))
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    begin = time.time()
    data = BinarizedData(args.data_dir, args.valid_count, args.seed, args.batch_size)
    print(binarized.describe(data.binarization), flush=True)
    order = numpy.random.RandomState(args.seed).permutation(len(data.grey))
    results = {"settings": {
        "steps": args.steps, "batch_size": args.batch_size, "valid_count": args.valid_count,
        "seed": args.seed, "lr": args.lr, "grad_clip": args.grad_clip,
        "binarization": data.binarization,
        "data": "binarized MNIST train (seeded permutation), first {} binarized test "
                "images".format(args.valid_count)}, "models": {}}
    for name in args.models:
        paper_name, paper_nll, config = RUNS[name]
        print("== {} ==".format(name), flush=True)
        run = common.Run(name, config, args)
        print("  compiled in {:.1f} s, {} parameters".format(run.compile_s, run.num_params),
              flush=True)
        costs, times = run.train(data, order)
        nll = run.validate(data)
        results["models"][name] = {
            "paper_name": paper_name, "paper_nll": paper_nll, "config": run.config,
            "params": run.num_params, "valid_nll": nll, "nats_per_image": nll * PIXELS,
            "train_cost_last20": float(numpy.mean(costs[-20:])),
            "median_step_s": float(numpy.median(times)), "compile_s": run.compile_s,
            "train_s": float(sum(times))}
        results["total_s"] = time.time() - begin
        common.write_json(args.out, results)
        print("  {}: {:.2f} nats/image (paper: {})".format(
            name, nll * PIXELS, paper_nll if paper_nll is not None else "-"), flush=True)
    print()
    print(table(results))
    print(" ".join(["{}={:.2f}".format(n, r["nats_per_image"])
                    for n, r in results["models"].items()] +
                   ["total_s={:.0f}".format(results["total_s"])]))


if __name__ == "__main__":
    main()
