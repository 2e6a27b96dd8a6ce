"""Train the 10-layer PixelCNN on MNIST, resumably.

    python train_mnist.py                       # the default run (make train)
    python train_mnist.py --epochs 1 --train-limit 1000 --valid-limit 200   # quick look
    python train_mnist.py --resume runs/mnist   # continue an interrupted run

Every epoch writes to --out-dir: a checkpoint named with the epoch and the
validation NLL, 25 samples and 25 reconstructions as 5x5 PNG grids, the NLL
history (history.json, curves.png) and the resumable state (state.npz).
Ctrl-C stops after the current step and saves the resumable state.

Exit codes: 0 done (or stopped by Ctrl-C with the state saved), 1 an error
reported in one line (unwritable folder, missing data, a NaN cost, ...),
2 invalid arguments, 130 aborted by a second Ctrl-C.
"""
import argparse
import contextlib
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
from lib.checkpoint import CheckpointError, atomic_write, load_arrays, save_arrays
from lib.training import compile_train_step, nll_per_example, nll_per_subpixel
from models import build as builder

LN2 = math.log(2.0)
STATE_FILE = "state.npz"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
PRINT_EVERY = 100
NUM_PICTURES, GRID = 25, (5, 5)

# Options saved in config.json; a resumed run reuses them (except "epochs").
CONFIG_KEYS = ("model", "conditional", "embed_dim", "encoder_steps", "margin", "num_layers",
               "dim", "q_levels", "batch_size", "valid_batch_size", "lr",
               "grad_clip", "epochs", "seed", "dataset", "train_limit", "valid_limit",
               "save_original_format", "samples_every", "state_every")


class RunError(Exception):
    """A problem reported to the user in one line, without a traceback (exit code 1)."""


class DivergedError(RunError):
    """The training cost, the validation NLL or the parameters stopped being finite."""


# ----- command line ---------------------------------------------------------------

def build_parser():
    """The argument parser; every option has a help text."""
    p = argparse.ArgumentParser(
        description="Train a PixelCNN (vertical/horizontal stacks) on MNIST digits. "
                    "The cost is the categorical cross-entropy over Q_LEVELS grey levels, "
                    "reported in nats per sub-pixel.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    m = p.add_argument_group("model (defaults: the original's constants, 10 layers)")
    m.add_argument("--model", choices=builder.MODELS, default="pixelconv",
                   help="pixelconv: the original's vertical/horizontal stacks; gated: "
                        "the same with tanh*sigmoid gates (can be class-conditional); "
                        "masked: masked convolutions (has a blind spot); rowlstm / "
                        "diagbilstm: PixelRNN layers (num-layers counts their LSTM layers)")
    m.add_argument("--conditional", choices=builder.CONDITIONS, default="none",
                   help="gated model only. class: condition on the digit label; "
                        "embedding: first train a conv encoder f with a triplet loss, "
                        "then condition on f(image)")
    m.add_argument("--embed-dim", type=int, default=builder.DEFAULT_EMBED_DIM,
                   help="length of the embedding f(image) (--conditional embedding)")
    m.add_argument("--encoder-steps", type=int, default=1000,
                   help="triplet-loss Adam steps (batches of 32 triplets) for the encoder")
    m.add_argument("--margin", type=float, default=0.2,
                   help="triplet-loss margin between same- and different-digit distances")
    m.add_argument("--num-layers", type=int, default=10,
                   help="layers of the network: the 7x7 first layer, num_layers-2 "
                        "stack blocks, then the 1x1 output layers (>= 2)")
    m.add_argument("--dim", type=int, default=32, help="feature maps per stack (DIM)")
    m.add_argument("--q-levels", type=int, default=4,
                   help="grey levels each pixel is quantised to (Q_LEVELS, 2..256)")
    t = p.add_argument_group("optimisation (Adam from lasagne.updates.adam)")
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
    t.add_argument("--graph", choices=builder.GRAPHS, default="fast",
                   help="fast: the channels-last graph (pixelconv and gated; same "
                        "parameters, outputs and gradients, ~3x faster steps, more memory); "
                        "faithful: the original layout. Checkpoints work with both")
    t.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                   help="stop cleanly, with a resumable state, before this many minutes "
                        "have passed (for long runs in pieces; continue with --resume)")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist",
                   help="which 28x28 greyscale dataset to train on; validation uses its "
                        "test split")
    d.add_argument("--data-dir", default=None,
                   help="folder with the four IDX files (default: $MNIST_DIR, else a "
                        "per-user cache, downloading when absent)")
    d.add_argument("--no-download", action="store_true",
                   help="fail instead of downloading when the data files are missing")
    d.add_argument("--no-verify", action="store_true",
                   help="skip the MD5 and standard-size checks of the data files (for "
                        "small or custom IDX files)")
    d.add_argument("--train-limit", type=int, default=None,
                   help="use only the first N training images")
    d.add_argument("--valid-limit", type=int, default=None,
                   help="use only the first N test images for validation")
    o = p.add_argument_group("output")
    o.add_argument("--out-dir", default="runs/mnist",
                   help="where every output goes; must not already hold a run (use "
                        "--resume for that)")
    o.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the run saved in DIR (its config is reused, except "
                        "--epochs; DIR is also the output folder; give the data options "
                        "again)")
    o.add_argument("--save-original-format", action="store_true",
                   help="also write each checkpoint as the original's pickled dict (.pkl)")
    o.add_argument("--samples-every", type=int, default=1,
                   help="draw the 25 samples every N epochs (0: never); sampling is slow")
    o.add_argument("--state-every", type=int, default=200,
                   help="also save the resumable state every N iterations (0: per epoch only)")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


