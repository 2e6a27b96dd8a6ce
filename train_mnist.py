"""Train the 10-layer PixelCNN on MNIST, resumably.

    .venv/bin/python train_mnist.py                   # the default run (make train)
    .venv/bin/python train_mnist.py --epochs 1 --train-limit 1000 --valid-limit 200
    .venv/bin/python train_mnist.py --resume runs/mnist --time-budget 60   # continue
    .venv/bin/python train_mnist.py --lr-decay 0.999977 --lr-floor 1e-4 --ema 0.9995

Validation uses the last --valid-split training images (10,000 by default),
held out of training; --valid-split 0 validates on the test images instead.
Every epoch writes to --out-dir: a checkpoint named with the epoch and the
validation NLL, 25 samples and 25 reconstructions as 5x5 PNG grids, the NLL
history (history.json, curves.png) and the resumable state (state.npz).
--lr-decay and --lr-floor decay the rate every step (training/schedule.py);
--ema DECAY validates, samples and writes checkpoints with an average of the
weights over the steps, while state.npz keeps both it and the raw weights.
Ctrl-C stops after the current step and saves the resumable state. The
configuration is the command line below; its defaults are the original's
constants. The work itself is in the ``training`` package.
"""
import argparse
import json
import math
import os
import sys
import time

import lib  # noqa: F401  (configures Theano before it is imported)
import quantize
from data import binarized, mnist
from lib import backend
from lib.checkpoint import CheckpointError
from models import build as builder
from training import run_folder
from training.run_folder import RunError
from training.stopping import INTERRUPTED, Deadline, train
from training.trainer import Trainer

EXIT_CODES = """exit codes:
  0    done, or stopped by --time-budget with the state saved
  1    the run failed (the cost or the weights became NaN; the last good state is kept)
  2    bad input: an invalid option, missing or damaged data, an unusable output folder,
       or a run folder whose state.npz, config.json or history.json is damaged
  130  stopped by Ctrl-C (after saving the state when a run had started)"""
MAX_SEED = 2 ** 32 - 1


# ----- command line ---------------------------------------------------------------

class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    """Shows each option's default and keeps the epilog's line breaks."""


