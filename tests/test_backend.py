"""Theano set-up: our defaults, the user's flags winning, Lasagne importable."""
import ctypes.util
import os
import subprocess
import sys

import pytest

from lib import backend, theano_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults_are_added_when_the_user_sets_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("THEANORC", str(tmp_path / "none"))
    env = {}
    backend.configure_environment(env)
    assert "floatX=float32" in env["THEANO_FLAGS"]
    assert "blas.ldflags=" in env["THEANO_FLAGS"]


def test_users_flags_win(monkeypatch, tmp_path):
    monkeypatch.setenv("THEANORC", str(tmp_path / "none"))
    env = {"THEANO_FLAGS": "blas.ldflags=-lmyblas,optimizer=fast_compile"}
    backend.configure_environment(env)
    flags = env["THEANO_FLAGS"].split(",")
    assert "blas.ldflags=-lmyblas" in flags and "optimizer=fast_compile" in flags
    assert not [f for f in flags if f.startswith("blas.ldflags=") and f != "blas.ldflags=-lmyblas"]
    assert "floatX=float32" in flags


def test_theanorc_setting_is_respected(monkeypatch, tmp_path):
    rc = tmp_path / "theanorc"
    rc.write_text("[blas]\nldflags = -lmine\n")
    monkeypatch.setenv("THEANORC", str(rc))
    env = {}
    backend.configure_environment(env)
    assert "blas.ldflags" not in env["THEANO_FLAGS"]


def test_a_user_flag_reaches_theano_and_lasagne_imports():
    code = ("import lib, theano, lasagne.updates; "
            "print(theano.config.floatX, theano.config.optimizer)")
    env = dict(os.environ, THEANO_FLAGS="optimizer=fast_compile")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["float32", "fast_compile"]


def test_compile_lock_retry_is_short_unless_the_user_chose(tmp_path):
    """compile.wait=1 reaches Theano (two processes wait 1-2 s, not 5-10 s, for
    each other's compile lock); a user's own value wins."""
    code = "import lib, theano; print(theano.config.compile.wait)"
    waits = []
    for flags in ("", "compile.wait=7"):
        env = dict(os.environ, THEANO_FLAGS=flags, THEANORC=str(tmp_path / "none"))
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        waits.append(out.stdout.split()[-1])
    assert waits == ["1", "7"]