# (option, smallest allowed value) for the numeric options.
_MINIMUMS = (("num_layers", 2), ("dim", 1), ("batch_size", 1), ("valid_batch_size", 1),
             ("epochs", 1), ("train_limit", 1), ("valid_limit", 1), ("grad_clip", 0),
             ("samples_every", 0), ("state_every", 0), ("embed_dim", 1), ("encoder_steps", 0),
             ("margin", 0), ("time_budget", 0.01))


def parse_args(argv=None):
    """Parse and check the command line; invalid values exit with code 2."""
    p = build_parser()
    args = p.parse_args(argv)
    for name, low in _MINIMUMS:
        value = getattr(args, name)
        if value is not None and not value >= low:
            p.error("--{} must be at least {}, got {}".format(
                name.replace("_", "-"), low, value))
    if not (args.lr > 0 and math.isfinite(args.lr)):
        p.error("--lr must be a positive number, got {}".format(args.lr))
    try:
        quantize.check_levels(args.q_levels)
    except ValueError as err:
        p.error(str(err))
    return args


# ----- the trainer ----------------------------------------------------------------

class Trainer(object):
    """Owns the compiled functions, the data and the run's state."""

    def __init__(self, config, data, out_dir, progress=True, graph="fast"):
        self.config, self.out_dir, self.progress = config, out_dir, progress
        numpy.random.seed(config["seed"])  # the original initialiser's random stream
        self.net = builder.build(config, graph=graph)
        fast = graph == "fast" and builder.has_fast_graph(config)
        self.params = self.net.model.get_params()
        q = config["q_levels"]
        self.train_x, self.train_t = quantize.quantize(data["train_images"][..., None], q)
        self.valid_x, self.valid_t = quantize.quantize(data["test_images"][..., None], q)
        self.conditional = self.net.H is not None
        self.train_labels = data["train_labels"][:len(self.train_x)]
        self.valid_labels = data["test_labels"][:len(self.valid_x)]
        self.encoder_trained = False

        X_r = theano.tensor.itensor4("X_r")
        cost = nll_per_subpixel(self.net.logits, X_r)
        inputs = [self.net.X, X_r] + self.net.inputs[1:]
        self.train_fn, self.opt_state = compile_train_step(
            inputs, cost, self.params, config["lr"], config["grad_clip"], keep_buffers=fast)
        self.nll_fn = theano.function(inputs, nll_per_example(self.net.logits, X_r))
        self.epoch, self.iteration, self.history = 0, 0, []
        self.cost_sum, self.cost_count = 0.0, 0  # training costs of the current epoch

    # ----- state -------------------------------------------------------------------
    @property
    def state_path(self):
        return os.path.join(self.out_dir, STATE_FILE)

    def state_arrays(self):
        """Everything a resumed run needs: parameters, Adam's moments and step count,
        the position in the run and the current epoch's running training cost."""
        arrays = {"param/" + p.name: p.get_value() for p in self.net.all_params.get_params()}
        arrays["encoder_trained"] = numpy.int64(self.encoder_trained)
        arrays.update({"opt/" + v.name: v.get_value() for v in self.opt_state})
        arrays["epoch"] = numpy.int64(self.epoch)
        arrays["iteration"] = numpy.int64(self.iteration)
        arrays["seed"] = numpy.int64(self.config["seed"])
        arrays["epoch_cost_sum"] = numpy.float64(self.cost_sum)
        arrays["epoch_cost_count"] = numpy.int64(self.cost_count)
        return arrays

    def save_state(self):
        """Write the resumable state atomically; refuse (keeping the previous file)
        when any value is not finite."""
        arrays = self.state_arrays()
        bad = sorted(k for k, v in arrays.items() if not numpy.all(numpy.isfinite(v)))
        if bad:
            raise DivergedError(
                "{} became NaN or infinite at epoch {}, iteration {}; stopping. The last "
                "good state is kept in {}; try a lower --lr or --grad-clip".format(
                    ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else ""),
                    self.epoch + 1, self.iteration, self.state_path))
        save_arrays(self.state_path, arrays, meta=model_description(self.config))

    def load_state(self, path):
        """Restore a state written by ``save_state``; raises CheckpointError."""
        arrays = load_arrays(path)
        for key in ("epoch", "iteration", "seed"):
            if key not in arrays:
                raise CheckpointError("{}: {} is missing; not a resumable state".format(
                    path, key))
        if int(arrays["seed"]) != self.config["seed"]:
            raise CheckpointError("{}: saved with seed {}, but the config says {}".format(
                path, int(arrays["seed"]), self.config["seed"]))
        self.net.all_params.set_param_values(
            {k[6:]: v for k, v in arrays.items() if k.startswith("param/")}, source=path)
        self.encoder_trained = bool(arrays.get("encoder_trained", False))
        for v in self.opt_state:
            key = "opt/" + v.name
            if key not in arrays or arrays[key].shape != v.get_value(borrow=True).shape:
                raise CheckpointError("{}: optimizer state {} missing or mis-shaped".format(
                    path, v.name))
            v.set_value(arrays[key])
        self.epoch, self.iteration = int(arrays["epoch"]), int(arrays["iteration"])
        self.cost_sum = float(arrays.get("epoch_cost_sum", 0.0))
        self.cost_count = int(arrays.get("epoch_cost_count", 0))
        history_path = os.path.join(self.out_dir, HISTORY_FILE)
        if os.path.exists(history_path):
            with open(history_path) as f:
                self.history = [h for h in json.load(f) if h["epoch"] <= self.epoch]

    # ----- conditions --------------------------------------------------------------
    def prepare_conditions(self):
        """The vectors h of a conditional model: one-hot labels, or the embeddings
        f(x) of an encoder trained first (once per run) with the triplet loss."""
        c = self.config
        if c.get("conditional", "none") == "class":
            self.train_h = builder.one_hot(self.train_labels)
            self.valid_h = builder.one_hot(self.valid_labels)
        elif c.get("conditional") == "embedding":
            if not self.encoder_trained:
                self.train_encoder()
            self.train_h = self.net.embed(self.train_x)
            self.valid_h = self.net.embed(self.valid_x)

    def train_encoder(self):
        """Triplet-loss training of the encoder on the training images."""
        from models.encoder import compile_triplet_functions, train_encoder
        c = self.config
        step, loss, _ = compile_triplet_functions(self.net.encoder_input, self.net.encoder,
                                                  margin=c["margin"], learning_rate=c["lr"],
                                                  grad_clip=c["grad_clip"])
        losses = train_encoder(step, self.train_x, self.train_labels, c["encoder_steps"],
                               seed=c["seed"])
        if len(losses):
            print("encoder: triplet loss {:.4f} (first 50 steps) -> {:.4f} (last 50)".format(
                losses[:50].mean(), losses[-50:].mean()), flush=True)
        self.encoder_trained = True

    # ----- training ----------------------------------------------------------------
    def batches_per_epoch(self):
        return len(self.train_x) // self.config["batch_size"]

    def epoch_order(self, epoch):
        """The shuffle of epoch ``epoch``: a function of (seed, epoch) only, so a
        resumed run sees the same batches as an uninterrupted one."""
        return numpy.random.RandomState([self.config["seed"], epoch]).permutation(
            len(self.train_x))

    def train_step(self, order):
        """One Adam step on the batch at ``self.iteration`` of ``order``; returns the cost.

        Raises DivergedError on a NaN/inf cost; nothing is saved then, so the
        files on disk keep the last good state.
        """
        bs = self.config["batch_size"]
        idx = order[self.iteration * bs:(self.iteration + 1) * bs]
        cost = float(self.train_fn(*self.batch("train", idx)))
        if not numpy.isfinite(cost):
            raise DivergedError(
                "the training cost became {} at epoch {}, iteration {}; stopping. The "
                "last good state is kept in {}; try a lower --lr or --grad-clip".format(
                    cost, self.epoch + 1, self.iteration + 1, self.state_path))
        self.cost_sum += cost
        self.cost_count += 1
        self.iteration += 1
        return cost

    def batch(self, split, idx):
        """Function arguments for images ``idx`` of ``split``: inputs, targets
        and, for a conditional model, the one-hot labels."""
        x, t = getattr(self, split + "_x")[idx], getattr(self, split + "_t")[idx]
        return (x, t, getattr(self, split + "_h")[idx]) if self.conditional else (x, t)

    def mean_cost(self):
        """Mean training cost of the current epoch so far (NaN before any step)."""
        return self.cost_sum / self.cost_count if self.cost_count else float("nan")

    def train_epoch(self, stop_flag, on_step=None):
        """Run the rest of the current epoch; returns its mean training cost, or None
        when ``stop_flag()`` turned true before the epoch's last step.

        ``on_step(trainer)``, if given, is called after every step (a test hook).
        """
        n = self.batches_per_epoch()
        order = self.epoch_order(self.epoch)
        bar = tqdm(total=n, initial=self.iteration, desc="epoch %d" % (self.epoch + 1),
                   disable=not self.progress, leave=False, dynamic_ncols=True)
        every = self.config.get("state_every", 0)
        try:
            while self.iteration < n:
                self.train_step(order)
                bar.update(1)
                bar.set_postfix(cost="%.4f" % self.mean_cost())
                if self.iteration % PRINT_EVERY == 0 or self.iteration == 1:
                    tqdm.write("Training: epoch {}, iter {}, cost {:.5f}".format(
                        self.epoch + 1, self.iteration, self.mean_cost()))
                if on_step is not None:
                    on_step(self)
                if every and self.iteration % every == 0 and self.iteration < n:
                    self.save_state()
                if stop_flag() and self.iteration < n:
                    return None
        finally:
            bar.close()
        return self.mean_cost()

    def validate(self):
        """Mean NLL over the validation images, in nats per sub-pixel."""
        bs = self.config["valid_batch_size"]
        total = 0.0
        for start in range(0, len(self.valid_x), bs):
            total += float(self.nll_fn(*self.batch("valid", slice(start, start + bs))).sum())
        return total / self.valid_t.size

    def end_of_epoch(self, train_cost, elapsed):
        """Validate, then write the checkpoint, pictures, history and state."""
        epoch = self.epoch + 1
        nll = self.validate()
        if not math.isfinite(nll):
            raise DivergedError(
                "the validation NLL became {} after epoch {}; stopping. The last good "
                "state is kept in {}".format(nll, epoch, self.state_path))
        subpixels = self.valid_t[0].size
        self.write_checkpoint(epoch, nll)
        self.write_pictures(epoch)
        self.history.append({
            "epoch": epoch, "train_nll": train_cost, "valid_nll": nll,
            "valid_bits_per_dim": nll / LN2, "valid_nats_per_image": nll * subpixels,
            "epoch_seconds": elapsed})
        self.write_history()
        # The state goes last: a crash before it resumes the epoch, and the history
        # records beyond the state's epoch are dropped on resume.
        self.epoch, self.iteration = epoch, 0
        self.cost_sum, self.cost_count = 0.0, 0
        self.save_state()
        print("Validation after epoch {}: {:.5f} nats/sub-pixel, {:.5f} bits/dim, "
              "{:.2f} nats/image (train {:.5f}, {:.0f} s)".format(
                  epoch, nll, nll / LN2, nll * subpixels, train_cost, elapsed), flush=True)

    def write_checkpoint(self, epoch, nll):
        """The epoch's parameters, named with the epoch and the validation NLL."""
        path = os.path.join(self.out_dir, "epoch_{:03d}_val_{:.5f}".format(epoch, nll))
        self.net.all_params.save_params(path + ".npz", meta=model_description(self.config))
        if self.config.get("save_original_format"):
            self.net.all_params.save_params(path + ".pkl", original_format=True)

    def write_history(self):
        """history.json and the train/validation curves, both written atomically."""
        atomic_write(os.path.join(self.out_dir, HISTORY_FILE),
                     lambda f: f.write(json.dumps(self.history, indent=1).encode()))
        images.plot_curves(os.path.join(self.out_dir, "curves.png"), {
            "train": [(h["epoch"], h["train_nll"]) for h in self.history],
            "validation": [(h["epoch"], h["valid_nll"]) for h in self.history]})

    def write_pictures(self, epoch):
        """25 reconstructions (every epoch) and 25 samples (every samples_every
        epochs), each as a 5x5 grid."""
        c = self.config
        seed = [c["seed"], epoch]
        truth = self.valid_t[:NUM_PICTURES]
        h, w = truth.shape[1:3]
        own = self.valid_h[:len(truth)] if self.conditional else None
        recon = self.net.sample(len(truth), h, w, seed=seed, progress=False, given=truth,
                                condition=own)
        self.save_pictures("epoch_{:03d}_reconstructions.png".format(epoch), recon)
        every = c.get("samples_every", 1)
        if every and epoch % every == 0:
            condition = None
            if c.get("conditional") == "class":  # digits 0..9, 0..9, 0..4
                condition = builder.one_hot(numpy.arange(NUM_PICTURES) % builder.NUM_CLASSES)
            elif c.get("conditional") == "embedding":  # new digits like the test images
                condition = self.valid_h[numpy.arange(NUM_PICTURES) % len(self.valid_h)]
            samples = self.net.sample(NUM_PICTURES, h, w, seed=seed, progress=self.progress,
                                      condition=condition)
            self.save_pictures("epoch_{:03d}_samples.png".format(epoch), samples)

    def save_pictures(self, name, bins):
        """Bins (num, h, w, 1) -> a 5x5 PNG grid in the output folder."""
        pictures = quantize.to_display(bins[..., 0], self.config["q_levels"])
        images.save_grid(os.path.join(self.out_dir, name), pictures, *GRID)


