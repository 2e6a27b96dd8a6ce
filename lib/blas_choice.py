"""Which BLAS Theano links: measured once on each CPU, recorded in the virtualenv.

No BLAS is fastest everywhere: on one machine BLIS multiplies the fast graphs'
matrices fastest, on another OpenBLAS. So the first time a process needs the
choice (``lib.theano_env`` asks before Theano is imported; ``make venv`` asks
up front), :func:`probe` times every installed candidate on this machine and
:func:`choose` records the winner, keyed by the CPU (model, flags, usable
cores): the same virtualenv on another CPU measures again. A user's own
``blas.ldflags`` (``THEANO_FLAGS`` or ``.theanorc``) is never overridden: then
nothing is probed.

The probe is a small C program, compiled once per candidate and linked against
it, that runs what BLAS still does in the fast graphs (their convolutions run
in ``kernels.tiled_conv``'s own kernel, whatever the library): the LSTM ops'
products, one row of the image after another, each split by the BLAS's own
threads (``(448, 96) x (96, 128)`` and its gradient, then the weight gradient
over all 12,544 positions of a batch of 16) -- alone (``steps``) and with a
parallel region of other arithmetic between them (``mixed``), as the ops run
their gate updates between the products: a library whose idle threads keep
the cores busy loses there.

Each figure is in milliseconds: the median of 15 repetitions within a run,
then the median over three runs of the candidates in turn. The winner has the
smallest mean of (its time / the best time) over the two workloads.

``python lib/theano_env.py blas`` shows the choice and its figures, ``blas
--probe`` measures again. This module never imports Theano.
"""
import ctypes.util
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

LIB_DIR = "/usr/lib/x86_64-linux-gnu"
OPENBLAS_OPENMP = LIB_DIR + "/openblas-openmp/libopenblas.so.0"
RECORD_NAME = "blas-choice.json"
WORKLOADS = ("steps", "mixed")

PROBE_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <omp.h>
#define REPEATS 15
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*,
            const float*, const int*, const float*, const int*, const float*, float*,
            const int*);
static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec;
}
static float* filled(long n) {
    float* a = (float*)malloc(n * sizeof(float));
    for (long i = 0; i < n; i++) a[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    return a;
}
static void gemm(const char* ta, const char* tb, int m, int n, int k, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
    float one = 1.0f;
    sgemm_(ta, tb, &m, &n, &k, &one, a, &lda, b, &ldb, &beta, c, &ldc);
}
/* A Row LSTM layer's products (batch 16, 28 x 28, h 32): 28 rows of 448 positions
   forward and back, then the weight gradient over all 12,544 positions; with
   `own`, a parallel region of other arithmetic between the products, as the op
   runs its gate updates between them. */
static const int n = 448, KH = 96, G = 128, N = 12544;
static float *wt, *p, *z, *dp, *dw, *gates;
static double steps(int own) {
    double start = now();
    for (int t = 0; t < 28; t++) {
        gemm("N", "N", G, n, KH, wt, G, p + (long)t * n * KH, KH, 1.0f, z + (long)t * n * G, G);
        if (own) {
            #pragma omp parallel for schedule(static)
            for (int i = 0; i < n * G; i++) gates[i] = gates[i] * 0.999f + z[(long)t * n * G + i];
        }
    }
    for (int t = 27; t >= 0; t--) {
        gemm("T", "N", KH, n, G, wt, G, z + (long)t * n * G, G, 0.0f, dp, KH);
        if (own) {
            #pragma omp parallel for schedule(static)
            for (int i = 0; i < n * KH; i++) gates[i] = gates[i] * 0.999f + dp[i];
        }
    }
    gemm("N", "T", G, KH, N, z, G, p, KH, 0.0f, dw, G);
    return now() - start;
}
static int cmp(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b; return (x > y) - (x < y);
}
int main(void) {
    double t[REPEATS];
    wt = filled(KH * G); p = filled((long)N * KH); z = filled((long)N * G);
    dp = filled((long)n * KH); dw = filled(KH * G); gates = filled((long)n * G);
    steps(0); steps(1);                       /* warm up: threads, pages */
    for (int i = 0; i < REPEATS; i++) t[i] = steps(0);
    qsort(t, REPEATS, sizeof(double), cmp);
    printf("steps %.3f\n", t[REPEATS / 2] * 1e3);
    for (int i = 0; i < REPEATS; i++) t[i] = steps(1);
    qsort(t, REPEATS, sizeof(double), cmp);
    printf("mixed %.3f\n", t[REPEATS / 2] * 1e3);
    return 0;
}
"""


def candidates(find_library=ctypes.util.find_library, exists=os.path.isfile):
    """The installed libraries, as ``{name: (blas.ldflags, link arguments of the probe)}``.

    ``openblas-openmp`` is spelled ``-lopenblas``: ``lib.theano_env`` then loads
    that build ahead of Theano's modules (see ``load_openmp_openblas``). Plain
    ``openblas`` (whatever ``libopenblas.so.0`` is) only where that build is
    missing. The pthread build is no candidate: its threads spin while our
    OpenMP ops run (benchmarks/README.md), and its flags would need commas,
    which ``THEANO_FLAGS`` cannot hold.
    """
    found = {}
    if find_library("blis"):
        found["blis"] = ("-lblis", ["-lblis"])
    if exists(OPENBLAS_OPENMP) and exists(LIB_DIR + "/libopenblas.so"):
        found["openblas-openmp"] = ("-lopenblas", [OPENBLAS_OPENMP])
    elif find_library("openblas"):
        found["openblas"] = ("-lopenblas", ["-lopenblas"])
    return found


def cpu_key():
    """What the record is keyed by: the CPU model, a digest of its flags, usable cores."""
    model, flags = platform.processor() or platform.machine(), ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() == "model name" and model in ("", platform.machine()):
                    model = value.strip()
                elif name.strip() == "flags" and not flags:
                    flags = value.strip()
    except OSError:
        pass
    digest = hashlib.sha1(flags.encode()).hexdigest()[:10]
    return "{} | flags {} | {} cores".format(model, digest, len(os.sched_getaffinity(0)))


def record_path(prefix=None):
    """The record: in the virtualenv when running in one, else in the user's cache."""
    prefix = prefix or sys.prefix
    if prefix != getattr(sys, "base_prefix", prefix):
        return os.path.join(prefix, "share", "pixelcnn-theano", RECORD_NAME)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(cache, "pixelcnn-theano", RECORD_NAME)


def read_record(path=None):
    try:
        with open(path or record_path()) as f:
            record = json.load(f)
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def write_record(record, path=None):
    """Replace the record atomically (a reader never sees half of it)."""
    path = path or record_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def probe(found, compiler=None, environ=None, log=None, rounds=3):
    """Time each candidate: ``{name: {"tiles": ms, "steps": ms}}``, each the median
    over ``rounds`` runs of the candidates in turn (so that all see the same
    machine); a candidate that fails to build or run is left out (said on
    ``log``)."""
    compiler = compiler or shutil.which("gcc") or shutil.which("cc")
    if not compiler:
        return {}
    env = dict(os.environ if environ is None else environ)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="blas-probe-") as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write(PROBE_C)
        built = []
        for name, (_, link) in sorted(found.items()):
            exe = os.path.join(tmp, "probe-" + name)
            try:
                subprocess.run([compiler, "-O2", "-fopenmp", source, "-o", exe] + link,
                               check=True, capture_output=True, timeout=120)
                built.append((name, exe))
            except (OSError, subprocess.SubprocessError) as err:
                if log:
                    log("blas probe: {} left out ({})".format(name, err))
        for _ in range(rounds):
            for name, exe in list(built):
                try:
                    out = subprocess.run([exe], check=True, capture_output=True, text=True,
                                         timeout=120, env=env).stdout
                    times = dict(line.split() for line in out.splitlines() if line.strip())
                    runs.setdefault(name, []).append({w: float(times[w]) for w in WORKLOADS})
                except (OSError, subprocess.SubprocessError, KeyError, ValueError) as err:
                    if log:
                        log("blas probe: {} left out ({})".format(name, err))
                    built.remove((name, exe))
                    runs.pop(name, None)
    return {name: {w: statistics.median(r[w] for r in rs) for w in WORKLOADS}
            for name, rs in runs.items()}


