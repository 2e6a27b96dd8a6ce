"""benchmarks/side_by_side.py: its children's OpenMP settings and a tiny end-to-end run."""
import os
import subprocess
import sys

import numpy
import pytest

from lib.checkpoint import save_arrays
from models import build as builder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import side_by_side  # noqa: E402


def test_children_get_the_project_setting_or_libgomps_default_never_the_callers():
    caller = {"PATH": "/bin", "OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "7"}
    assert side_by_side.child_env("ours", caller) == {"PATH": "/bin"}
    assert side_by_side.child_env("libgomp", caller) == {"PATH": "/bin",
                                                         "GOMP_SPINCOUNT": "300000"}


def test_a_tiny_run_prints_both_times_and_their_ratio(tmp_path):
    config = {"model": "pixelconv", "conditional": "none", "input_dim": 1, "dim": 4,
              "num_layers": 3, "q_levels": 4}
    numpy.random.seed(3)
    path = str(tmp_path / "tiny.npz")
    save_arrays(path, builder.build(config).all_params.param_values(), meta=config)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "side_by_side.py"),
                          "--checkpoint", path, "--images", "20", "--batch-size", "10",
                          "--neighbour-batch", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    last = dict(pair.split("=") for pair in out.stdout.splitlines()[-1].split())
    assert sorted(last) == ["alone_s", "beside_s", "openmp", "ratio"]
    assert float(last["alone_s"]) > 0 and float(last["beside_s"]) > 0
    assert last["openmp"] == "ours"


@pytest.mark.parametrize("kind, words", [
    ("classifier", "holds train_classifier.py's digit classifier"),
    ("truncated", "is not a readable .npz checkpoint"),
])
def test_a_checkpoint_that_is_not_ours_is_one_line_exit_2(tmp_path, kind, words):
    """--step-check (and the NLL pass) on the classifier's file or a truncated .npz: the
    child says so in one line before compiling, no traceback, and nothing is timed."""
    path = str(tmp_path / "model.npz")
    if kind == "classifier":
        save_arrays(path, {"a": numpy.zeros(3, numpy.float32)},
                    meta={"model": "classifier", "q_levels": 4})
    else:
        config = {"model": "pixelconv", "conditional": "none", "input_dim": 1, "dim": 4,
                  "num_layers": 3, "q_levels": 4}
        save_arrays(path, builder.build(config).all_params.param_values(), meta=config)
        with open(path, "rb") as f:
            head = f.read(3000)
        with open(path, "wb") as f:
            f.write(head)
    for mode in (["--step-check"], []):
        out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks",
                                                           "side_by_side.py"),
                              "--checkpoint", path] + mode,
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr and "_s=" not in out.stdout
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith("error: {} ".format(path)) and words in line