# ----- setting a run up -----------------------------------------------------------

def model_description(config):
    """The part of a run's config that rebuilds its network (stored in checkpoints)."""
    keys = ["model", "conditional", "input_dim", "dim", "num_layers", "q_levels"]
    if config.get("conditional") == "embedding":
        keys.append("embed_dim")
    return {k: config[k] for k in keys}


def new_config(args):
    """(output folder, config) of a fresh run."""
    config = {k: getattr(args, k) for k in CONFIG_KEYS}
    config.update(input_dim=1)
    try:
        builder.condition_dim(config)
    except ValueError as err:
        raise RunError(str(err))
    return args.out_dir, config


def saved_config(args):
    """(output folder, config) of the run to resume; --epochs replaces the saved value."""
    out_dir = args.resume
    try:
        with open(os.path.join(out_dir, CONFIG_FILE)) as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise RunError("{} holds no resumable run ({}); start one with --out-dir".format(
            out_dir, err))
    missing = [k for k in ("num_layers", "dim", "q_levels", "batch_size", "lr", "seed")
               if not isinstance(config, dict) or k not in config]
    if missing:
        raise RunError("{} is not a run's config: {} missing".format(
            os.path.join(out_dir, CONFIG_FILE), ", ".join(missing)))
    config.setdefault("model", "pixelconv")
    config.setdefault("conditional", "none")
    config.setdefault("input_dim", 1)
    config.setdefault("dataset", "mnist")
    config.setdefault("valid_batch_size", 200)
    config.setdefault("grad_clip", 1.0)
    config["epochs"] = args.epochs
    return out_dir, config