def build_parser():
    """The argument parser; every option has a help text."""
    p = argparse.ArgumentParser(
        description="Train a PixelCNN (vertical/horizontal stacks) on MNIST digits. The cost\n"
                    "is the categorical cross-entropy over Q_LEVELS grey levels, reported in\n"
                    "nats per sub-pixel.",
        epilog=EXIT_CODES, formatter_class=HelpFormatter)
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
    m.add_argument("--encoder-dim", type=int, default=32,
                   help="feature maps of the encoder's convolutions (--conditional embedding)")
    m.add_argument("--encoder-convs", type=int, default=4,
                   help="3x3 stride-2 convolutions in the encoder (--conditional embedding)")
    m.add_argument("--encoder-steps", type=int, default=3000,
                   help="triplet-loss Adam steps (batches of 32 triplets) for the encoder")
    m.add_argument("--margin", type=float, default=0.2,
                   help="triplet-loss margin between same- and different-digit distances")
    m.add_argument("--condition-map", type=int, default=0, metavar="K",
                   help="with a condition: also give every gate a per-position bias from a "
                        "learned (28, 28, K) map mixed with K features of the condition "
                        "(0: none, the original's per-image bias only)")
    m.add_argument("--num-layers", type=int, default=10,
                   help="depth; " + builder.NUM_LAYERS_HELP)
    m.add_argument("--dim", type=int, default=32,
                   help="feature maps per stack (DIM); for masked, rowlstm and diagbilstm "
                        "the residual stream's 2h (their 3x3 / LSTM layers have h = DIM/2)")
    m.add_argument("--q-levels", type=int, default=4,
                   help="grey levels each pixel is quantised to (Q_LEVELS, 2..256)")
    t = p.add_argument_group("optimisation (Adam from lasagne.updates.adam)")
    t.add_argument("--batch-size", type=int, default=100, help="training images per step")
    t.add_argument("--valid-batch-size", type=int, default=200,
                   help="images per validation batch (affects speed only)")
    t.add_argument("--lr", type=float, default=1e-3,
                   help="Adam learning rate; may change on --resume (lowered for the "
                   "last epochs, say; each epoch's rate is kept in history.json)")
    t.add_argument("--lr-decay", type=float, default=1.0, metavar="FACTOR",
                   help="multiply the rate by FACTOR after every step (1: a constant rate; "
                   "0.999977 takes 1e-3 to 1e-4 in 100,000 steps). On --resume, an --lr "
                   "other than the run's restarts the decay from that rate; a new "
                   "--lr-decay or --lr-floor alone continues from the rate reached. Each "
                   "epoch's last rate is kept in history.json")
    t.add_argument("--lr-floor", type=float, default=0.0, metavar="RATE",
                   help="the rate never decays below RATE (at most --lr)")
    t.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="keep an exponential moving average of the weights, updated every "
                   "step with this decay (0.9995, say; bias-corrected, so it is the "
                   "weighted mean of the steps so far from the first step on) and "
                   "validate, sample and write checkpoints with it; state.npz keeps both. "
                   "0: off. On --resume it may start the average (from that step), stop "
                   "it, or change its decay (the average then starts afresh)")
    t.add_argument("--grad-clip", type=float, default=1.0,
                   help="clip every gradient elementwise to [-c, c] (0 disables)")
    t.add_argument("--epochs", type=int, default=20, help="epochs to train (in total, "
                   "counting those done before --resume)")
    t.add_argument("--seed", type=int, default=1234,
                   help="seeds the weights, the per-epoch shuffles and the sample draws")
    t.add_argument("--graph", choices=builder.GRAPHS, default="fast",
                   help="fast: the channels-last graph with compiled kernels (every model; same "
                        "parameters, outputs and gradients, 2-5x faster steps, more memory); "
                        "faithful: the original layout. Checkpoints work with both")
    t.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                   help="stop cleanly, with a resumable state, before this many minutes "
                        "have passed (for long runs in pieces; continue with --resume)")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", choices=["mnist", "fashion-mnist", "binarized-mnist"],
                   default="mnist",
                   help="which 28x28 dataset to train on. binarized-mnist: Q_LEVELS 2 on "
                        "0/1 pixels, the fixed binarization when the data folder holds "
                        "the binarized_mnist_*.amat files, else MNIST binarized afresh "
                        "every epoch (data/binarized.py)")
    d.add_argument("--valid-split", type=int, default=10000, metavar="N",
                   help="hold out the last N training images for validation (with the "
                        "fixed binarization, N = 10000 is binarized_mnist_valid.amat); the "
                        "learning-rate choices and the checkpoint to keep use them, and the "
                        "test images are left for evaluate.py. 0: validate on the test "
                        "images, as the original did")
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
                   help="use only the first N validation images")
    o = p.add_argument_group("output")
    o.add_argument("--out-dir", default="runs/mnist",
                   help="where every output goes; must not already hold a run (use "
                        "--resume for that)")
    o.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the run saved in DIR, which is also the output folder. "
                        "Its saved settings are kept (runs saved before --valid-split "
                        "existed keep validating on the test images); only --epochs, --lr, "
                        "--lr-decay, --lr-floor, --ema, --data-dir, --no-download, "
                        "--no-verify, --valid-batch-size, "
                        "--samples-every, --state-every, --save-original-format (and "
                        "--graph, --time-budget, --no-progress) may be given again")
    o.add_argument("--save-original-format", action="store_true",
                   help="also write each checkpoint as the original's pickled dict (.pkl)")
    o.add_argument("--samples-every", type=int, default=1,
                   help="draw the 25 samples every N epochs (0: never); sampling is slow")
    o.add_argument("--state-every", type=int, default=200,
                   help="also save the resumable state every N iterations (0: per epoch only)")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


# (option, smallest allowed value) for the numeric options.
_MINIMUMS = (("dim", 1), ("batch_size", 1), ("valid_batch_size", 1),
             ("epochs", 1), ("train_limit", 1), ("valid_limit", 1), ("grad_clip", 0),
             ("samples_every", 0), ("state_every", 0), ("embed_dim", 1), ("encoder_dim", 1),
             ("encoder_convs", 1), ("encoder_steps", 0), ("condition_map", 0),
             ("margin", 0), ("time_budget", 0.01), ("seed", 0), ("valid_split", 0),
             ("lr_floor", 0), ("ema", 0))


