"""A BLAS library Theano cannot link (``blas.ldflags`` naming a missing library): the
scripts say so in one line, with the fix, before they read data or compile
(lib.backend.blas_problem), instead of Theano's compile-error trace."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("script, argv", [
    ("evaluate.py", ["--checkpoint", "pretrained/pixelconv.npz", "--limit", "10"]),
    ("train_mnist.py", ["--epochs", "1", "--train-limit", "100", "--out-dir", "{tmp}/run"]),
    ("generate.py", ["--num", "1", "--out", "{tmp}/samples.png"]),
])
def test_a_missing_blas_library_is_one_line_naming_it_and_the_fix(tmp_path, script, argv):
    env = dict(os.environ, THEANO_FLAGS="blas.ldflags=-lnonexistent_blas_library")
    out = subprocess.run([sys.executable, script] + [a.format(tmp=tmp_path) for a in argv],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: Theano's BLAS setting blas.ldflags=-lnonexistent_blas_"
                           "library (from THEANO_FLAGS or ~/.theanorc) names "
                           "-lnonexistent_blas_library the linker cannot find")
    assert "remove blas.ldflags from THEANO_FLAGS" in line
    assert os.listdir(str(tmp_path)) == []  # no run folder, no picture
