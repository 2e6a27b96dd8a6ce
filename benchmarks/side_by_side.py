"""Benchmark: a piece of our work alone, then with a second process of ours beside it.

The work timed is ``evaluate.py``'s NLL pass (the compiled per-image NLL of a
checkpoint's fast graph, in batches) over ``--images`` images; the images are
random grey levels from a fixed seed, since the cost does not depend on what
they show, so no data folder is needed. It runs in a child process, once
alone and once while a second child trains the same model (clipped Adam on
random batches of ``--neighbour-batch`` images, step after step, as
``train_mnist.py`` does). Compiling is never timed: each child compiles, then
times its work; the neighbour is started, and compiles, before the timed pass
begins. Last line:

    alone_s=<s> beside_s=<s> ratio=<beside / alone> openmp=<ours|libgomp|passive>

``--openmp`` chooses the children's OpenMP setting: ``ours`` (the project's
configuration, ``lib.theano_env``: idle threads spin ``SPIN_COUNT`` = 10,000
times, then sleep), ``libgomp`` (the runtime's own default, spinning 300,000
times: passed as ``GOMP_SPINCOUNT=300000``, which the project then leaves
alone) or ``passive`` (``OMP_WAIT_POLICY=PASSIVE``: idle threads sleep at
once), so that they can be compared. Any ``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT`` of the caller is not passed on.

``--step-check`` instead times the median training step of a lone process
under ours and libgomp's setting (does the shorter spin slow a single run?).
Last line:

    ours_step_s=<s> libgomp_step_s=<s> ratio=<ours / libgomp>

Run: .venv/bin/python benchmarks/side_by_side.py [--images 2000] [--openmp libgomp]
     .venv/bin/python benchmarks/side_by_side.py --step-check [--steps 10]

A checkpoint that is not a PixelCNN of ours (or a BLAS library Theano cannot
link) stops the first child before it compiles: one line, exit 2.
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
LIBGOMP_DEFAULT_SPINCOUNT = "300000"  # libgomp's spins when no wait policy is set
READY = "ready"
EXIT_BAD_INPUT = 2
NEIGHBOUR_MAX_S = 3600  # a neighbour whose parent vanished stops by itself


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Time evaluate.py's NLL pass alone and beside a training process of "
                    "ours; or (--step-check) a lone training step with and without the "
                    "project's OpenMP setting.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", default=os.path.join(ROOT, "pretrained", "pixelconv.npz"),
                   help="model whose NLL pass and training step are timed")
    p.add_argument("--images", type=int, default=2000, help="images of the timed NLL pass")
    p.add_argument("--batch-size", type=int, default=100, help="images per NLL batch")
    p.add_argument("--neighbour-batch", type=int, default=100,
                   help="images per training step (the neighbour's and --step-check's)")
    p.add_argument("--openmp", choices=["ours", "libgomp", "passive"], default="ours",
                   help="OpenMP setting of both children: the project's (idle threads "
                        "spin briefly, then sleep), libgomp's default (they spin 30x "
                        "longer) or OMP_WAIT_POLICY=PASSIVE (they sleep at once)")
    p.add_argument("--step-check", action="store_true",
                   help="time a lone training step under both settings instead")
    p.add_argument("--steps", type=int, default=10,
                   help="--step-check: timed steps per setting (median reported)")
    p.add_argument("--role", choices=["nll", "neighbour", "step"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("images", "batch_size", "neighbour_batch", "steps"):
        if getattr(args, name) < 1:
            p.error("--{} must be at least 1".format(name.replace("_", "-")))
    if not os.path.isfile(args.checkpoint):
        p.error("--checkpoint {} is not a file; name a checkpoint of ours".format(
            args.checkpoint))
    return args


# ----- the children ---------------------------------------------------------------

def random_batch(net, num, seed):
    """(inputs (num, 28, 28, C) float32, targets (num, 28, 28, C) int32, condition or
    None) of random grey levels (and labels) for ``net``."""
    import numpy

    import evaluate
    import quantize
    rng = numpy.random.RandomState(seed)
    q = net.config["q_levels"]
    targets = rng.randint(0, q, (num, 28, 28, net.config["input_dim"])).astype("int32")
    inputs = quantize.targets_to_inputs(targets, q).astype("float32")
    labels = rng.randint(0, 10, num)
    return inputs, targets, evaluate.conditions(net, inputs, labels)


def compile_step(net):
    """The fast graph's clipped-Adam training step: (inputs, targets[, condition]) -> cost."""
    import theano.tensor as T

    from lib.training import compile_train_step, nll_per_subpixel
    X_r = T.itensor4("X_r")
    fn, _ = compile_train_step([net.X, X_r] + net.inputs[1:], nll_per_subpixel(net.logits, X_r),
                               net.model.get_params(), 1e-4, 1.0, keep_buffers=True)
    return lambda inputs, targets, condition: fn(
        inputs, targets, *([] if condition is None else [condition]))


def run_nll(args):
    """Child: compile, then time one NLL pass over --images images; prints pass_s=."""
    import evaluate
    net = evaluate.load_network(args.checkpoint)
    inputs, targets, condition = random_batch(net, args.images, seed=1)
    fn = evaluate.compile_nll(net)
    evaluate.nll_per_image(fn, inputs[:1], targets[:1], None if condition is None
                           else condition[:1], 1, progress=False)  # first call allocates
    start = time.perf_counter()
    evaluate.nll_per_image(fn, inputs, targets, condition, args.batch_size, progress=False)
    print("pass_s={:.4f}".format(time.perf_counter() - start), flush=True)


