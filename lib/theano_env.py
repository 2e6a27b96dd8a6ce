"""Theano's environment, set before Theano is imported (this module never imports it).

``prepare()`` does it, once, and is called from two places:

* ``lib.backend`` (which importing ``lib`` runs first), and
* an import hook that the virtualenv made by ``make venv`` installs at start-up
  (``install_import_hook``, from a ``.pth`` file), so that a script that says
  ``import theano`` before ``import lib`` gets the same set-up.

It

* sets ``floatX=float32``, ``compile.wait=1``, ``openmp=True`` (see
  ``default_flags``) and ``blas.ldflags``, unless the user already chose a
  value in ``THEANO_FLAGS`` or in a ``.theanorc`` file: the user's choice
  always wins. The BLAS is the installed library that ``lib/blas_choice.py``
  measured fastest on this CPU (OpenBLAS's OpenMP build loaded ahead of
  Theano's modules where that is the one, see ``load_openmp_openblas``);
  else none, and Theano falls back to NumPy's C-API BLAS (Theano 1.0.5 on
  NumPy 1.23 fails to import unless ``blas.ldflags`` is set, even empty);
* sets ``BLIS_NUM_THREADS`` to the number of usable cores unless the user
  set it or ``OMP_NUM_THREADS``;
* sets ``GOMP_SPINCOUNT=10000`` unless the user set it or ``OMP_WAIT_POLICY``
  (see ``configure_openmp``): idle OpenMP threads spin briefly, then sleep,
  so two of our processes can share the cores. The OpenMP runtime (libgomp,
  which BLIS and OpenBLAS's OpenMP build use) reads it once, when it is
  loaded: with the BLAS, always after this has run;
* makes ``theano.scan`` use its Python loop on Python >= 3.11 (see
  ``_use_python_scan_loop``).
"""
import configparser
import ctypes.util
import importlib.util
import os
import shlex
import sys
import sysconfig
import warnings

_DEFAULTS_SECTIONS = {"floatX": ("global", "floatX"), "blas.ldflags": ("blas", "ldflags"),
                      "compile.wait": ("compile", "wait"), "openmp": ("global", "openmp")}


def _flag_pairs(flags):
    """(name, value) pairs of a THEANO_FLAGS string, in order (Theano's splitting)."""
    splitter = shlex.shlex(flags, posix=True)
    splitter.whitespace = ","
    splitter.whitespace_split = True
    return [tuple(part.strip() for part in pair.split("=", 1)) for pair in splitter
            if "=" in pair]


def _user_flag_names(flags):
    """Names set in a THEANO_FLAGS string."""
    return {name for name, _ in _flag_pairs(flags)}


def flags_ldflags(flags):
    """The ``blas.ldflags`` a THEANO_FLAGS string sets (the last one wins), or None."""
    values = [value for name, value in _flag_pairs(flags) if name == "blas.ldflags"]
    return values[-1] if values else None


def _theanorc_has(section, option):
    """True when one of the user's .theanorc files sets ``[section] option``."""
    paths = [os.path.expanduser(p) for p in os.getenv("THEANORC", "~/.theanorc").split(os.pathsep)]
    parser = configparser.RawConfigParser()
    try:
        parser.read(paths)
    except configparser.Error:
        return False
    return parser.has_option(section, option)


# Debian's OpenMP build of OpenBLAS (package libopenblas0-openmp), and the
# name the linker needs (package libopenblas-dev). Debian points
# ``libopenblas.so.0`` at the pthread build by default, whose own spinning
# threads and the OpenMP threads of our compiled ops take turns badly.
OPENBLAS_OPENMP = "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0"
OPENBLAS_LINK = "/usr/lib/x86_64-linux-gnu/libopenblas.so"

_loaded = []  # the preloaded OpenMP build, kept referenced


def preference_ldflags(find_library=ctypes.util.find_library, exists=os.path.isfile):
    """The choice where nothing could be measured (no C compiler, one library):
    OpenBLAS where its OpenMP build and the link-time library are installed,
    else BLIS (Debian ``libblis-dev``), else OpenBLAS, else empty (NumPy's
    C-API BLAS)."""
    if exists(OPENBLAS_OPENMP) and exists(OPENBLAS_LINK):
        return "-lopenblas"
    for name in ("blis", "openblas"):
        if find_library(name):
            return "-l" + name
    return ""