def parse_args(argv=None):
    """(args, given): the checked command line, and ``{setting: value}`` of the
    options given explicitly (what --resume may change). Invalid values exit
    with code 2."""
    p = build_parser()
    args = p.parse_args(argv)
    explicit = build_parser()
    for action in explicit._actions:
        action.default = argparse.SUPPRESS
    given = vars(explicit.parse_args(argv))
    if args.dataset == "binarized-mnist":
        if given.get("q_levels", 2) != 2:
            p.error("--dataset binarized-mnist has 2 levels; leave out --q-levels {}".format(
                args.q_levels))
        args.q_levels = 2
    problem = setting_problem(vars(args))
    if problem:
        p.error(problem)
    if args.resume and "out_dir" in given:
        p.error("--out-dir cannot be used with --resume: the run's folder is {}".format(
            args.resume))
    return args, given


def setting_problem(values):
    """The first problem of the settings ``values`` (``{setting: value}``: the
    command line's, or a resumed run's), as one line naming the option; None
    when they are all valid."""
    for name, low in _MINIMUMS:
        value = values.get(name)
        if value is not None and not value >= low:
            return "--{} must be at least {}, got {}".format(name.replace("_", "-"), low, value)
    if values["num_layers"] < builder.MIN_LAYERS[values["model"]]:
        return "--num-layers must be at least {} for --model {}, got {}".format(
            builder.MIN_LAYERS[values["model"]], values["model"], values["num_layers"])
    if values["seed"] > MAX_SEED:
        return "--seed must be at most {}, got {}".format(MAX_SEED, values["seed"])
    if not (values["lr"] > 0 and math.isfinite(values["lr"])):
        return "--lr must be a positive number, got {}".format(values["lr"])
    decay, floor, ema = (values.get(k, d) for k, d in (("lr_decay", 1.0), ("lr_floor", 0.0),
                                                       ("ema", 0.0)))
    if not 0 < decay <= 1:
        return "--lr-decay must be in (0, 1] (1: a constant rate), got {}".format(decay)
    if floor > values["lr"]:
        return "--lr-floor {} is above --lr {}; give a floor at most the rate".format(
            floor, values["lr"])
    if not ema < 1:
        return "--ema must be below 1 (0.9995, say; 0: off), got {}".format(ema)
    try:
        quantize.check_levels(values["q_levels"])
        builder.condition_dim(values)
        builder.condition_map_shape(values)
    except ValueError as err:
        return str(err)
    if values["dataset"] == "binarized-mnist" and values["q_levels"] != 2:
        return "--dataset binarized-mnist has 2 levels, not --q-levels {}".format(
            values["q_levels"])
    if values["dataset"] == "binarized-mnist" and values["conditional"] == "embedding":
        return ("--conditional embedding does not work with --dataset binarized-mnist (the "
                "encoder would see other images than the network is trained on); use "
                "--conditional class, or --dataset mnist")
    return None


def load_data(config):
    """The splits a run reads (``config``: dataset, data_dir, no_download,
    no_verify, valid_split): the training split and, with valid_split 0, the
    test split (the fixed binarization's valid split otherwise), as
    ``<split>_images`` uint8 (num, 28, 28) and ``<split>_labels`` (None for the
    fixed binarization). DataError -> RunError."""
    held_out = config.get("valid_split", 0)
    try:
        if config["dataset"] == "binarized-mnist":
            data = binarized.load_binarized(config["data_dir"],
                                            download=not config["no_download"],
                                            verify=not config["no_verify"],
                                            splits=binarized_splits(config))
            print(binarized.describe(data["binarization"]), flush=True)
            return data
        return mnist.load_dataset(config["data_dir"], dataset=config["dataset"],
                                  download=not config["no_download"],
                                  verify=not config["no_verify"],
                                  splits=("train",) if held_out else ("train", "test"))
    except mnist.DataError as err:
        raise RunError(str(err))


def select_validation(data, config):
    """``data`` with the last valid_split training images moved to ``valid_images``
    (and labels); unchanged with valid_split 0 (the test images validate then)."""
    held_out = config.get("valid_split", 0)
    if not held_out:
        return data
    try:
        return binarized.split_pool(data, held_out)
    except mnist.DataError as err:
        raise RunError("{} (or 0 to validate on the test images)".format(err))


