"""The shipped checkpoints in pretrained/: each loads, matches the config its
training run recorded, and draws images of the right shape. (How good they are
is what evaluate.py measures; pretrained/README.md has its figures.)"""
import os
import re

import numpy
import pytest

import evaluate
import generate
import sampling
from lib.checkpoint import read_checkpoint
from models import build as builder
from training import run_folder

PRETRAINED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "pretrained")
# checkpoint -> (the config the issue asks for, the mode generate.py uses it for; None:
# no mode picks it, it is given with --checkpoint)
SHIPPED = {
    "pixelconv.npz": ({"model": "pixelconv", "conditional": "none", "num_layers": 10,
                       "dim": 32, "q_levels": 4, "input_dim": 1}, []),
    "gated_class.npz": ({"model": "gated", "conditional": "class"}, ["--label", "3"]),
    "gated_embedding.npz": ({"model": "gated", "conditional": "embedding"},
                            ["--like-test-index", "0"]),
    # the PixelRNN paper's binarized-MNIST models (trained in pieces)
    "binarized_masked.npz": ({"model": "masked", "q_levels": 2}, None),
    "binarized_rowlstm.npz": ({"model": "rowlstm", "q_levels": 2}, None),
    "binarized_diagbilstm.npz": ({"model": "diagbilstm", "num_layers": 7, "dim": 32,
                                  "q_levels": 2}, None),
    "binarized_diagbilstm_1layer.npz": ({"model": "diagbilstm", "num_layers": 1, "dim": 64,
                                         "q_levels": 2}, None),
}


def shipped(name):
    path = os.path.join(PRETRAINED, name)
    if not os.path.isfile(path):
        pytest.skip("{} is not shipped yet (trained in pieces)".format(name))
    return path


def recorded_model(run_dir):
    """The model description of the run whose config.json is in ``run_dir``
    (read as ``--resume`` reads it)."""
    run_config, _ = run_folder.saved_config(run_dir, {})
    return run_folder.model_description(run_config)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_checkpoint_matches_its_runs_config_and_loads(name):
    path = shipped(name)
    config, weights = builder.read_network_checkpoint(path)
    expected, mode = SHIPPED[name]
    assert {k: config[k] for k in expected} == expected
    run_dir = os.path.join(PRETRAINED, name[:-len(".npz")] + "_run")
    assert config == recorded_model(run_dir)
    # the state beside it resumes (it is readable and holds a whole network)
    assert run_folder.check_state_file(run_dir) >= 1
    state_config, state_weights = builder.read_network_checkpoint(
        os.path.join(run_dir, run_folder.STATE_FILE))
    assert state_config == config and sorted(state_weights) == sorted(weights)
    # the data it was trained on (checkpoints written before it was recorded: MNIST)
    _, meta = read_checkpoint(path)
    assert meta.get("dataset", "mnist") == (
        "binarized-mnist" if name.startswith("binarized_") else "mnist")
    # generate.py picks this file for its mode
    if mode is not None:
        args = generate.parse_args(mode + ["--out", "x.png"])
        assert generate.default_checkpoint(args) == path


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_checkpoint_draws_images(name):
    path = shipped(name)
    config, weights = builder.read_network_checkpoint(path)
    net = builder.build(config)
    net.all_params.set_param_values(weights, source=path)
    condition = None
    if config["conditional"] == "class":
        condition = builder.one_hot([3, 7])
    elif config["conditional"] == "embedding":
        condition = numpy.zeros((2, config["embed_dim"]), dtype=numpy.float32)
    bins = sampling.sample(net, 2, 8, 8, seed=0, progress=False, condition=condition)
    assert bins.shape == (2, 8, 8, 1) and bins.dtype == numpy.uint8
    assert bins.max() < config["q_levels"]


def test_classifier_loads_and_reads_four_levels():
    path = shipped("classifier.npz")
    classify = evaluate.load_classifier(path, 4)
    blank = numpy.zeros((3, 28, 28, 1), dtype=numpy.float32)
    labels = classify(blank)
    assert labels.shape == (3,) and set(labels) <= set(range(10))
    with pytest.raises(evaluate.UsageError, match="grey levels"):
        evaluate.load_classifier(path, 8)


