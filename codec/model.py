"""The model behind a file: its checkpoint, read without running code, and its hash.

A file records the SHA-256 of the checkpoint's bytes and the model's settings;
the decoder refuses another checkpoint. Embedding-conditioned models are
refused: their condition is f(x) of the very image coded, which the decoder
does not have.
"""
import hashlib
import os
from collections import namedtuple

from lib.checkpoint import CheckpointError
from models import build as builder
from sampling import CACHED_EVALUATORS

Model = namedtuple("Model", "path sha256 config weights")


class ModelError(ValueError):
    """A checkpoint the codec cannot use (exit code 2)."""


def sha256_of(path):
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(path):
    """The Model of a checkpoint (ours, a training state, or the original's pickle);
    ModelError saying what is wrong."""
    try:
        config, weights = builder.read_network_checkpoint(path)
    except (CheckpointError, ValueError) as err:
        raise ModelError(str(err))
    if config.get("model") not in CACHED_EVALUATORS:
        raise ModelError("{} holds a {!r} model, not one of the generative models ({}); "
                         "pass a PixelCNN or PixelRNN checkpoint, e.g. "
                         "pretrained/binarized_diagbilstm.npz".format(
                             path, config.get("model"), ", ".join(sorted(CACHED_EVALUATORS))))
    model = Model(path, sha256_of(path), config, weights)
    if config.get("conditional", "none") == "embedding":
        raise ModelError("{} is conditioned on the embedding f(x) of the image itself, which "
                         "a decoder does not have (the file would have to carry it); use a "
                         "class-conditional or an unconditional model".format(path))
    evaluator(model)   # fails here, not in the middle of the images, if weights are missing
    return model


def conditional(model):
    """True for a class-conditional model (its files code each image's label)."""
    return model.config.get("conditional", "none") == "class"


def evaluator(model):
    """A fresh cached evaluator of the model (sampling.CACHED_EVALUATORS)."""
    c = model.config
    try:
        return CACHED_EVALUATORS[c["model"]](model.weights, builder.PREFIX, c["num_layers"],
                                             c["input_dim"], c["q_levels"])
    except KeyError as err:
        raise ModelError("{} does not hold the parameters of the {} model it describes "
                         "(missing {}); it is damaged or of another model".format(
                             model.path, c.get("model"), err))
    except (ValueError, IndexError) as err:
        raise ModelError("{}: its parameters do not fit the {} model it describes "
                         "({})".format(model.path, c.get("model"), err))


def condition_map_size(model):
    """(rows, columns) a model's condition map covers, or None."""
    shape = builder.condition_map_shape(model.config)
    return None if shape is None else shape[:2]


def description(model, project):
    """The header's record of the model: the checkpoint's path (relative to the
    ``project`` folder when it lies in it), its hash and the settings that build
    the model from it."""
    path = os.path.abspath(model.path)
    inside = path.startswith(os.path.join(os.path.abspath(project), ""))
    return {"path": os.path.relpath(path, project) if inside else model.path,
            "sha256": model.sha256,
            "config": {k: v for k, v in sorted(model.config.items())}}
