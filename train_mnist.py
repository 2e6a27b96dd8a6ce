"""Train the 10-layer PixelCNN on MNIST, resumably.

    python train_mnist.py                       # the default run (make train)
    python train_mnist.py --epochs 1 --train-limit 1000 --valid-limit 200   # quick look
    python train_mnist.py --resume runs/mnist   # continue an interrupted run

Every epoch writes to --out-dir: a checkpoint named with the epoch and the
validation NLL, 25 samples and 25 reconstructions as 5x5 PNG grids, the NLL
history (history.json, curves.png) and the resumable state (state.npz).
Ctrl-C stops after the current step and saves the resumable state.
"""
import argparse
import json
import math
import os
import signal
import sys
import time

import numpy

import lib  # noqa: F401  (configures Theano before it is imported)
import theano
from tqdm import tqdm

import images
import mnist_data
import quantize
import sampling
from lib.checkpoint import CheckpointError, atomic_write, load_arrays, save_arrays
from lib.training import compile_train_step, nll_per_example, nll_per_subpixel
from models import build as builder

LN2 = math.log(2.0)
STATE_FILE = "state.npz"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
PRINT_EVERY = 100


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Train a PixelCNN (vertical/horizontal stacks) on MNIST digits. "
                    "The cost is the categorical cross-entropy over Q_LEVELS grey levels, "
                    "reported in nats per sub-pixel.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    m = p.add_argument_group("model (defaults: the original's constants, 10 layers)")
    m.add_argument("--num-layers", type=int, default=10,
                   help="layers of the network: the 7x7 first layer, num_layers-2 "
                        "stack blocks, then the 1x1 output layers (>= 2)")
    m.add_argument("--dim", type=int, default=32, help="feature maps per stack (DIM)")
    m.add_argument("--q-levels", type=int, default=4,
                   help="grey levels each pixel is quantised to (Q_LEVELS, 2..256)")
    t = p.add_argument_group("optimisation")
    t.add_argument("--batch-size", type=int, default=100, help="training images per step")
    t.add_argument("--valid-batch-size", type=int, default=200,
                   help="images per validation batch (affects speed only)")
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    t.add_argument("--grad-clip", type=float, default=1.0,
                   help="clip every gradient elementwise to [-c, c] (0 disables)")
    t.add_argument("--epochs", type=int, default=20, help="epochs to train (in total, "
                   "counting those done before --resume)")
    t.add_argument("--seed", type=int, default=1234,
                   help="seeds the weights, the per-epoch shuffles and the sample draws")
    d = p.add_argument_group("data and output")
    d.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    d.add_argument("--data-dir", default=None,
                   help="folder with the four IDX files (default: $MNIST_DIR, else a "
                        "per-user cache, downloading when absent)")
    d.add_argument("--train-limit", type=int, default=None,
                   help="use only the first N training images")
    d.add_argument("--valid-limit", type=int, default=None,
                   help="use only the first N test images for validation")
    d.add_argument("--out-dir", default="runs/mnist", help="where every output goes")
    d.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the run saved in DIR (its config is reused; DIR is "
                        "also the output folder)")
    d.add_argument("--save-original-format", action="store_true",
                   help="also write each checkpoint as the original's pickled dict (.pkl)")
    d.add_argument("--samples-every", type=int, default=1,
                   help="draw the 25 samples every N epochs (0: never); sampling is slow")
    d.add_argument("--state-every", type=int, default=200,
                   help="also save the resumable state every N iterations (0: per epoch only)")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    for name in ("num_layers", "dim", "batch_size", "valid_batch_size", "epochs"):
        if getattr(args, name) < (2 if name == "num_layers" else 1):
            p.error("--{} must be at least {}".format(name.replace("_", "-"),
                                                      2 if name == "num_layers" else 1))
    try:
        quantize.check_levels(args.q_levels)
    except ValueError as err:
        p.error(str(err))
    return args


class Trainer(object):
    """Owns the compiled functions, the data and the run's state."""

    def __init__(self, config, data, out_dir, progress=True):
        self.config, self.out_dir, self.progress = config, out_dir, progress
        numpy.random.seed(config["seed"])  # the original initialiser's random stream
        self.net = builder.build(config)
        self.params = self.net.model.get_params()
        q = config["q_levels"]
        self.train_x, self.train_t = quantize.quantize(data["train_images"][..., None], q)
        self.valid_x, self.valid_t = quantize.quantize(data["test_images"][..., None], q)

        X_r = theano.tensor.itensor4("X_r")
        cost = nll_per_subpixel(self.net.logits, X_r)
        self.train_fn, self.opt_state = compile_train_step(
            [self.net.X, X_r], cost, self.params, config["lr"], config["grad_clip"])
        self.nll_fn = theano.function([self.net.X, X_r], nll_per_example(self.net.logits, X_r))
        self.logits_fn = theano.function([self.net.X], self.net.logits)
        self.epoch, self.iteration, self.history = 0, 0, []

    # ----- state -------------------------------------------------------------------
    def state_arrays(self):
        arrays = {"param/" + p.name: p.get_value() for p in self.params}
        arrays.update({"opt/" + v.name: v.get_value() for v in self.opt_state})
        arrays["epoch"] = numpy.int64(self.epoch)
        arrays["iteration"] = numpy.int64(self.iteration)
        arrays["seed"] = numpy.int64(self.config["seed"])
        return arrays

    def save_state(self):
        save_arrays(os.path.join(self.out_dir, STATE_FILE), self.state_arrays())

    def load_state(self, path):
        arrays = load_arrays(path)
        self.net.model.set_param_values(
            {k[6:]: v for k, v in arrays.items() if k.startswith("param/")}, source=path)
        for v in self.opt_state:
            key = "opt/" + v.name
            if key not in arrays or arrays[key].shape != v.get_value(borrow=True).shape:
                raise CheckpointError("{}: optimizer state {} missing or mis-shaped".format(
                    path, v.name))
            v.set_value(arrays[key])
        self.epoch, self.iteration = int(arrays["epoch"]), int(arrays["iteration"])
        history_path = os.path.join(self.out_dir, HISTORY_FILE)
        if os.path.exists(history_path):
            with open(history_path) as f:
                self.history = [h for h in json.load(f) if h["epoch"] <= self.epoch]

    # ----- training ----------------------------------------------------------------
    def batches_per_epoch(self):
        return len(self.train_x) // self.config["batch_size"]

    def epoch_order(self, epoch):
        """The shuffle of epoch ``epoch``: a function of (seed, epoch) only, so a
        resumed run sees the same batches as an uninterrupted one."""
        return numpy.random.RandomState([self.config["seed"], epoch]).permutation(
            len(self.train_x))

    def train_epoch(self, stop_flag):
        """Run the rest of the current epoch; returns the mean training cost, or
        None when stopped early by ``stop_flag``."""
        bs, n = self.config["batch_size"], self.batches_per_epoch()
        order = self.epoch_order(self.epoch)
        costs = []
        bar = tqdm(total=n, initial=self.iteration, desc="epoch %d" % (self.epoch + 1),
                   disable=not self.progress, leave=False, dynamic_ncols=True)
        while self.iteration < n:
            idx = order[self.iteration * bs:(self.iteration + 1) * bs]
            cost = float(self.train_fn(self.train_x[idx], self.train_t[idx]))
            if not numpy.isfinite(cost):
                bar.close()
                raise FloatingPointError(
                    "the training cost became {} at epoch {}, iteration {}; stopping. The "
                    "last good state is {} (from before this step); try a lower --lr "
                    "or --grad-clip".format(cost, self.epoch + 1, self.iteration,
                                            os.path.join(self.out_dir, STATE_FILE)))
            costs.append(cost)
            self.iteration += 1
            bar.update(1)
            bar.set_postfix(cost="%.4f" % numpy.mean(costs))
            if self.iteration % PRINT_EVERY == 0 or self.iteration == 1:
                tqdm.write("Training: epoch {}, iter {}, cost {:.5f}".format(
                    self.epoch + 1, self.iteration, numpy.mean(costs)))
            every = self.config.get("state_every", 0)
            if every and self.iteration % every == 0 and self.iteration < n:
                self.save_state()
            if stop_flag():
                bar.close()
                return None
        bar.close()
        return float(numpy.mean(costs)) if costs else float("nan")

    def validate(self):
        """Mean NLL over the validation images, in nats per sub-pixel."""
        bs = self.config["valid_batch_size"]
        total = 0.0
        for start in range(0, len(self.valid_x), bs):
            total += float(self.nll_fn(self.valid_x[start:start + bs],
                                       self.valid_t[start:start + bs]).sum())
        return total / self.valid_t.size

    def end_of_epoch(self, train_cost, elapsed):
        c, epoch = self.config, self.epoch + 1
        nll = self.validate()
        subpixels = self.valid_t[0].size
        record = {"epoch": epoch, "train_nll": train_cost, "valid_nll": nll,
                  "valid_bits_per_dim": nll / LN2, "valid_nats_per_image": nll * subpixels,
                  "epoch_seconds": elapsed}
        name = "epoch_{:03d}_val_{:.5f}".format(epoch, nll)
        self.net.model.save_params(os.path.join(self.out_dir, name + ".npz"))
        if c.get("save_original_format"):
            self.net.model.save_params(os.path.join(self.out_dir, name + ".pkl"),
                                       original_format=True)
        self.write_pictures(epoch)
        self.history.append(record)
        self.epoch, self.iteration = epoch, 0
        self.save_state()
        atomic_write(os.path.join(self.out_dir, HISTORY_FILE),
                     lambda f: f.write(json.dumps(self.history, indent=1).encode()))
        images.plot_curves(os.path.join(self.out_dir, "curves.png"), {
            "train": [(h["epoch"], h["train_nll"]) for h in self.history],
            "validation": [(h["epoch"], h["valid_nll"]) for h in self.history]})
        print("Validation after epoch {}: {:.5f} nats/sub-pixel, {:.5f} bits/dim, "
              "{:.2f} nats/image (train {:.5f}, {:.0f} s)".format(
                  epoch, nll, nll / LN2, nll * subpixels, train_cost, elapsed), flush=True)

    def write_pictures(self, epoch):
        c, q = self.config, self.config["q_levels"]
        seed = [c["seed"], epoch]
        recon = sampling.reconstruct(self.logits_fn, self.valid_t[:25], q, seed=seed)
        images.save_grid(os.path.join(self.out_dir, "epoch_{:03d}_reconstructions.png".format(
            epoch)), quantize.to_display(recon[..., 0], q))
        every = c.get("samples_every", 1)
        if every and epoch % every == 0:
            h, w = self.valid_t.shape[1:3]
            samples = sampling.sample_naive(self.logits_fn, 25, h, w, 1, q, seed=seed,
                                            progress=self.progress)
            images.save_grid(os.path.join(self.out_dir, "epoch_{:03d}_samples.png".format(
                epoch)), quantize.to_display(samples[..., 0], q))


def prepare_out_dir(path):
    """Create ``path`` and prove it is writable, before any training starts."""
    try:
        os.makedirs(path, exist_ok=True)
        atomic_write(os.path.join(path, ".write-test"), lambda f: f.write(b"ok"))
        os.remove(os.path.join(path, ".write-test"))
    except OSError as err:
        raise SystemExit("error: cannot write to output folder {}: {}. Choose another "
                         "--out-dir.".format(path, err.strerror or err))


def run(args):
    """Train as ``args`` says; returns the Trainer (used by the tests)."""
    if args.resume:
        out_dir = args.resume
        try:
            with open(os.path.join(out_dir, CONFIG_FILE)) as f:
                config = json.load(f)
        except (OSError, ValueError) as err:
            raise SystemExit("error: {} holds no resumable run ({}); start one with "
                             "--out-dir".format(out_dir, err))
        config["epochs"] = args.epochs
    else:
        out_dir = args.out_dir
        config = {k: getattr(args, k) for k in (
            "num_layers", "dim", "q_levels", "batch_size", "valid_batch_size", "lr",
            "grad_clip", "epochs", "seed", "dataset", "train_limit", "valid_limit",
            "save_original_format", "samples_every", "state_every")}
        config.update(model="pixelconv", input_dim=1)
    prepare_out_dir(out_dir)

    try:
        data = mnist_data.load_dataset(args.data_dir, dataset=config["dataset"])
    except mnist_data.DataError as err:
        raise SystemExit("error: {}".format(err))
    data = dict(data)
    if config.get("train_limit"):
        data["train_images"] = data["train_images"][:config["train_limit"]]
    if config.get("valid_limit"):
        data["test_images"] = data["test_images"][:config["valid_limit"]]
    if len(data["train_images"]) < config["batch_size"]:
        raise SystemExit("error: {} training images are fewer than one batch of {}".format(
            len(data["train_images"]), config["batch_size"]))

    print("Compiling the training function (about a minute the first time)...", flush=True)
    start = time.time()
    trainer = Trainer(config, data, out_dir, progress=not args.no_progress)
    print("compiled in {:.0f} s; {} parameters".format(
        time.time() - start, trainer.net.model.count_params()), flush=True)
    if args.resume:
        try:
            trainer.load_state(os.path.join(out_dir, STATE_FILE))
        except CheckpointError as err:
            raise SystemExit("error: {}".format(err))
        print("resumed at epoch {}, iteration {}".format(trainer.epoch + 1, trainer.iteration))
    else:
        atomic_write(os.path.join(out_dir, CONFIG_FILE),
                     lambda f: f.write(json.dumps(config, indent=1).encode()))
        trainer.save_state()

    stop = {"requested": False}

    def on_sigint(signum, frame):
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        tqdm.write("Stopping after this step and saving the state (Ctrl-C again to abort)...")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        while trainer.epoch < config["epochs"]:
            start = time.time()
            train_cost = trainer.train_epoch(lambda: stop["requested"])
            if train_cost is None:
                trainer.save_state()
                print("Saved the state at epoch {}, iteration {}. Continue with: python "
                      "train_mnist.py --resume {}".format(trainer.epoch + 1, trainer.iteration,
                                                          out_dir))
                break
            trainer.end_of_epoch(train_cost, time.time() - start)
    finally:
        signal.signal(signal.SIGINT, previous)
    return trainer


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except FloatingPointError as err:
        print("error: {}".format(err), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
