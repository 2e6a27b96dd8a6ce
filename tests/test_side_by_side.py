"""benchmarks/side_by_side.py: its children's OpenMP settings and a tiny end-to-end run."""
import os
import subprocess
import sys

import numpy

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
