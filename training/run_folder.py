"""A training run's folder and its settings.

A run lives in one folder: ``config.json`` (every setting of the run),
``state.npz`` (the resumable state), ``history.json`` and the per-epoch
outputs. A resumed run reuses the saved settings; the few that may change
between sittings are listed in ``CHANGEABLE``, and a change is written back to
``config.json`` (the learning rate too: Adam's moments do not depend on it, so
lowering it for the last epochs is a decay schedule, recorded per epoch in the
history; training.schedule says how --lr, --lr-decay and --lr-floor combine,
and --ema may start, change or stop the weight average) when the resumed run
saves its first state, so a run that fails before leaves its files as they
were. The saved settings are checked as the command line checks them, and
state.npz and history.json are read, before anything is compiled.
"""
import glob
import json
import os

from lib.checkpoint import (DATASET_KEYS, SPLIT_KEYS, CheckpointError, atomic_write,
                            read_checkpoint)
from models import build as builder

STATE_FILE = "state.npz"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"

# The run's settings, saved in config.json. A resumed run keeps them all; those
# in CHANGEABLE may be given again with --resume (the others are refused).
CONFIG_KEYS = ("model", "conditional", "condition_map", "embed_dim", "encoder_dim", "encoder_convs",
               "encoder_steps", "margin", "num_layers",
               "dim", "q_levels", "batch_size", "valid_batch_size", "lr",
               "grad_clip", "epochs", "seed", "dataset", "data_dir", "no_download",
               "no_verify", "train_limit", "valid_limit", "save_original_format",
               "samples_every", "state_every", "valid_split", "binarization",
               "lr_decay", "lr_floor", "ema")
CHANGEABLE = ("epochs", "data_dir", "no_download", "no_verify", "valid_batch_size",
              "save_original_format", "samples_every", "state_every", "lr", "lr_decay",
              "lr_floor", "ema")
# Defaults for settings that older runs did not save.
OLD_RUN_DEFAULTS = {"model": "pixelconv", "conditional": "none", "input_dim": 1,
                    "dataset": "mnist", "valid_batch_size": 200, "grad_clip": 1.0,
                    "data_dir": None, "no_download": False, "no_verify": False,
                    "condition_map": 0, "binarization": None,
                    # runs saved before --valid-split existed validated on the test images
                    "valid_split": 0,
                    # runs saved before schedules and averaging: a constant rate, raw weights
                    "lr_decay": 1.0, "lr_floor": 0.0, "ema": 0.0,
                    **builder.ENCODER_DEFAULTS}
# What a run's validation images are, by its valid_split (history.json's "valid_set").
HELD_OUT, TEST_SET = "held-out", "test"


class RunError(Exception):
    """A problem reported in one line without a traceback; ``exit_code`` 2 for bad
    input (options, files, folders), 1 for a run that failed."""
    exit_code = 2


class DivergedError(RunError):
    """The training cost, the validation NLL or the parameters stopped being finite."""
    exit_code = 1


def model_description(config):
    """The part of a run's config that rebuilds its network (stored in checkpoints)."""
    keys = ["model", "conditional", "input_dim", "dim", "num_layers", "q_levels"]
    if config.get("conditional") == "embedding":
        keys += ["embed_dim", "encoder_dim", "encoder_convs"]
    if config.get("condition_map"):
        keys += ["condition_map"]
    return {k: config[k] for k in keys}


def checkpoint_meta(config):
    """The description stored in a run's checkpoints and states: the model's
    (:func:`model_description`) and the data it was trained on, with the training
    images it held out and its limit (SPLIT_KEYS; a limit None is recorded too)."""
    meta = model_description(config)
    meta.update({k: config[k] for k in DATASET_KEYS if config.get(k)})
    meta.update({k: config.get(k) for k in SPLIT_KEYS})
    return meta


def recorded_split(path, meta, config):
    """``(split, source)``: the training images checkpoint ``path`` learnt from, as
    ``{"valid_split": N, "train_limit": L or None}`` (SPLIT_KEYS), and the file it
    was read from; ``(None, why)`` when it cannot be known.

    Checkpoints and states record it in their description ``meta`` since the split
    existed; for earlier ones it is read from the config.json of their run, when
    it sits beside them: in the checkpoint's own folder (a run's epoch_*.npz and
    state.npz) or in ``<folder>/<name>_run/`` (pretrained/<name>.npz beside its
    run), and describes the same model (``config``: the checkpoint's) and data."""
    if meta and all(k in meta for k in SPLIT_KEYS):
        split = _valid_split_record(meta)
        return (split, path) if split else (None, "{} records an invalid split ({})".format(
            path, ", ".join("{} {}".format(k, json.dumps(meta[k])) for k in SPLIT_KEYS)))
    folder, name = os.path.split(path)
    candidates = [os.path.join(folder, CONFIG_FILE),
                  os.path.join(folder, os.path.splitext(name)[0] + "_run", CONFIG_FILE)]
    found = []
    for candidate in (c for c in candidates if os.path.isfile(c)):
        try:
            run = read_config(os.path.dirname(candidate))
        except RunError:
            found.append("{} is not a run's config".format(candidate))
            continue
        differ = _other_run(run, config, meta)
        split = _valid_split_record(run)
        if differ:
            found.append("{} is another run's ({})".format(candidate, differ))
        elif split is None:
            found.append("{} holds an invalid valid_split or train_limit".format(candidate))
        else:
            return split, candidate
    return None, "{} does not record the training images it held out, and {}".format(
        path, "; ".join(found) if found else "no config.json of its run sits beside it ({} "
        "or {})".format(*candidates))