def prepare_out_dir(path, fresh):
    """Create ``path`` and prove it is writable, before any training starts. A fresh
    run refuses a folder that already holds a run's state, so nothing is overwritten."""
    state = os.path.join(path, STATE_FILE)
    if fresh and os.path.exists(state):
        raise RunError("{} already holds a run ({}); continue it with --resume {} or "
                       "choose another --out-dir".format(path, STATE_FILE, path))
    if not fresh and not os.path.isfile(state):
        raise RunError("{} holds no resumable state ({} is missing)".format(path, STATE_FILE))
    probe = os.path.join(path, ".write-test")
    try:
        os.makedirs(path, exist_ok=True)
        atomic_write(probe, lambda f: f.write(b"ok"))
        os.remove(probe)
    except OSError as err:
        raise RunError("cannot write to output folder {}: {}. Choose another "
                       "--out-dir.".format(path, err.strerror or err))


def load_data(args, config):
    """The dataset's images, as the command line says; DataError -> RunError."""
    try:
        return mnist_data.load_dataset(args.data_dir, dataset=config["dataset"],
                                       download=not args.no_download,
                                       verify=not args.no_verify)
    except mnist_data.DataError as err:
        raise RunError(str(err))


def limit_data(data, config):
    """Apply --train-limit / --valid-limit and check there is enough to train on."""
    data = dict(data)
    if config.get("train_limit"):
        data["train_images"] = data["train_images"][:config["train_limit"]]
    if config.get("valid_limit"):
        data["test_images"] = data["test_images"][:config["valid_limit"]]
    if len(data["train_images"]) < config["batch_size"]:
        raise RunError("{} training images are fewer than one batch of {}".format(
            len(data["train_images"]), config["batch_size"]))
    if len(data["test_images"]) == 0:
        raise RunError("there are no validation (test) images")
    return data