def blas_choice():
    """``lib/blas_choice.py``, loaded by its path: this file is itself loaded by
    path from the start-up hook, when ``lib`` may not be importable."""
    name = "_pixelcnn_blas_choice"
    if name not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "blas_choice.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


_chosen = []  # this process's answer of blas_ldflags()


def blas_ldflags():
    """The project's ``blas.ldflags`` on this CPU: the library ``lib/blas_choice.py``
    measured fastest here (measuring it now, a few seconds, the first time on
    this CPU), else :func:`preference_ldflags`. Asked once a process."""
    if not _chosen:
        def say(message):
            print(message, file=sys.stderr)
        try:
            _chosen.append(blas_choice().choose(preference_ldflags, log=say))
        except Exception as err:  # never let the measurement stop a script
            say("blas probe failed ({}); using the default order".format(err))
            _chosen.append(preference_ldflags())
    return _chosen[0]


def load_openmp_openblas(ldflags, exists=os.path.isfile, load=ctypes.CDLL):
    """Load OpenBLAS's OpenMP build now, before any Theano module loads a BLAS,
    when ``ldflags`` is exactly ``-lopenblas`` (ours, or the same value in the
    user's THEANO_FLAGS, which is also how a child process sees ours): the
    dynamic loader then hands every module that needs ``libopenblas.so.0``
    this copy, matched by its soname, instead of the pthread build. Returns
    True when it did. A user who wants the pthread build spells the flags
    any other way (``-L/usr/lib/x86_64-linux-gnu/openblas-pthread
    -lopenblas``); a ``.theanorc`` value is left alone. Must run after the
    OpenMP variables are set, which the runtime reads when this loads it."""
    if ldflags.split() != ["-lopenblas"] or not exists(OPENBLAS_OPENMP):
        return False
    try:
        _loaded.append(load(OPENBLAS_OPENMP))
    except OSError as err:
        warnings.warn("could not load OpenBLAS's OpenMP build ({}); the default "
                      "libopenblas.so.0 will be used".format(err))
        return False
    return True


def default_flags():
    """The flags this project adds, as a dict name -> a function giving the value
    (the BLAS is measured only where it is needed). ``compile.wait=1``: a
    process that finds Theano's compile cache locked by another one (a
    training run beside ``generate.py`` or the tests) retries after 1-2 s
    instead of Theano's 5-10 s. ``openmp=True``: Theano's elementwise ops on
    large arrays (over 200,000 elements: the activations of a training step)
    use every core; the leaky ReLUs and their gradients were ~15% of a
    training step on one core."""
    return {"floatX": lambda: "float32", "blas.ldflags": blas_ldflags,
            "compile.wait": lambda: "1", "openmp": lambda: "True"}


def configure_threads(environ=os.environ):
    """Let BLIS use every core this process may run on (BLIS runs one thread
    unless told), unless the user set BLIS_NUM_THREADS or OMP_NUM_THREADS."""
    if "BLIS_NUM_THREADS" not in environ and "OMP_NUM_THREADS" not in environ:
        environ["BLIS_NUM_THREADS"] = str(len(os.sched_getaffinity(0)))


# Spins of an idle OpenMP thread before it sleeps (libgomp's default: 300,000).
SPIN_COUNT = "10000"


def configure_openmp(environ=os.environ):
    """Make idle OpenMP threads spin ``SPIN_COUNT`` times before they sleep, unless
    the user chose a wait policy (``OMP_WAIT_POLICY``) or a spin count
    (``GOMP_SPINCOUNT``).

    By default libgomp's threads spin 300,000 times after each parallel region
    (the BLAS runs one per product). Alone, that only burns idle cycles; with a
    second of our processes on the same cores, each one's spinning threads
    take the cores the other's working threads need. Sleeping at once
    (``OMP_WAIT_POLICY=PASSIVE``) shares the cores but doubles a lone step of
    the PixelRNNs, whose ops open many short parallel regions (the wake-up
    costs more than the region): a short spin keeps both. Figures in
    benchmarks/README.md. Must run before the OpenMP runtime is loaded, which
    reads it only then.
    """
    if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
        environ["GOMP_SPINCOUNT"] = SPIN_COUNT


def configure_environment(environ=os.environ):
    """Put our defaults in front of the user's THEANO_FLAGS (theirs win)."""
    user_flags = environ.get("THEANO_FLAGS", "")
    taken = _user_flag_names(user_flags)
    ours = [
        "{}={}".format(name, value())
        for name, value in default_flags().items()
        if name not in taken and not _theanorc_has(*_DEFAULTS_SECTIONS[name])
    ]
    # Theano lets later entries override earlier ones, so the user's go last.
    environ["THEANO_FLAGS"] = ",".join(ours + ([user_flags] if user_flags else []))