def binarized_splits(config):
    """The splits of binarized MNIST a run reads: the fixed files' valid split is
    part of the training split when images are held out (binarized.hold_out)."""
    return ("train", "valid") if config.get("valid_split", 0) else ("train", "test")


def check_binarization(config, data, out_dir):
    """Record the binarization of a binarized-MNIST run in ``config``; RunError when a
    resumed run would train on another binarization than it started with."""
    found = data.get("binarization")
    recorded = config.get("binarization")
    if recorded and found != recorded:
        fix = ("a folder that holds the binarized_mnist_*.amat files"
               if recorded == binarized.FIXED else
               "a folder without binarized_mnist_*.amat files (MNIST's IDX files only)")
        raise RunError("{} was trained on the {} binarization, but the data folder gives the "
                       "{} one; resume with --data-dir {}".format(out_dir, recorded, found, fix))
    config["binarization"] = found


def limit_data(data, config):
    """Apply --train-limit / --valid-limit and check there is enough to train on."""
    data = dict(data)
    valid = "valid" if "valid_images" in data else "test"
    if config.get("train_limit"):
        data["train_images"] = data["train_images"][:config["train_limit"]]
    if config.get("valid_limit"):
        data[valid + "_images"] = data[valid + "_images"][:config["valid_limit"]]
    if len(data["train_images"]) < config["batch_size"]:
        raise RunError("{} training images are fewer than one batch of {}".format(
            len(data["train_images"]), config["batch_size"]))
    if len(data[valid + "_images"]) == 0:
        raise RunError("there are no validation ({}) images".format(valid))
    if data.get("train_labels") is None and config.get("conditional", "none") != "none":
        raise RunError("the fixed binarized MNIST files hold no labels; a conditional model "
                       "cannot train on them (move the .amat files out of the data folder "
                       "to binarize MNIST dynamically, with its labels)")
    print(run_folder.describe_validation(config, len(data["train_images"]),
                                         len(data[valid + "_images"])), flush=True)
    return data


def check_saved(config, given, path):
    """RunError when a saved setting of a resumed run (those not ``given`` again) has
    a type or value the command line would refuse; ``path``: its config.json."""
    fix = "correct the file, or start a new run with --out-dir"
    for action in build_parser()._actions:
        key = action.dest
        if key in config and key not in given and not saved_type_fits(action, config[key]):
            raise RunError("{}: \"{}\" is {}, which {} does not take; {}".format(
                path, key, json.dumps(config[key]), action.option_strings[0], fix))
    if config.get("input_dim") != 1:
        raise RunError("{}: \"input_dim\" is {}, not 1 (MNIST is greyscale); {}".format(
            path, json.dumps(config.get("input_dim")), fix))
    if config.get("binarization") not in (None, binarized.FIXED, binarized.DYNAMIC):
        raise RunError("{}: \"binarization\" is {}, not \"{}\" or \"{}\"; {}".format(
            path, json.dumps(config["binarization"]), binarized.FIXED, binarized.DYNAMIC, fix))
    problem = setting_problem(dict(config, **given))
    if problem:
        raise RunError("{}: {}; {}".format(path, problem, fix))


def saved_type_fits(action, value):
    """True when ``value`` (from a config.json) is of the kind ``action`` parses."""
    if action.choices is not None:
        return isinstance(value, str) and value in action.choices
    if value is None:
        return action.default is None
    if isinstance(value, bool):
        return action.type is None and action.const is True  # a store_true flag
    if action.type is int:
        return isinstance(value, int)
    if action.type is float:
        return isinstance(value, (int, float))
    return isinstance(value, str) and action.type is None and action.nargs is None \
        and action.const is None


def describe_resume(config, given):
    """One line on the settings a resumed run reuses and how to change them."""
    kept = [k for k in ("epochs", "data_dir", "train_limit", "valid_limit")
            if k not in given and config[k] is not None]
    shown = ["{} {}".format(run_folder.option(k), config[k]) for k in kept]
    return "resuming with the saved settings{}{}".format(
        ": " + ", ".join(shown) if shown else "",
        " (give --epochs or --data-dir to change them)" if kept else "")


