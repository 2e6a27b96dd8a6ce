"""Average the weights of several checkpoints of one model.

    python average_checkpoints.py --out runs/masked/average_18-23.npz \\
        runs/masked/epoch_01[89]_val_*.npz runs/masked/epoch_02[0-3]_val_*.npz
    python evaluate.py --checkpoint runs/masked/average_18-23.npz --split valid \\
        --dataset binarized-mnist

Late in a run, at a fixed learning rate, the weights of successive epochs
wander around a low region of the loss rather than settling in it; their
mean often lies lower than any one of them (Polyak averaging, taken over
saved epochs). Whether it does for a given run is an empirical question:
score the average on the validation images (``evaluate.py --split valid``),
compare it with the epochs' own validation figures (in the file names and
``history.json``), and keep whichever is lower. The test images are for the
checkpoint finally chosen, once.

Inputs: our ``.npz`` checkpoints, training ``state.npz`` files or the
original code's pickles, all of one model (the same description and
parameter shapes, which must be the ones that model has) trained on the same
data with the same validation split (recorded in the checkpoints, or for
earlier ones read from the config.json of their run beside them), each given
once: the same file twice, or two files holding the same weights (a run's
``state.npz`` holds its last epoch's, as its ``epoch_*.npz`` does), are
refused, as are weights that are not finite. The output is an ``.npz`` of the
mean weights (float64 sums, stored as float32) with the inputs' model and data,
``mean_of`` (the number of inputs) and, when every input records the same
``ema`` (train_mnist.py --ema), that one; ``evaluate.py`` reports both. It is
written atomically; an existing ``--out`` is replaced only with ``--force``,
and never when it is read-only or a run's resumable state. Exit codes: 0 done,
2 bad input, 130 stopped by Ctrl-C (nothing written).
"""
import argparse
import hashlib
import os
import sys
import zipfile

import numpy

import lib  # noqa: F401  (configures Theano before it is imported)
from lib.checkpoint import (SPLIT_KEYS, CheckpointError, non_finite, read_checkpoint,
                            recorded_data, save_arrays)
from models import build as builder
from training import run_folder

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input: reported in one line, exit code 2."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Average the weights of several checkpoints of one model (e.g. the "
                    "last epochs of a run); score the result with evaluate.py --split valid.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoints", nargs="+",
                   help="two or more checkpoints of one model: .npz, training state.npz "
                        "or the original's pickles; each once")
    p.add_argument("--out", required=True, help="the .npz to write the average to")
    p.add_argument("--force", action="store_true",
                   help="replace --out when it exists (never a read-only file or a run's "
                        "state.npz)")
    args = p.parse_args(argv)
    if len(args.checkpoints) < 2:
        p.error("give at least two checkpoints to average, got {}".format(
            len(args.checkpoints)))
    if not args.out.endswith(".npz"):
        p.error("--out must name an .npz file, got {}".format(args.out))
    return args


def check_out(args):
    """UsageError when --out cannot or must not be written: an input, in a missing or
    unwritable folder, a folder, or an existing file without --force (a read-only
    file or a run's resumable state even with it)."""
    out = os.path.realpath(args.out)
    if out in {os.path.realpath(p) for p in args.checkpoints}:
        raise UsageError("--out {} is one of the inputs: write the average to a new "
                         "file".format(args.out))
    folder = os.path.dirname(out)
    if not os.path.isdir(folder):
        raise UsageError("the folder of --out {} does not exist: create it first".format(
            args.out))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError("cannot write in the folder of --out {}: choose a writable "
                         "one".format(args.out))
    if not os.path.lexists(args.out):
        return
    if os.path.isdir(out):
        raise UsageError("--out {} is a folder: name an .npz file".format(args.out))
    if not os.access(out, os.W_OK) or not os.stat(out).st_mode & 0o222:
        raise UsageError("--out {} exists and is read-only: it is kept; write the average "
                         "to another file".format(args.out))
    if is_training_state(out):
        raise UsageError("--out {} is a run's resumable state (its optimiser state would be "
                         "lost, and --resume with it): write the average to another "
                         "file".format(args.out))
    if not args.force:
        raise UsageError("--out {} exists: give --force to replace it, or write the average "
                         "to another file".format(args.out))


def is_training_state(path):
    """True when ``path`` is a run's resumable state: an .npz whose parameters are
    stored as ``param/<name>``, beside the optimiser's state."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.startswith("param/") for n in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def check_distinct_files(paths):
    """UsageError naming two of ``paths`` that are the same file."""
    seen = {}
    for path in paths:
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError("{} and {} are the same file: give each checkpoint once".format(
                seen[real], path))
        seen[real] = path


def read(path):
    """(config, {name: ndarray}, data, unknown, ema) of one checkpoint: ``data`` holds
    the dataset keys of its description, with its validation split
    (run_folder.recorded_split) or, when that cannot be known, ``unknown`` says why;
    ``ema`` the weight average's decay it records (0: raw weights; None: not recorded)."""
    try:
        arrays, meta = read_checkpoint(path)
        config, weights = builder.network_of(arrays, meta, path)
    except (CheckpointError, ValueError) as err:
        raise UsageError(str(err))
    bad = non_finite(weights)
    if bad:
        raise UsageError("{}: {} hold{} NaN or infinite values (its run diverged there): "
                         "leave it out".format(path, ", ".join(bad[:3]) + (
                             ", ..." if len(bad) > 3 else ""), "s" if len(bad) == 1 else ""))
    data, unknown = recorded_data(meta), None
    if not all(k in data for k in SPLIT_KEYS):
        split, source = run_folder.recorded_split(path, meta, config)
        data.update(split or {})
        unknown = None if split else source
    return config, weights, data, unknown, (meta or {}).get("ema")