def run_neighbour(args):
    """Child: compile a training step, say ``ready``, then step until stopped (or its
    parent is gone, or NEIGHBOUR_MAX_S passed)."""
    import evaluate
    parent, deadline = os.getppid(), time.time() + NEIGHBOUR_MAX_S
    net = evaluate.load_network(args.checkpoint)
    step = compile_step(net)
    batch = random_batch(net, args.neighbour_batch, seed=2)
    step(*batch)
    print(READY, flush=True)
    while os.getppid() == parent and time.time() < deadline:
        step(*batch)


def run_step(args):
    """Child: compile a training step, then the median of --steps steps; prints step_s=."""
    import evaluate
    net = evaluate.load_network(args.checkpoint)
    step = compile_step(net)
    batch = random_batch(net, args.neighbour_batch, seed=2)
    step(*batch)  # the first call allocates the buffers it keeps
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step(*batch)
        times.append(time.perf_counter() - start)
    print("step_s={:.4f}".format(sorted(times)[len(times) // 2]), flush=True)


def run_child(role, args):
    """Run a child's ``role``; a checkpoint that is not ours or a BLAS that does not
    link ends it with one line and EXIT_BAD_INPUT, before anything is compiled."""
    import evaluate
    from lib import backend
    try:
        if backend.blas_problem():
            raise evaluate.UsageError(backend.blas_problem())
        role(args)
    except evaluate.UsageError as err:
        print("error: {}".format(err), file=sys.stderr, flush=True)
        sys.exit(EXIT_BAD_INPUT)


# ----- the parent -----------------------------------------------------------------

def child_env(openmp, environ=None):
    """The environment of a child: the caller's, without its OpenMP wait settings, and
    for ``libgomp`` with libgomp's default spin count, for ``passive`` with
    ``OMP_WAIT_POLICY=PASSIVE`` (the project leaves either alone)."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items()
           if k not in OPENMP_VARIABLES}
    if openmp == "libgomp":
        env["GOMP_SPINCOUNT"] = LIBGOMP_DEFAULT_SPINCOUNT
    elif openmp == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def child_command(args, role):
    return [sys.executable, os.path.abspath(__file__), "--role", role,
            "--checkpoint", args.checkpoint, "--images", str(args.images),
            "--batch-size", str(args.batch_size), "--neighbour-batch", str(args.neighbour_batch),
            "--steps", str(args.steps)]


def timed_child(args, role, openmp, key):
    """Run a child to the end and return the float it prints as ``key=``."""
    out = subprocess.run(child_command(args, role), env=child_env(openmp), cwd=ROOT,
                         stdout=subprocess.PIPE, text=True)
    if out.returncode == EXIT_BAD_INPUT:
        sys.exit(EXIT_BAD_INPUT)  # the child said why, in one line
    if out.returncode != 0:
        sys.exit("the {} child failed (exit {}); its error is above".format(role, out.returncode))
    return float(out.stdout.split(key + "=")[-1].split()[0])


def start_neighbour(args):
    """Start the training neighbour and wait until it is stepping."""
    proc = subprocess.Popen(child_command(args, "neighbour"), env=child_env(args.openmp),
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != READY:
        proc.wait()
        if proc.returncode == EXIT_BAD_INPUT:
            sys.exit(EXIT_BAD_INPUT)
        sys.exit("the training neighbour failed (exit {}); its error is above".format(
            proc.returncode))
    return proc


def describe_children(openmp):
    """One line: the children's OpenMP and thread settings."""
    env = child_env(openmp)
    return "children: openmp={} ({}) OMP_NUM_THREADS={} BLIS_NUM_THREADS={}".format(
        openmp, "GOMP_SPINCOUNT=" + env["GOMP_SPINCOUNT"] if "GOMP_SPINCOUNT" in env
        else "OMP_WAIT_POLICY=PASSIVE" if "OMP_WAIT_POLICY" in env
        else "the project sets GOMP_SPINCOUNT=10000", env.get("OMP_NUM_THREADS", "unset"),
        env.get("BLIS_NUM_THREADS", "unset (the project sets the usable cores)"))


def side_by_side(args):
    print(describe_children(args.openmp), flush=True)
    alone = timed_child(args, "nll", args.openmp, "pass_s")
    print("alone: {:.2f} s for the NLL pass over {} images".format(alone, args.images),
          flush=True)
    neighbour = start_neighbour(args)
    try:
        beside = timed_child(args, "nll", args.openmp, "pass_s")
    finally:
        neighbour.terminate()
        neighbour.wait()
    print("beside a training process: {:.2f} s".format(beside), flush=True)
    print("alone_s={:.4f} beside_s={:.4f} ratio={:.2f} openmp={}".format(
        alone, beside, beside / alone, args.openmp))


def step_check(args):
    for openmp in ("ours", "libgomp"):
        print(describe_children(openmp), flush=True)
    ours = timed_child(args, "step", "ours", "step_s")
    print("lone training step, project's setting: {:.3f} s".format(ours), flush=True)
    default = timed_child(args, "step", "libgomp", "step_s")
    print("lone training step, libgomp's default: {:.3f} s".format(default), flush=True)
    print("ours_step_s={:.4f} libgomp_step_s={:.4f} ratio={:.3f}".format(
        ours, default, ours / default))


def main(argv=None):
    args = parse_args(argv)
    roles = {"nll": run_nll, "neighbour": run_neighbour, "step": run_step}
    if args.role:
        run_child(roles[args.role], args)
    elif args.step_check:
        step_check(args)
    else:
        side_by_side(args)


if __name__ == "__main__":
    main()