def start_trainer(args, config, data, out_dir):
    """Compile the Trainer, then restore the saved state (--resume) or save the
    initial one (a fresh run)."""
    graph = args.graph if builder.has_fast_graph(config) else "faithful"
    print("Compiling the training function ({} graph; about a minute the first "
          "time)...".format(graph), flush=True)
    start = time.time()
    trainer = Trainer(config, data, out_dir, progress=not args.no_progress, graph=graph)
    print("compiled in {:.0f} s; {} parameters".format(
        time.time() - start, trainer.net.model.count_params()), flush=True)
    if args.resume:
        try:
            trainer.load_state(trainer.state_path)
        except CheckpointError as err:
            raise RunError(str(err))
        trainer.prepare_conditions()
    else:
        trainer.prepare_conditions()
        atomic_write(os.path.join(out_dir, CONFIG_FILE),
                     lambda f: f.write(json.dumps(config, indent=1).encode()))
        trainer.save_state()
    return trainer


# ----- the training loop ----------------------------------------------------------

class StopRequest(object):
    """Turns the first Ctrl-C (SIGINT) into a request to stop after the current step;
    a second one aborts (KeyboardInterrupt). Call the object to read the request."""

    def __init__(self):
        self.requested = False

    def __call__(self):
        return self.requested

    def handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("Stopping after this step and saving the state (Ctrl-C again to abort)...")

    @contextlib.contextmanager
    def installed(self):
        """Handle SIGINT inside the block (only possible in the main thread)."""
        try:
            previous = signal.signal(signal.SIGINT, self.handle)
        except ValueError:  # not the main thread: leave signals alone
            previous = None
            installed = False
        else:
            installed = True
        try:
            yield self
        finally:
            if installed:
                signal.signal(signal.SIGINT,
                              signal.SIG_DFL if previous is None else previous)