def _valid_split_record(values):
    """SPLIT_KEYS of ``values`` when valid (N >= 0, L None or >= 1), else None."""
    number = (lambda v, low: isinstance(v, int) and not isinstance(v, bool) and v >= low)
    n, limit = values.get("valid_split"), values.get("train_limit")
    if number(n, 0) and (limit is None or number(limit, 1)):
        return {"valid_split": n, "train_limit": limit}
    return None


def _other_run(run, config, meta):
    """How run config ``run`` differs from a checkpoint's model ``config`` and data
    (``meta``), as 'key A here, B in the checkpoint' phrases; '' when it does not."""
    defaults = {"model": "pixelconv", "conditional": "none", "input_dim": 1,
                "condition_map": 0}
    keys = ("model", "conditional", "input_dim", "dim", "num_layers", "q_levels",
            "condition_map")
    differ = ["{} {} here, {} in the checkpoint".format(k, run.get(k, defaults.get(k)),
                                                        config.get(k, defaults.get(k)))
              for k in keys if run.get(k, defaults.get(k)) != config.get(k, defaults.get(k))]
    if meta and meta.get("dataset") and meta["dataset"] != run.get("dataset"):
        differ.append("dataset {} here, {} in the checkpoint".format(run.get("dataset"),
                                                                      meta["dataset"]))
    return ", ".join(differ)


def valid_set(config):
    """HELD_OUT or TEST_SET: the images the run validates on."""
    return HELD_OUT if config.get("valid_split") else TEST_SET


def describe_validation(config, num_train, num_valid):
    """One line for the log on the validation images of a run."""
    if valid_set(config) == TEST_SET:
        return "validation: {} test images (--valid-split 0); {} training images".format(
            num_valid, num_train)
    return "validation: {} of the last {} training images, held out (--valid-split); {} " \
        "training images; the test images are not used".format(
            num_valid, config["valid_split"], num_train)


def new_config(options):
    """The config of a fresh run from ``{setting: value}`` (the command line)."""
    config = {k: options.get(k) for k in CONFIG_KEYS}
    if config["data_dir"]:
        config["data_dir"] = os.path.abspath(os.path.expanduser(config["data_dir"]))
    config.update(input_dim=1)
    try:
        builder.condition_dim(config)
        builder.condition_map_shape(config)
    except ValueError as err:
        raise RunError(str(err))
    return config


def saved_config(out_dir, given, check=None):
    """(config, saved): the config saved in ``out_dir`` updated with the ``given``
    settings (``{setting: value}`` given again on the command line), and the
    saved one as it was; RunError for a setting that a resumed run cannot change.
    ``check(config, given)``, if given, is called on the saved config after that
    comparison (it raises RunError for a value the command line would refuse)."""
    config = read_config(out_dir)
    # the command line first: a setting it may not change is its fault, not the file's
    fixed = sorted(k for k in given if k not in CHANGEABLE and given[k] != config.get(k))
    if fixed:
        raise RunError("--resume continues the run as it was set up; it cannot change {}. "
                       "Leave {} out, or start a new run with --out-dir".format(
                           ", ".join(option(k) for k in fixed),
                           "it" if len(fixed) == 1 else "them"))
    if check is not None:
        check(config, given)
    saved = dict(config)
    for key, value in given.items():
        config[key] = value
    if given.get("data_dir"):
        config["data_dir"] = os.path.abspath(os.path.expanduser(given["data_dir"]))
    return config, saved


def read_config(out_dir):
    """The config saved in ``out_dir``, with the defaults of settings older runs
    did not save; RunError when it is missing or not a run's config."""
    path = os.path.join(out_dir, CONFIG_FILE)
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise RunError("{} holds no resumable run ({}); start one with --out-dir".format(
            out_dir, err))
    missing = [k for k in ("num_layers", "dim", "q_levels", "batch_size", "lr", "seed")
               if not isinstance(config, dict) or k not in config]
    if missing:
        raise RunError("{} is not a run's config: {} missing".format(path, ", ".join(missing)))
    for key, value in OLD_RUN_DEFAULTS.items():
        config.setdefault(key, value)
    return config