def winner(figures):
    """The candidate with the smallest mean of time / best time over the workloads."""
    best = {w: min(f[w] for f in figures.values()) for w in WORKLOADS}
    score = {name: sum(f[w] / best[w] for w in WORKLOADS) / len(WORKLOADS)
             for name, f in figures.items()}
    return min(sorted(score), key=score.get), score


def choose(fallback, environ=None, path=None, found=None, run_probe=probe, force=False, log=None):
    """``blas.ldflags`` for this CPU: the recorded choice, else a new measurement
    (recorded), else ``fallback()`` (nothing to measure: one library or none, or
    no C compiler). ``environ`` is the environment the probe runs in (the one
    Theano will see)."""
    found = candidates() if found is None else found
    if not found:
        return fallback()
    key, record = cpu_key(), read_record(path)
    entry = record.get(key)
    if entry and not force and entry.get("choice") in found:
        return found[entry["choice"]][0]
    figures = run_probe(found, environ=environ, log=log) if len(found) > 1 else {}
    if not figures:
        return fallback()
    name, score = winner(figures)
    record[key] = {"choice": name, "ms": figures, "score": score,
                   "measured": datetime.datetime.now().isoformat(timespec="seconds")}
    try:
        write_record(record, path)
    except OSError as err:
        if log:
            log("blas probe: could not record the choice in {} ({})".format(
                path or record_path(), err))
    return found[name][0]


def describe(path=None):
    """What ``python lib/theano_env.py blas`` prints: the CPU, the installed
    libraries, the choice and the figures."""
    path = path or record_path()
    key, found = cpu_key(), candidates()
    entry = read_record(path).get(key)
    lines = ["CPU: " + key, "installed: " + (", ".join(
        "{} ({})".format(n, found[n][0]) for n in sorted(found)) or "none")]
    if not entry:
        lines.append("no measurement recorded for this CPU in " + path)
        return lines
    lines.append("chosen: {} (measured {}, recorded in {})".format(
        entry["choice"], entry.get("measured", "?"), path))
    lines.append("{:<18}{:>12}{:>12}{:>8}".format("library", "steps ms", "mixed ms", "score"))
    for name in sorted(entry["ms"], key=lambda n: entry["score"][n]):
        f = entry["ms"][name]
        lines.append("{:<18}{:>12.2f}{:>12.2f}{:>8.3f}".format(
            name, f.get("steps", float("nan")), f.get("mixed", float("nan")),
            entry["score"][name]))
    return lines
