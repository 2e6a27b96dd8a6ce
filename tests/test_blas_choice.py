"""lib/blas_choice.py: the BLAS measured on this CPU, recorded once, measured
again on another CPU; the user's flags win (tests/test_backend.py)."""
import json
import os
import subprocess
import sys

import pytest

from lib import blas_choice, theano_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOUND = {"blis": ("-lblis", ["-lblis"]), "openblas-openmp": ("-lopenblas", ["x.so"])}


def never(*args, **kwargs):
    raise AssertionError("the probe ran where the record should have answered")


def fixed_probe(figures, calls):
    def run(found, environ=None, log=None):
        calls.append(sorted(found))
        return {name: figures[name] for name in found}
    return run


def test_the_winner_has_the_smallest_mean_slowdown_over_the_workloads():
    figures = {"a": {"steps": 10.0, "mixed": 30.0}, "b": {"steps": 20.0, "mixed": 10.0},
               "c": {"steps": 11.0, "mixed": 12.0}}
    name, score = blas_choice.winner(figures)
    assert name == "c"
    assert score["a"] == pytest.approx((1.0 + 3.0) / 2)
    assert score["c"] == pytest.approx((1.1 + 1.2) / 2)


def test_the_choice_is_measured_once_per_cpu_and_recorded(tmp_path, monkeypatch):
    path = str(tmp_path / "record.json")
    calls = []
    probe = fixed_probe({"blis": {"steps": 2.0, "mixed": 2.0},
                         "openblas-openmp": {"steps": 1.0, "mixed": 1.5}}, calls)
    fallback = lambda: "-lfallback"  # noqa: E731
    monkeypatch.setattr(blas_choice, "cpu_key", lambda: "cpu A")
    assert blas_choice.choose(fallback, path=path, found=FOUND, run_probe=probe) == "-lopenblas"
    assert calls == [["blis", "openblas-openmp"]]
    entry = json.load(open(path))["cpu A"]
    assert entry["choice"] == "openblas-openmp" and entry["ms"]["blis"]["steps"] == 2.0
    # the record answers from now on
    assert blas_choice.choose(fallback, path=path, found=FOUND, run_probe=never) == "-lopenblas"
    # another CPU measures again, and both are kept
    monkeypatch.setattr(blas_choice, "cpu_key", lambda: "cpu B")
    assert blas_choice.choose(fallback, path=path, found=FOUND, run_probe=probe) == "-lopenblas"
    assert sorted(json.load(open(path))) == ["cpu A", "cpu B"] and len(calls) == 2
    # --probe measures again; a recorded library that is gone is measured again
    blas_choice.choose(fallback, path=path, found=FOUND, run_probe=probe, force=True)
    assert len(calls) == 3
    only_blis = {"blis": FOUND["blis"], "openblas": ("-lopenblas", [])}
    probe2 = fixed_probe({"blis": {"steps": 1.0, "mixed": 1.0},
                          "openblas": {"steps": 3.0, "mixed": 3.0}}, calls)
    assert blas_choice.choose(fallback, path=path, found=only_blis, run_probe=probe2) == "-lblis"


def test_nothing_to_measure_falls_back_and_records_nothing(tmp_path):
    path = str(tmp_path / "record.json")
    fallback = lambda: "-lfallback"  # noqa: E731
    assert blas_choice.choose(fallback, path=path, found={}, run_probe=never) == "-lfallback"
    one = {"blis": FOUND["blis"]}
    assert blas_choice.choose(fallback, path=path, found=one, run_probe=never) == "-lfallback"
    failed = lambda found, environ=None, log=None: {}  # noqa: E731  (no compiler, all failed)
    assert blas_choice.choose(fallback, path=path, found=FOUND, run_probe=failed) == "-lfallback"
    assert not os.path.exists(path)


def test_a_record_that_cannot_be_written_still_gives_the_winner(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    probe = fixed_probe({"blis": {"steps": 1.0, "mixed": 1.0},
                         "openblas-openmp": {"steps": 2.0, "mixed": 2.0}}, [])
    said = []
    flags = blas_choice.choose(lambda: "", path=str(blocked / "sub" / "record.json"),
                               found=FOUND, run_probe=probe, log=said.append)
    assert flags == "-lblis" and "could not record" in said[0]


def test_an_unreadable_record_is_measured_again(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("{not json")
    calls = []
    probe = fixed_probe({"blis": {"steps": 1.0, "mixed": 1.0},
                         "openblas-openmp": {"steps": 2.0, "mixed": 2.0}}, calls)
    assert blas_choice.choose(lambda: "", path=str(path), found=FOUND, run_probe=probe) == "-lblis"
    assert calls and json.load(open(str(path)))


def test_candidates_are_the_installed_libraries():
    def finder(*present):
        return lambda name: "lib{}.so".format(name) if name in present else None
    everything = blas_choice.candidates(finder("blis", "openblas"), lambda path: True)
    assert sorted(everything) == ["blis", "openblas-openmp"]
    assert everything["openblas-openmp"][0] == "-lopenblas"
    assert blas_choice.candidates(finder(), lambda path: False) == {}
    plain = blas_choice.candidates(finder("openblas"), lambda path: False)
    assert plain == {"openblas": ("-lopenblas", ["-lopenblas"])}


def test_the_record_lives_in_the_virtualenv_else_in_the_users_cache(monkeypatch):
    assert blas_choice.record_path("/venv") == "/venv/share/pixelcnn-theano/blas-choice.json"
    monkeypatch.setenv("XDG_CACHE_HOME", "/cache")
    assert blas_choice.record_path(sys.base_prefix) == "/cache/pixelcnn-theano/blas-choice.json"


@pytest.mark.skipif(len(blas_choice.candidates()) < 1, reason="no BLAS library installed")
def test_the_probe_times_every_installed_library():
    found = blas_choice.candidates()
    figures = blas_choice.probe(found)
    assert sorted(figures) == sorted(found)
    for times in figures.values():
        assert all(times[w] > 0 for w in blas_choice.WORKLOADS)


def test_the_command_shows_the_choice_and_its_figures(tmp_path):
    env = dict(os.environ, THEANO_FLAGS="blas.ldflags=-lblis")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "lib", "theano_env.py"), "blas"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("CPU: ") and "installed: " in out.stdout
    assert "overridden here: THEANO_FLAGS sets blas.ldflags=-lblis" in out.stdout
    if len(blas_choice.candidates()) > 1:
        assert "chosen: " in out.stdout and "mixed ms" in out.stdout
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "lib", "theano_env.py"), "nope"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "blas --probe" in bad.stderr


def test_the_environment_module_loads_the_choice_by_its_path():
    assert theano_env.blas_choice().RECORD_NAME == blas_choice.RECORD_NAME
