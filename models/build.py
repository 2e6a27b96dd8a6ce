"""Build a network from a small config dict, and read that config back off a checkpoint.

A config is ``{"model": "pixelconv", "input_dim", "dim", "num_layers", "q_levels"}``.
Parameter names follow the original MNIST script (``MNIST.pixelCNN.pxCNN.<layer>``)
so that its checkpoints load.
"""
import re

import theano.tensor as T

from lib import Model, WrapperLayer
from models.pixel_conv import pixelConv

MODEL_NAME = "MNIST.pixelCNN"
PREFIX = MODEL_NAME + ".pxCNN"


class Network(object):
    """A built model: ``X`` (batch, height, width, input_dim) float32 input and
    ``logits`` (batch, height, width, input_dim, q_levels)."""

    def __init__(self, config, model, X, layer):
        self.config, self.model, self.X, self.layer = config, model, X, layer
        self.logits = layer.output()


def build(config):
    """Network for ``config``; weights come from the original initialiser."""
    if config.get("model", "pixelconv") != "pixelconv":
        raise ValueError("unknown model {!r}".format(config["model"]))
    model = Model(name=MODEL_NAME)
    X = T.tensor4("X")
    layer = pixelConv(WrapperLayer(X), config["input_dim"], config["dim"],
                      Q_LEVELS=config["q_levels"], num_layers=config["num_layers"],
                      name=PREFIX)
    model.add_layer(layer)
    return Network(dict(config, model="pixelconv"), model, X, layer)


def infer_config(arrays):
    """Config of the pixelConv whose parameters are ``{name: ndarray}``."""
    layers = [int(m.group(1)) for m in
              (re.match(r".*\.vstack(\d+)\.filter$", n) for n in arrays) if m]
    first = [n for n in arrays if n.endswith(".vstack1.filter")]
    last = [n for n in arrays if n.endswith(".combined_stack2.filter")]
    if not layers or len(first) != 1 or len(last) != 1:
        raise ValueError("these parameters are not a pixelConv's (no unique vstack1 / "
                         "combined_stack2 filter)")
    dim, input_dim = arrays[first[0]].shape[:2]
    out_dim = arrays[last[0]].shape[0]
    if out_dim % input_dim:
        raise ValueError("combined_stack2 has {} outputs, not a multiple of input_dim {}".format(
            out_dim, input_dim))
    return {"model": "pixelconv", "input_dim": int(input_dim), "dim": int(dim),
            "num_layers": max(layers) + 1,
            "q_levels": int(out_dim // input_dim)}


def rename_to_prefix(arrays):
    """Map a checkpoint's names onto ``PREFIX`` (original runs used other model names)."""
    first = [n for n in arrays if n.endswith(".vstack1.filter")][0]
    prefix = first[:-len(".vstack1.filter")]
    return {PREFIX + n[len(prefix):]: v for n, v in arrays.items() if n.startswith(prefix)} \
        if prefix != PREFIX else dict(arrays)