SCAN_CYTHON_MODULE = "theano.scan_module.scan_perform_ext"


def _use_python_scan_loop():
    """Make ``theano.scan`` run its Python loop over steps.

    Theano 1.0.5 ships its Cython scan loop as pre-generated C that does not
    compile on Python 3.11 (changed internal headers), and it does not catch
    that compile error. It does fall back to the Python loop when importing
    the module raises ImportError, which a ``None`` in ``sys.modules`` causes.
    The step functions themselves are still compiled C.
    """
    if sys.version_info >= (3, 11) and SCAN_CYTHON_MODULE not in sys.modules:
        sys.modules[SCAN_CYTHON_MODULE] = None


def prepare():
    """Set Theano's environment (see the module docstring); harmless to repeat.
    Once Theano is imported the flags are left alone and no BLAS is preloaded
    (a process that imports Theano before ``lib`` without the import hook of
    ``make venv`` runs Debian's default OpenBLAS build)."""
    before_theano = "theano" not in sys.modules
    configure_threads()
    configure_openmp()  # before the BLAS probe, which runs in this environment
    if before_theano:
        configure_environment()
        load_openmp_openblas(flags_ldflags(os.environ.get("THEANO_FLAGS", "")) or "")
    _use_python_scan_loop()


class _BeforeTheano(object):
    """A ``sys.meta_path`` finder that runs :func:`prepare` when ``theano`` is first
    imported, then steps aside (it never finds a module itself)."""

    def find_spec(self, name, path=None, target=None):
        if name == "theano":
            uninstall_import_hook()
            prepare()
        return None


def install_import_hook():
    """Run :func:`prepare` just before the process first imports Theano."""
    if "theano" not in sys.modules and not any(isinstance(f, _BeforeTheano)
                                               for f in sys.meta_path):
        sys.meta_path.insert(0, _BeforeTheano())


def uninstall_import_hook():
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _BeforeTheano)]


PTH_NAME = "pixelcnn_theano_env.pth"


def pth_line(path=None):
    """The start-up line (a ``.pth`` file's) that loads this file and installs the hook;
    it does nothing when the file is gone (a moved checkout)."""
    path = os.path.abspath(path or __file__)
    return ("import importlib.util as _u, os as _os; _f = {!r}; "
            "_s = _os.path.isfile(_f) and _u.spec_from_file_location('_pixelcnn_theano_env', _f); "
            "_m = _s and _u.module_from_spec(_s); "
            "_s and (_s.loader.exec_module(_m) or _m.install_import_hook())\n").format(path)


def write_pth(site_dir=None):
    """Install the import hook in this interpreter's site-packages (``make venv`` does)."""
    site_dir = site_dir or sysconfig.get_paths()["purelib"]
    target = os.path.join(site_dir, PTH_NAME)
    with open(target, "w") as f:
        f.write(pth_line())
    return target


def show_blas(probe_again=False):
    """``python lib/theano_env.py blas [--probe]``: the BLAS chosen for this CPU and
    the figures it came from (measuring first where nothing is recorded, or with
    ``--probe``), and whether the user's flags override it."""
    configure_threads()
    configure_openmp()
    choice = blas_choice()
    choice.choose(preference_ldflags, force=probe_again,
                  log=lambda message: print(message, file=sys.stderr))
    for line in choice.describe():
        print(line)
    users = flags_ldflags(os.environ.get("THEANO_FLAGS", ""))
    if users is not None:
        print("overridden here: THEANO_FLAGS sets blas.ldflags={}".format(users))
    elif _theanorc_has("blas", "ldflags"):
        print("overridden here: a .theanorc file sets [blas] ldflags")


USAGE = """usage: python lib/theano_env.py COMMAND
  install-hook    write {} into this interpreter's site-packages (make venv does)
  blas            show the BLAS chosen for this CPU and the timings it came from
  blas --probe    time the installed BLAS libraries again and record the winner""".format(PTH_NAME)

if __name__ == "__main__":
    command = sys.argv[1:]
    if command == ["install-hook"]:
        print("wrote", write_pth())
    elif command in (["blas"], ["blas", "--probe"]):
        show_blas(probe_again=command == ["blas", "--probe"])
    else:
        sys.exit(USAGE)