def read_history(out_dir):
    """The records of history.json in ``out_dir`` (a list of dicts, each with its
    "epoch", "train_nll" and "valid_nll"), [] when there is none; RunError when
    the file is damaged."""
    path = os.path.join(out_dir, HISTORY_FILE)
    if not os.path.exists(path):
        return []
    try:
        with open(path, "rb") as f:
            history = json.loads(f.read().decode("utf-8"))
        if not isinstance(history, list):
            raise ValueError("not a list of epoch records")
        for n, record in enumerate(history):
            if not isinstance(record, dict) or not all(
                    isinstance(record.get(k), (int, float)) and not isinstance(record[k], bool)
                    for k in ("epoch", "train_nll", "valid_nll")):
                raise ValueError("record {} is not an epoch's record (epoch, train_nll, "
                                 "valid_nll)".format(n + 1))
    except (OSError, ValueError) as err:
        raise RunError("{} is damaged ({}). Put back a good copy, or move it away to resume "
                       "without the records of the earlier epochs".format(path, err))
    return history


def option(key):
    """The command-line option of a setting: 'data_dir' -> '--data-dir'."""
    return "--" + key.replace("_", "-")


def write_config(out_dir, config):
    atomic_write(os.path.join(out_dir, CONFIG_FILE),
                 lambda f: f.write(json.dumps(config, indent=1).encode()))


def check_state_file(out_dir, config=None):
    """Read ``out_dir``'s state.npz once, before anything is compiled, and return
    the number of epochs it has finished; RunError (with the way forward) when
    it is missing or damaged, or (``config`` given) when it holds another model
    than the one the run's config.json describes."""
    path = os.path.join(out_dir, STATE_FILE)
    if not os.path.isfile(path):
        raise RunError("{} holds no resumable state ({} is missing)".format(out_dir, STATE_FILE))
    try:
        arrays, meta = read_checkpoint(path)
        if "epoch" not in arrays:
            raise CheckpointError("{}: epoch is missing; not a resumable state".format(path))
    except CheckpointError as err:
        raise RunError("{}. {}".format(err, way_forward(out_dir)))
    if config is not None and meta:
        wanted = dict(model_description(config), **{k: config.get(k) for k in SPLIT_KEYS})
        other = sorted(k for k in wanted if k in meta and meta[k] != wanted[k])
        if other:
            raise RunError(
                "{} describes another model than this run's {} ({}); the config.json "
                "belongs to another run: put back this run's config.json".format(
                    os.path.join(out_dir, CONFIG_FILE), STATE_FILE, ", ".join(
                        "{} {} in {}, {} in config.json".format(
                            k, meta[k], STATE_FILE, wanted[k]) for k in other)))
    return int(arrays["epoch"])


def way_forward(out_dir):
    """What a user can do when a run's state is damaged."""
    finished = sorted(glob.glob(os.path.join(out_dir, "epoch_*.npz")))
    text = ("Put back a good copy of {} (a committed run's state, for example), or start "
            "a new run with --out-dir".format(STATE_FILE))
    if finished:
        text += ("; the weights of the last finished epoch are in {} (generate.py and "
                 "evaluate.py read them)".format(finished[-1]))
    return text


def prepare_out_dir(path, fresh):
    """Create ``path`` and prove it is writable, before any training starts. A fresh
    run refuses a folder that already holds a run's state, so nothing is overwritten.
    Returns True when this call created the folder."""
    state = os.path.join(path, STATE_FILE)
    if fresh and os.path.exists(state):
        raise RunError("{} already holds a run ({}); continue it with --resume {} or "
                       "choose another --out-dir".format(path, STATE_FILE, path))
    created = not os.path.exists(path)
    probe = os.path.join(path, ".write-test")
    try:
        os.makedirs(path, exist_ok=True)
        atomic_write(probe, lambda f: f.write(b"ok"))
        os.remove(probe)
    except OSError as err:
        if not fresh:
            raise RunError("cannot write to the run's folder {}: {}. Make it writable, or "
                           "resume a writable copy of it".format(path, err.strerror or err))
        raise RunError("cannot write to output folder {}: {}. Choose another "
                       "--out-dir.".format(path, err.strerror or err))
    return created


def remove_unstarted(path):
    """Remove the folder of a run whose start failed before its first state was
    saved (its config.json, if written, and then the folder when it is empty)."""
    if os.path.exists(os.path.join(path, STATE_FILE)):
        return
    try:
        if os.path.exists(os.path.join(path, CONFIG_FILE)):
            os.remove(os.path.join(path, CONFIG_FILE))
        os.rmdir(path)
    except OSError:
        pass