class Deadline(object):
    """Call to learn whether a time budget is spent. It keeps a reserve (a tenth
    of the budget, at most 3 minutes) for the end-of-epoch validation and the
    final save, so a run stops before the budget ends."""

    def __init__(self, minutes, start=None):
        budget = 60.0 * minutes
        self.end = (time.time() if start is None else start) + budget - min(180.0, budget / 10)

    def __call__(self):
        return time.time() >= self.end


def train(trainer, epochs, on_step=None, deadline=None):
    """Train until ``epochs`` epochs are done, Ctrl-C asks to stop or ``deadline()``
    turns true (a :class:`Deadline`)."""
    request = StopRequest()

    def stop():
        return request() or (deadline is not None and deadline())

    with request.installed():
        while trainer.epoch < epochs and not stop():
            start = time.time()
            train_cost = trainer.train_epoch(stop, on_step)
            if train_cost is None:
                break
            trainer.end_of_epoch(train_cost, time.time() - start)
    if trainer.epoch < epochs:
        trainer.save_state()
        reason = "the time budget is spent" if not request() else "stopped"
        print("{}: saved the state at epoch {}, iteration {}. Continue with: {} "
              "train_mnist.py --resume {} --epochs {}".format(
                  reason, trainer.epoch + 1, trainer.iteration,
                  os.path.relpath(sys.executable), trainer.out_dir, epochs), flush=True)
    else:
        print("Done: {} epochs in {}".format(epochs, trainer.out_dir), flush=True)


