"""Benchmark: our training step against the same network written in plain PyTorch.

PyTorch is not a dependency of this project: the peers (the same networks in
PyTorch, parameter counts equal to ours) are scripts kept outside the
repository, run by a Python that has ``torch`` (``--torch-python``). For each
model this script runs, in turn, ``benchmarks/train_step.py`` (our fast graph,
``--skip-reference``) and the peer, ``--rounds`` times each, so both see the
same machine; each run reports the median of its steps. Printed per model:

    model=<name> ours_s=<median of our runs> torch_s=<median of the peer's runs> torch_over_ours=<ratio>

(above 1: ours is faster). The peers' folder is ``--peers`` or
``$PIXELCNN_PEERS``. Models and the configurations both sides time:

    pixelconv   10 layers, DIM 32, Q_LEVELS 4, batch 100   (peer: torch_peer_step.py)
    masked      7 blocks, DIM 32, Q_LEVELS 2, batch 16     (peer: torch_peer_rnn.py masked)
    masked15    15 blocks, DIM 32, Q_LEVELS 2, batch 16    (torch_peer_rnn.py masked15)
    rowlstm     7 layers, DIM 32, batch 16                 (torch_peer_rnn.py rowlstm)
    diag1       Diagonal BiLSTM 1 layer, DIM 64, batch 16  (torch_peer_rnn.py diag1)
    diag7       Diagonal BiLSTM 7 layers, DIM 32, batch 16 (torch_peer_rnn.py diag7)

Run on a quiet machine (no training run or test suite beside it):

    .venv/bin/python benchmarks/versus_pytorch.py --torch-python ~/torchvenv/bin/python \\
        --peers ../shared/peers [--models pixelconv masked] [--rounds 3]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# model -> (train_step.py arguments, peer script and its arguments)
MODELS = {
    "pixelconv": (["--model", "pixelconv"], ["torch_peer_step.py"]),
    "masked": (["--model", "masked"], ["torch_peer_rnn.py", "masked"]),
    "masked15": (["--model", "masked", "--num-layers", "15"], ["torch_peer_rnn.py", "masked15"]),
    "rowlstm": (["--model", "rowlstm"], ["torch_peer_rnn.py", "rowlstm"]),
    "diag1": (["--model", "diagbilstm", "--num-layers", "1", "--dim", "64"],
              ["torch_peer_rnn.py", "diag1"]),
    "diag7": (["--model", "diagbilstm"], ["torch_peer_rnn.py", "diag7"]),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Time our training step and the same network's in plain PyTorch, in turn.",
        epilog="Needs a Python with torch (e.g. python3.11 -m venv ~/torchvenv && "
        "~/torchvenv/bin/pip install torch numpy) and the folder of peer scripts.")
    p.add_argument("--torch-python", required=True,
                   help="a Python interpreter that can import torch")
    p.add_argument("--peers", default=os.environ.get("PIXELCNN_PEERS"),
                   help="folder of torch_peer_step.py and torch_peer_rnn.py "
                   "(default: $PIXELCNN_PEERS)")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["pixelconv", "masked"],
                   help="models to time (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3,
                   help="runs of each side per model, alternating (default: %(default)s)")
    p.add_argument("--steps", type=int, default=10,
                   help="our timed steps per run (the peers time 10) (default: %(default)s)")
    args = p.parse_args(argv)
    if not args.peers or not os.path.isfile(os.path.join(args.peers, "torch_peer_step.py")):
        p.error("--peers must name the folder holding torch_peer_step.py and torch_peer_rnn.py "
                "(got {!r})".format(args.peers))
    if not os.access(args.torch_python, os.X_OK):
        p.error("--torch-python {!r} is not an executable".format(args.torch_python))
    if args.rounds < 1 or args.steps < 1:
        p.error("--rounds and --steps must be at least 1")
    return args


def run(command, pattern):
    """Run ``command``; the float that ``pattern`` finds in its output."""
    out = subprocess.run(command, capture_output=True, text=True)
    found = re.search(pattern, out.stdout)
    if out.returncode != 0 or not found:
        sys.exit("benchmark failed: {}\n{}".format(" ".join(command), out.stderr[-2000:]))
    return float(found.group(1))


def main(argv=None):
    args = parse_args(argv)
    for model in args.models:
        ours_args, peer = MODELS[model]
        ours_cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "train_step.py"),
                    "--skip-reference", "--steps", str(args.steps)] + ours_args
        peer_cmd = [args.torch_python, os.path.join(args.peers, peer[0])] + peer[1:]
        ours, torch = [], []
        for _ in range(args.rounds):
            ours.append(run(ours_cmd, r"step_s=([0-9.]+)"))
            torch.append(run(peer_cmd, r"torch_step_s=([0-9.]+)"))
            print("model={} round: ours {:.4f} s, torch {:.4f} s".format(model, ours[-1],
                                                                         torch[-1]), flush=True)
        o, t = statistics.median(ours), statistics.median(torch)
        print("model={} ours_s={:.4f} torch_s={:.4f} torch_over_ours={:.2f}".format(
            model, o, t, t / o), flush=True)


if __name__ == "__main__":
    main()
