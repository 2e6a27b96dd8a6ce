"""Shared test helpers: fixture paths and the model built exactly as the original script."""
import json
import os

import numpy
import pytest

import lib  # noqa: F401  (configures Theano)
import theano
import theano.tensor as T

from lib import Model, Softmax, WrapperLayer
from models.pixel_conv import pixelConv
from tests.compiling import CompileOnce

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="session", autouse=True)
def compile_each_graph_once():
    """``theano.function`` compiles each distinct graph once in the session
    (tests.compiling.CompileOnce)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(theano, "function", CompileOnce(theano.function))
        yield


def write_random_mnist(folder, counts, seed=0):
    """Gzipped IDX files of random 28x28 images and labels in ``folder`` (a Path),
    ``counts``: {"train": n, "test": m}; read them with --no-verify."""
    from data import mnist
    rng = numpy.random.RandomState(seed)
    for split, num in counts.items():
        image_name, label_name = mnist.SPLITS[split]
        mnist.write_idx(str(folder / (image_name + ".gz")),
                        rng.randint(0, 256, (num, 28, 28)).astype(numpy.uint8))
        mnist.write_idx(str(folder / (label_name + ".gz")),
                        rng.randint(0, 10, num).astype(numpy.uint8))
    return folder


def fixture_path(name):
    return os.path.join(FIXTURES, name)


def load_json(name):
    with open(fixture_path(name)) as f:
        return json.load(f)


def build_as_original(DIM, NUM_LAYERS, Q_LEVELS, input_dim=1):
    """The model-building lines of the original mnist_gen.py, unchanged (imports aside)."""
    model = Model(name="MNIST.pixelCNN")
    X = T.tensor3('X')
    X_r = T.itensor3('X_r')
    input_layer = WrapperLayer(X.dimshuffle(0, 1, 2, 'x'))
    pixel_CNN = pixelConv(input_layer, input_dim, DIM, name=model.name + ".pxCNN",
                          num_layers=NUM_LAYERS, Q_LEVELS=Q_LEVELS)
    model.add_layer(pixel_CNN)
    output_probab = Softmax(pixel_CNN).output()
    cost = T.nnet.categorical_crossentropy(
        output_probab.reshape((-1, output_probab.shape[output_probab.ndim - 1])),
        X_r.flatten()).mean()
    return model, pixel_CNN, X, X_r, output_probab, cost


@pytest.fixture(scope="session")
def small_fixture():
    """(config json, npz arrays as a dict) of the recorded small model."""
    with numpy.load(fixture_path("mnist_small.npz")) as d:
        arrays = {k: d[k] for k in d.files}
    return load_json("mnist_small.json"), arrays
