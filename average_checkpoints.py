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
parameter shapes) trained on the same data. The output is an ``.npz`` of the
mean weights (float64 sums, stored as float32) with the inputs' description,
written atomically. Exit codes: 0 done, 2 bad input.
"""
import argparse
import os
import sys

import numpy

import lib  # noqa: F401  (configures Theano before it is imported)
from lib.checkpoint import CheckpointError, read_checkpoint, recorded_data, save_arrays
from models import build as builder

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """Bad input: reported in one line, exit code 2."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Average the weights of several checkpoints of one model (e.g. the "
                    "last epochs of a run); score the result with evaluate.py --split valid.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoints", nargs="+",
                   help="two or more checkpoints of one model: .npz, training state.npz "
                        "or the original's pickles")
    p.add_argument("--out", required=True, help="the .npz to write the average to")
    args = p.parse_args(argv)
    if len(args.checkpoints) < 2:
        p.error("give at least two checkpoints to average, got {}".format(
            len(args.checkpoints)))
    if not args.out.endswith(".npz"):
        p.error("--out must name an .npz file, got {}".format(args.out))
    return args


def read(path):
    """(config, {name: ndarray}, dataset keys of its description) of one checkpoint."""
    try:
        arrays, meta = read_checkpoint(path)
        config, weights = builder.network_of(arrays, meta, path)
    except (CheckpointError, ValueError) as err:
        raise UsageError(str(err))
    return config, weights, recorded_data(meta)


def check_same_model(paths, read_back):
    """UsageError naming the first checkpoint whose model or data differs from the first's."""
    config, weights, data = read_back[0]
    shapes = {n: v.shape for n, v in weights.items()}
    for path, (other_config, other_weights, other_data) in zip(paths[1:], read_back[1:]):
        if other_config != config:
            differ = sorted(k for k in set(config) | set(other_config)
                            if config.get(k) != other_config.get(k))
            raise UsageError("{} and {} describe different models ({}): average checkpoints "
                             "of one model only".format(paths[0], path, ", ".join(
                                 "{} {} vs {}".format(k, config.get(k), other_config.get(k))
                                 for k in differ)))
        if {n: v.shape for n, v in other_weights.items()} != shapes:
            raise UsageError("{} and {} hold different parameters (names or shapes): "
                             "average checkpoints of one model only".format(paths[0], path))
        if other_data != data:
            raise UsageError("{} and {} were trained on different data ({} vs {}): average "
                             "checkpoints of one run, or of runs on the same data".format(
                                 paths[0], path, data or "not recorded",
                                 other_data or "not recorded"))


def average(weights):
    """The element-wise mean of a list of ``{name: ndarray}`` with equal names and
    shapes, summed in float64 and returned as float32."""
    return {name: numpy.mean([w[name].astype(numpy.float64) for w in weights], axis=0)
            .astype(numpy.float32) for name in weights[0]}


def main(argv=None):
    args = parse_args(argv)
    try:
        out = os.path.realpath(args.out)
        if out in {os.path.realpath(p) for p in args.checkpoints}:
            raise UsageError("--out {} is one of the inputs: write the average to a new "
                             "file".format(args.out))
        if not os.path.isdir(os.path.dirname(out)):
            raise UsageError("the folder of --out {} does not exist: create it first".format(
                args.out))
        read_back = [read(p) for p in args.checkpoints]
        check_same_model(args.checkpoints, read_back)
        config, _, data = read_back[0]
        save_arrays(args.out, average([w for _, w, _ in read_back]), meta=dict(config, **data))
    except (UsageError, OSError) as err:
        print("error: {}".format(err), file=sys.stderr)
        return EXIT_BAD_INPUT
    print("wrote the mean of {} checkpoints to {}; score it on the validation images with "
          "evaluate.py --checkpoint {} --split valid{}".format(
              len(args.checkpoints), args.out, args.out,
              " --dataset " + data["dataset"] if data.get("dataset", "mnist") != "mnist"
              else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