def run(args, data=None, on_step=None):
    """Train as ``args`` says; returns the Trainer. Raises RunError for problems
    to report to the user.

    data: preloaded ``{"train_images", "test_images"}`` uint8 (num, 28, 28) arrays
    instead of reading --data-dir; on_step(trainer): called after every step.
    Both are for tests and scripts; the command line uses neither.
    """
    start = time.time()
    deadline = Deadline(args.time_budget, start) if args.time_budget else None
    out_dir, config = saved_config(args) if args.resume else new_config(args)
    prepare_out_dir(out_dir, fresh=not args.resume)
    data = limit_data(load_data(args, config) if data is None else data, config)
    trainer = start_trainer(args, config, data, out_dir)
    if trainer.epoch >= config["epochs"]:
        print("{} already holds {} epochs; raise --epochs to train more".format(
            out_dir, trainer.epoch))
        return trainer
    if args.resume:
        print("resumed at epoch {}, iteration {}".format(trainer.epoch + 1, trainer.iteration))
    train(trainer, config["epochs"], on_step, deadline)
    return trainer


def main(argv=None, data=None, on_step=None):
    """Command-line entry point; returns the exit code (see the module docstring)."""
    args = parse_args(argv)
    try:
        run(args, data=data, on_step=on_step)
    except RunError as err:
        print("error: {}".format(err), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aborted; the last saved state is kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