def test_wrong_floatx_from_the_user_is_reported():
    env = dict(os.environ, THEANO_FLAGS="floatX=float64")
    out = subprocess.run([sys.executable, "-c", "import lib"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "floatX=float32" in out.stderr


def test_without_a_measurement_the_order_is_openblas_openmp_then_blis_then_openblas_then_numpy():
    def finder(*present):
        return lambda name: "lib{}.so".format(name) if name in present else None

    def installed(*paths):
        return lambda path: path in paths
    both = installed(theano_env.OPENBLAS_OPENMP, theano_env.OPENBLAS_LINK)
    assert theano_env.preference_ldflags(finder("blis", "openblas"), both) == "-lopenblas"
    assert theano_env.preference_ldflags(finder("blis"), both) == "-lopenblas"
    # The OpenMP build without the link-time library (no libopenblas-dev): not linkable.
    for partial in (installed(theano_env.OPENBLAS_OPENMP), installed()):
        assert theano_env.preference_ldflags(finder("blis", "openblas"), partial) == "-lblis"
        assert theano_env.preference_ldflags(finder("openblas"), partial) == "-lopenblas"
        assert theano_env.preference_ldflags(finder(), partial) == ""


def test_the_openmp_build_of_openblas_is_loaded_only_for_plain_openblas_flags():
    loaded = []
    installed = lambda path: path == theano_env.OPENBLAS_OPENMP  # noqa: E731
    assert theano_env.load_openmp_openblas("-lopenblas", installed, loaded.append)
    assert loaded == [theano_env.OPENBLAS_OPENMP]
    for ldflags in ("-lblis", "-L/opt/x -lopenblas", ""):
        assert not theano_env.load_openmp_openblas(ldflags, installed, loaded.append)
    assert not theano_env.load_openmp_openblas("-lopenblas", lambda path: False, loaded.append)
    assert len(loaded) == 1


def test_a_build_that_fails_to_load_is_reported_not_fatal():
    def fail(path):
        raise OSError("bad ELF header")
    installed = lambda path: True  # noqa: E731
    with pytest.warns(UserWarning, match="bad ELF header"):
        assert not theano_env.load_openmp_openblas("-lopenblas", installed, fail)


def test_the_ldflags_of_a_flags_string_are_its_last_blas_ldflags():
    assert theano_env.flags_ldflags("floatX=float32,blas.ldflags=-lblis") == "-lblis"
    assert theano_env.flags_ldflags("blas.ldflags=-lblis,blas.ldflags=-lopenblas") == "-lopenblas"
    assert theano_env.flags_ldflags("blas.ldflags=") == ""
    assert theano_env.flags_ldflags("floatX=float32") is None


@pytest.mark.skipif(not (os.path.isfile(theano_env.OPENBLAS_OPENMP)
                         and os.path.isfile(theano_env.OPENBLAS_LINK)),
                    reason="OpenBLAS's OpenMP build or libopenblas-dev is not installed")
def test_a_process_runs_the_blas_chosen_for_this_cpu_unless_the_user_chose_one(tmp_path):
    """By default the products of a compiled function run in the library
    measured fastest here (for OpenBLAS's OpenMP build: that build mapped into
    the process, not the pthread build that libopenblas.so.0 names by
    default); with the user's flags, the user's library and no other."""
    code = ("import lib, numpy, theano, theano.tensor as T; x = T.matrix(); "
            "f = theano.function([x], T.dot(x, x)); f(numpy.ones((64, 64), 'float32')); "
            "maps = open('/proc/self/maps').read(); "
            "print('openblas-openmp' in maps, 'openblas-pthread' in maps, 'libblis' in maps)")
    empty_rc = tmp_path / "theanorc"
    empty_rc.write_text("")
    env = {k: v for k, v in os.environ.items() if k != "THEANO_FLAGS"}
    env["THEANORC"] = str(empty_rc)
    mapped = {"-lopenblas": ["True", "False", "False"], "-lblis": ["False", "False", "True"]}
    ours = backend.blas_ldflags()
    cases = [(None, mapped.get(ours, ["False", "True", "False"]))]
    cases.append(("blas.ldflags=-lopenblas", mapped["-lopenblas"]))
    if ctypes.util.find_library("blis"):
        cases.append(("blas.ldflags=-lblis", mapped["-lblis"]))
    for users, expected in cases:
        run_env = dict(env, **({"THEANO_FLAGS": users} if users else {}))
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=run_env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == expected, (users, ours)


def test_blis_threads_default_to_the_usable_cores_unless_the_user_chose():
    env = {}
    backend.configure_threads(env)
    assert env["BLIS_NUM_THREADS"] == str(len(os.sched_getaffinity(0)))
    for users in ({"BLIS_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "3"}):
        env = dict(users)
        backend.configure_threads(env)
        assert env == users


def test_importing_theano_first_works_once_the_hook_is_installed(tmp_path):
    """The start-up hook (what ``make venv`` installs) sets Theano up before a
    script's own ``import theano``, with the project's flags."""
    code = ("import importlib.util as u; "
            "s = u.spec_from_file_location('env', {!r}); m = u.module_from_spec(s); "
            "s.loader.exec_module(m); m.install_import_hook(); "
            "import theano; print(theano.config.floatX, repr(theano.config.blas.ldflags))"
            ).format(os.path.join(ROOT, "lib", "theano_env.py"))
    env = {k: v for k, v in os.environ.items() if k != "THEANO_FLAGS"}
    env["THEANORC"] = str(tmp_path / "none")
    out = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    floatx, ldflags = out.stdout.split()
    assert floatx == "float32" and ldflags == repr(backend.blas_ldflags())


def test_the_pth_line_installs_the_hook_and_survives_a_moved_checkout(tmp_path):
    from lib import theano_env
    site = tmp_path / "site"
    site.mkdir()
    theano_env.write_pth(str(site))
    line = (site / theano_env.PTH_NAME).read_text()
    assert line.startswith("import ") and line.count("\n") == 1  # one executable .pth line
    check = "import sys; print(any(type(f).__name__ == '_BeforeTheano' for f in sys.meta_path))"
    for text, expected in ((line, "True"), (line.replace("theano_env.py", "gone.py"), "False")):
        (site / theano_env.PTH_NAME).write_text(text)
        code = "import site; site.addsitedir({!r}); {}".format(str(site), check)
        # -S: without the site packages (whose own copy of the hook may be installed)
        out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.strip() == expected, out.stderr


def c_module_version(inputs, outputs):
    """The version part of the C-module cache key of the graph inputs -> outputs."""
    import theano
    linker = theano.gof.cc.CLinker().accept(theano.gof.FunctionGraph(inputs, outputs))
    return linker.cmodule_key()[0]


def test_ops_without_properties_keep_their_compiled_code():
    import theano.tensor as T
    x = T.fscalar("x")
    assert T.basic.Alloc.__props__ == ()  # Theano alone calls this key unversioned
    assert c_module_version([x], [T.alloc(x, 3)])


def test_code_without_a_version_is_still_compiled_anew():
    import theano
    import theano.tensor as T

    class Unversioned(theano.Op):
        """Copies its input in C and gives no c_code_cache_version."""
        __props__ = ()

        def make_node(self, x):
            return theano.Apply(self, [x], [x.type()])

        def perform(self, node, inputs, outputs):
            outputs[0][0] = inputs[0].copy()

        def c_code(self, node, name, inputs, outputs, sub):
            return "Py_XDECREF({0}); {0} = {1}; Py_XINCREF({0});".format(outputs[0], inputs[0])

    x = T.fvector("x")
    assert c_module_version([x], [Unversioned()(x)]) == ()


def test_dimshuffle_code_has_one_cache_version_in_every_process():
    """Theano alone versions it by hash() of its C code, which each process randomises."""
    import theano.tensor as T
    code = ("import lib, theano.tensor as T; "
            "print(T.DimShuffle((False, False), (1, 0)).c_code_cache_version())")
    child = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, check=True, env=dict(os.environ, PYTHONHASHSEED="1"))
    here = T.DimShuffle((False, False), (1, 0)).c_code_cache_version()
    assert child.stdout.strip() == str(here)


def test_idle_openmp_threads_spin_briefly_unless_the_user_chose():
    env = {}
    backend.configure_openmp(env)
    assert env == {"GOMP_SPINCOUNT": "10000"}
    for users in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "7"}):
        env = dict(users)
        backend.configure_openmp(env)
        assert env == users


def openmp_runtime_settings(extra_env):
    """The settings that the OpenMP runtime of a fresh ``import lib`` process reports
    (OMP_DISPLAY_ENV=VERBOSE) once a BLAS product has loaded it, as a dict; empty
    when no OpenMP runtime was loaded (a BLAS built without OpenMP)."""
    code = ("import numpy, lib, theano, theano.tensor as T; x = T.fmatrix(); "
            "f = theano.function([x], T.dot(x, x)); f(numpy.ones((8, 8), 'float32'))")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(extra_env, OMP_DISPLAY_ENV="VERBOSE")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    pairs = (line.split("=", 1) for line in out.stderr.splitlines() if " = '" in line)
    return {name.strip(): value.strip().strip("'") for name, value in pairs}


def test_the_openmp_runtime_starts_with_the_short_spin_unless_the_user_chose():
    """Set before the runtime reads it (when the first BLAS-linked module is loaded):
    a process started without the variable has threads that spin 10,000 times, not
    libgomp's 300,000, before they sleep; a user's own value is kept."""
    seen = openmp_runtime_settings({})
    if not seen:
        pytest.skip("this BLAS ({!r}) loads no OpenMP runtime".format(backend.blas_ldflags()))
    assert seen["GOMP_SPINCOUNT"] == "10000"
    users = openmp_runtime_settings({"OMP_WAIT_POLICY": "ACTIVE"})
    assert users["OMP_WAIT_POLICY"] == "ACTIVE" and users["GOMP_SPINCOUNT"] != "10000"