RUN_DIRS = sorted(d for d in os.listdir(PRETRAINED) if d.endswith("_run")) \
    if os.path.isdir(PRETRAINED) else []
RUN_FILES = {"config.json", "history.json", run_folder.STATE_FILE}
CHECKPOINT_LIMIT, STATE_LIMIT, OTHER_LIMIT = 3000000, 8000000, 1000000  # bytes


def test_one_training_state_per_shipped_model():
    """A run folder belongs to a model of SHIPPED (whose checkpoint may still be in
    training); abandoned lines live in git's history, not here."""
    assert RUN_DIRS, "no training states found in pretrained/"
    assert set(RUN_DIRS) <= {name[:-len(".npz")] + "_run" for name in SHIPPED}
    for name in SHIPPED:
        if os.path.isfile(os.path.join(PRETRAINED, name)):
            assert name[:-len(".npz")] + "_run" in RUN_DIRS, name


@pytest.mark.parametrize("run", RUN_DIRS)
def test_every_run_folder_resumes_and_fits_the_size_limit(run):
    """Each training state in pretrained/ is whole, describes the model its
    config.json records, and stays under the 8 MB a state may take."""
    run_dir = os.path.join(PRETRAINED, run)
    assert set(os.listdir(run_dir)) == RUN_FILES
    assert run_folder.check_state_file(run_dir) >= 1
    state_config, _ = builder.read_network_checkpoint(
        os.path.join(run_dir, run_folder.STATE_FILE))
    assert state_config == recorded_model(run_dir)
    for name in os.listdir(run_dir):
        limit = STATE_LIMIT if name == run_folder.STATE_FILE else OTHER_LIMIT
        assert os.path.getsize(os.path.join(run_dir, name)) < limit, name


def test_shipped_checkpoints_fit_the_size_limit():
    files = [n for n in os.listdir(PRETRAINED) if os.path.isfile(os.path.join(PRETRAINED, n))]
    assert set(SHIPPED) | {"classifier.npz"} >= {n for n in files if n.endswith(".npz")}
    for name in files:
        limit = CHECKPOINT_LIMIT if name.endswith(".npz") else OTHER_LIMIT
        assert os.path.getsize(os.path.join(PRETRAINED, name)) < limit, name


ROOT = os.path.dirname(PRETRAINED)
READMES = ["README.md", os.path.join("pretrained", "README.md"),
           os.path.join("benchmarks", "README.md")]


def heading_anchors(path):
    """The anchors GitHub gives the Markdown headings of ``path``: lower case,
    punctuation dropped, spaces to hyphens."""
    with open(path, encoding="utf-8") as f:
        headings = re.findall(r"^#+ (.+)$", f.read(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("readme", READMES)
def test_readme_links_and_pictures_exist(readme):
    """Every relative link or picture in the READMEs names a file that exists, and
    every link to a heading a heading of that page."""
    path = os.path.join(ROOT, readme)
    with open(path, encoding="utf-8") as f:
        targets = re.findall(r"\]\(([^)\s]+)\)", f.read())
    assert targets, readme
    for target in targets:
        if target.startswith(("http://", "https://")):
            continue
        name, _, anchor = target.partition("#")
        linked = os.path.normpath(os.path.join(os.path.dirname(path), name)) if name else path
        assert os.path.exists(linked), target
        if anchor:
            assert anchor in heading_anchors(linked), target


def test_readme_names_only_shipped_files():
    """The paths under pretrained/ that README.md names (placeholders in capitals
    aside) are in the tree."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        named = set(re.findall(r"pretrained/[\w.]+", f.read()))
    named = {p for p in named if not re.search(r"[A-Z]{3}", p)}
    assert "pretrained/pixelconv.npz" in named
    for name in named:
        assert os.path.exists(os.path.join(ROOT, name)), name