def start_trainer(args, config, data, out_dir, fresh, saved=None):
    """Compile the Trainer, then restore the saved state (--resume; ``saved``: the
    run's settings before this sitting) or save the initial one (a fresh run)."""
    graph = args.graph if builder.has_fast_graph(config) else "faithful"
    print("Compiling the training function ({} graph; about a minute the first "
          "time)...".format(graph), flush=True)
    start = time.time()
    trainer = Trainer(config, data, out_dir, progress=not args.no_progress, graph=graph)
    print("compiled in {:.0f} s; {} parameters".format(
        time.time() - start, trainer.net.model.count_params()), flush=True)
    if not fresh:
        try:
            trainer.load_state(trainer.state_path, saved)
        except CheckpointError as err:
            raise RunError("{}. {}".format(err, run_folder.way_forward(out_dir)))
    trainer.prepare_conditions()
    if fresh:
        run_folder.write_config(out_dir, config)
        trainer.save_state()
    else:  # with the settings it changed, once its first state is saved
        trainer.resumed, trainer.pending_config = True, config
    return trainer


def run(args, given, data=None, on_step=None):
    """Train as ``args`` says; returns (trainer, outcome of training.stopping.train).
    Raises RunError for problems to report to the user.

    data: preloaded ``{"train_images", "test_images"}`` uint8 (num, 28, 28) arrays
    instead of reading the data folder; on_step(trainer): called after every step.
    Both are for tests and scripts; the command line uses neither.
    """
    start = time.time()
    deadline = Deadline(args.time_budget, start) if args.time_budget else None
    if backend.blas_problem():
        raise RunError(backend.blas_problem())
    fresh = not args.resume
    before = None
    if fresh:
        out_dir, config = args.out_dir, run_folder.new_config(vars(args))
    else:
        out_dir = args.resume
        path = os.path.join(out_dir, run_folder.CONFIG_FILE)
        config, before = run_folder.saved_config(out_dir, {
            k: v for k, v in given.items() if k in run_folder.CONFIG_KEYS},
            check=lambda saved, changed: check_saved(saved, changed, path))
        finished = run_folder.check_state_file(out_dir, config)
        run_folder.read_history(out_dir)  # a damaged history.json stops the run here
        if finished >= config["epochs"]:
            print("{} already holds {} epochs; raise --epochs to train more".format(
                out_dir, finished))
            return None, None
        print(describe_resume(config, given), flush=True)
        if before["lr"] != config["lr"]:
            print("learning rate {} from here on (it was {})".format(
                config["lr"], before["lr"]), flush=True)
        for key in ("lr_decay", "lr_floor", "ema"):
            if before[key] != config[key]:
                print("{} {} from here on (it was {})".format(
                    run_folder.option(key), config[key], before[key]), flush=True)
    data = load_data(config) if data is None else data
    check_binarization(config, data, out_dir)
    data = limit_data(select_validation(data, config), config)
    created = run_folder.prepare_out_dir(out_dir, fresh)
    try:
        trainer = start_trainer(args, config, data, out_dir, fresh, before)
    except BaseException:
        if created:  # a fresh run that never started: leave no folder behind
            run_folder.remove_unstarted(out_dir)
        raise
    if not fresh:
        print("resumed at epoch {}, iteration {}".format(trainer.epoch + 1, trainer.iteration))
    return trainer, train(trainer, config["epochs"], on_step, deadline)


def main(argv=None, data=None, on_step=None):
    """Command-line entry point; returns the exit code (see ``EXIT_CODES``)."""
    args, given = parse_args(argv)
    try:
        _, outcome = run(args, given, data=data, on_step=on_step)
    except RunError as err:
        print("error: {}".format(err), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        out_dir = args.resume or args.out_dir
        if os.path.exists(os.path.join(out_dir, run_folder.STATE_FILE)):
            print("aborted; the last saved state is kept in {}".format(out_dir),
                  file=sys.stderr)
        else:
            print("aborted before the run started; nothing was saved", file=sys.stderr)
        return 130
    return 130 if outcome == INTERRUPTED else 0


if __name__ == "__main__":
    sys.exit(main())