def common_average(read_back):
    """The weights record of the mean of the checkpoints read (:func:`read`): ``mean_of``,
    and the ``ema`` they were each written with when all record the same one."""
    record = {"mean_of": len(read_back)}
    decays = {r[4] for r in read_back}
    if len(decays) == 1 and None not in decays:
        record["ema"] = decays.pop()
    return record


def fingerprint(weights):
    """A digest of the values of ``{name: ndarray}`` (equal weights, equal digests)."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        value = numpy.ascontiguousarray(weights[name], dtype=numpy.float64)
        digest.update("{}{}".format(name, value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def check_distinct_weights(paths, read_back):
    """UsageError naming two checkpoints holding the same weights."""
    seen = {}
    for path, (_, weights, _, _, _) in zip(paths, read_back):
        key = fingerprint(weights)
        if key in seen:
            raise UsageError("{} and {} hold the same weights (a run's state.npz holds its "
                             "last epoch's): give each checkpoint once".format(seen[key], path))
        seen[key] = path


def differences(one, other, missing="not recorded"):
    """'key A vs B' for every key where dicts ``one`` and ``other`` differ."""
    return ", ".join("{} {} vs {}".format(k, one.get(k, missing), other.get(k, missing))
                     for k in sorted(set(one) | set(other)) if one.get(k) != other.get(k)
                     or (k in one) != (k in other))


def check_same_model(paths, read_back):
    """UsageError naming the first checkpoint whose model or data differs from the first's."""
    config, weights, data, unknown, _ = read_back[0]
    shapes = {n: v.shape for n, v in weights.items()}
    for path, (other_config, other_weights, other_data, other_unknown, _) in zip(
            paths[1:], read_back[1:]):
        if other_config != config:
            raise UsageError("{} and {} describe different models ({}): average checkpoints "
                             "of one model only".format(paths[0], path, differences(
                                 config, other_config)))
        if {n: v.shape for n, v in other_weights.items()} != shapes:
            raise UsageError("{} and {} hold different parameters (names or shapes): "
                             "average checkpoints of one model only".format(paths[0], path))
        if other_data != data and (unknown or other_unknown) and all(
                data.get(k) == other_data.get(k) for k in set(data) - set(SPLIT_KEYS)):
            raise UsageError("{}; so it cannot be averaged with {}: put its run's config.json "
                             "beside it, or leave it out".format(
                                 unknown or other_unknown, path if unknown else paths[0]))
        if other_data != data:
            raise UsageError("{} and {} were trained on different data ({}): average "
                             "checkpoints of one run, or of runs on the same data and "
                             "validation split".format(paths[0], path,
                                                       differences(data, other_data)))


def check_fits_model(paths, config, weights):
    """UsageError when the parameters (the same in every input) are not those of the
    model the inputs describe."""
    try:
        net = builder.build(config)
    except (ValueError, KeyError, TypeError) as err:
        raise UsageError("{}: its description names no model of ours ({})".format(
            paths[0], err))
    expected = {p.name: p.get_value(borrow=True).shape for p in net.all_params.get_params()}
    wrong = ["{} missing".format(n) for n in sorted(set(expected) - set(weights))]
    wrong += ["{} unexpected".format(n) for n in sorted(set(weights) - set(expected))]
    wrong += ["{} {} instead of {}".format(n, weights[n].shape, expected[n])
              for n in sorted(set(expected) & set(weights)) if weights[n].shape != expected[n]]
    if wrong:
        raise UsageError("{} (and the other inputs) do not hold the parameters of the {} "
                         "model they describe ({}{}): they are not checkpoints of it".format(
                             paths[0], config.get("model"), "; ".join(wrong[:3]),
                             "; ..." if len(wrong) > 3 else ""))


def average(weights):
    """The element-wise mean of a list of ``{name: ndarray}`` with equal names and
    shapes, summed in float64 and returned as float32."""
    return {name: numpy.mean([w[name].astype(numpy.float64) for w in weights], axis=0)
            .astype(numpy.float32) for name in weights[0]}


def main(argv=None):
    args = parse_args(argv)
    try:
        check_out(args)
        check_distinct_files(args.checkpoints)
        read_back = [read(p) for p in args.checkpoints]
        check_distinct_weights(args.checkpoints, read_back)
        check_same_model(args.checkpoints, read_back)
        config, weights, data, _, _ = read_back[0]
        check_fits_model(args.checkpoints, config, weights)
        try:
            save_arrays(args.out, average([r[1] for r in read_back]),
                        meta=dict(config, **data, **common_average(read_back)))
        except OSError as err:
            raise UsageError("cannot write --out {}: {}".format(args.out, err.strerror or err))
    except (UsageError, OSError) as err:
        print("error: {}".format(err), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("aborted (Ctrl-C) before {} was written; no file was changed".format(args.out),
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print("wrote the mean of {} checkpoints to {}; score it on the validation images with "
          "evaluate.py --checkpoint {} --split valid{}".format(
              len(args.checkpoints), args.out, args.out,
              " --dataset " + data["dataset"] if data.get("dataset", "mnist") != "mnist"
              else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
