"""Build any of the project's networks from a small config dict.

A config is ``{"model", "input_dim", "dim", "num_layers", "q_levels"}`` plus,
for the gated model, ``"conditional": "none" | "class" | "embedding"`` (with
``"embed_dim"``, ``"encoder_dim"``, ``"encoder_convs"``: the model then carries
a conv encoder f, models/encoder.py, and is conditioned on f(image)), and
optionally ``"condition_map": K`` (a per-position bias from the condition,
models/gated_pixel_cnn.py). Models:

    pixelconv   the faithful pixelConv (models/pixel_conv.py)
    gated       gated stacks, optionally class-conditional (models/gated_pixel_cnn.py)
    masked      masked-convolution PixelCNN, with its blind spot (models/masked_pixel_cnn.py)
    rowlstm     PixelRNN with Row LSTM layers (models/pixel_rnn.py)
    diagbilstm  PixelRNN with Diagonal BiLSTM layers (models/pixel_rnn.py)

Parameter names start with ``MNIST.pixelCNN.pxCNN`` as in the original MNIST
script, so its checkpoints load. Our checkpoints store the config beside the
weights; for the original's, :func:`infer_config` reads it off the shapes.
"""
import re

import numpy
import theano
import theano.tensor as T

from lib import Model, WrapperLayer
from lib.checkpoint import RECORD_KEYS, CheckpointError, read_checkpoint
from models import gated_pixel_cnn, masked_pixel_cnn, pixel_conv, pixel_rnn
from models.pixel_conv import pixelConv

MODEL_NAME = "MNIST.pixelCNN"
PREFIX = MODEL_NAME + ".pxCNN"
MODELS = ("pixelconv", "gated", "masked", "rowlstm", "diagbilstm")
CONDITIONS = ("none", "class", "embedding")
NUM_CLASSES = 10
DEFAULT_EMBED_DIM = 16
# The encoder's width and depth in configs that do not name them (runs saved
# before these settings existed used these values).
ENCODER_DEFAULTS = {"encoder_dim": 16, "encoder_convs": 2}
ENCODER_NAME = MODEL_NAME + ".encoder"
# A condition map (config "condition_map": K) covers the 28 x 28 MNIST image.
CONDITION_MAP_SIZE = (28, 28)
# The fewest layers each model takes, as its module defines it (NUM_LAYERS_HELP says
# what each model's count counts).
MIN_LAYERS = {"pixelconv": pixel_conv.MIN_LAYERS, "gated": gated_pixel_cnn.MIN_LAYERS,
              "masked": masked_pixel_cnn.MIN_LAYERS, "rowlstm": pixel_rnn.MIN_LAYERS,
              "diagbilstm": pixel_rnn.MIN_LAYERS}
NUM_LAYERS_HELP = ("pixelconv, gated: all layers, the 7x7 first one and the 1x1 output "
                   "ones included (>= {pixelconv}); masked: residual blocks (>= {masked}); "
                   "rowlstm, diagbilstm: LSTM layers, one per residual block (>= {rowlstm})"
                   ).format(**MIN_LAYERS)


def condition_dim(config):
    """Length of the conditioning vector h for ``config`` (0: unconditional)."""
    conditional = config.get("conditional", "none")
    if conditional not in CONDITIONS:
        raise ValueError("unknown conditioning {!r}; choose one of {}".format(
            conditional, ", ".join(CONDITIONS)))
    if conditional != "none" and config.get("model", "pixelconv") != "gated":
        raise ValueError("only the gated model can be conditioned (--model gated)")
    return {"none": 0, "class": NUM_CLASSES,
            "embedding": config.get("embed_dim", DEFAULT_EMBED_DIM)}[conditional]


def condition_map_shape(config):
    """(H, W, K) of the model's condition map, or None (``config["condition_map"]``: K)."""
    k = config.get("condition_map", 0)
    if not k:
        return None
    if config.get("conditional", "none") == "none":
        raise ValueError("--condition-map needs a condition: add --conditional class or "
                         "embedding")
    return CONDITION_MAP_SIZE + (int(k),)


def one_hot(labels, num_classes=NUM_CLASSES):
    """Integer labels (n,) -> float32 one-hot rows (n, num_classes)."""
    labels = numpy.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError("labels must lie in 0..{}, got {}..{}".format(
            num_classes - 1, labels.min(), labels.max()))
    return numpy.eye(num_classes, dtype=numpy.float32)[labels]


class Network(object):
    """A built model.

    ``X``: (batch, height, width, input_dim) float32 input; ``H``: (batch,
    condition_dim) condition or None; ``logits``: (batch, height, width,
    input_dim, q_levels). ``model`` holds the parameters trained on the
    likelihood; ``all_params`` adds the encoder's (when there is one), which
    is what checkpoints hold.
    """

    def __init__(self, config, model, X, H, layer, encoder=None, encoder_input=None):
        self.config, self.model, self.X, self.H, self.layer = config, model, X, H, layer
        self.encoder, self.encoder_input = encoder, encoder_input
        self.logits = layer.output()
        self.all_params = Model(name=MODEL_NAME)
        self.all_params.add_layer(layer)
        if encoder is not None:
            self.all_params.add_layer(encoder)
        self._logits_fn = self._embed_fn = None

    def embed(self, inputs):
        """Encoder f: (num, height, width, 1) float32 network inputs -> (num, embed_dim)."""
        if self.encoder is None:
            raise ValueError("this model has no image encoder (it is not conditioned on "
                             "embeddings)")
        if self._embed_fn is None:
            self._embed_fn = theano.function([self.encoder_input], self.encoder.output())
        return numpy.concatenate([self._embed_fn(inputs[s:s + 500])
                                  for s in range(0, len(inputs), 500)]).astype(numpy.float32)

    @property
    def inputs(self):
        """The symbolic inputs a compiled function of ``logits`` takes, in order."""
        return [self.X] + ([self.H] if self.H is not None else [])

    def logits_fn(self, condition=None):
        """Compiled (num, height, width, input_dim) inputs -> logits, with the
        condition (num, condition_dim) fixed when the model has one."""
        if self._logits_fn is None:
            self._logits_fn = theano.function(self.inputs, self.logits)
        if self.H is None:
            return self._logits_fn
        return lambda x: self._logits_fn(x, condition[:len(x)])


GRAPHS = ("fast", "faithful")


def has_fast_graph(config):
    """True when ``config``'s model has a channels-last fast graph (every model has)."""
    return config.get("model", "pixelconv") in MODELS


def build(config, graph="faithful"):
    """Network for ``config``; weights come from each layer's initialiser
    (seed ``numpy.random`` first for reproducible weights).

    ``graph='faithful'`` builds the original layout (what the regression tests
    compare with the original code); ``'fast'`` builds the channels-last graph
    of the same model (same parameters, outputs and gradients) where the model
    has one (:func:`has_fast_graph`), else the faithful one.
    """
    if graph not in GRAPHS:
        raise ValueError("unknown graph {!r}; choose one of {}".format(graph, ", ".join(GRAPHS)))
    fast = graph == "fast" and has_fast_graph(config)
    config = dict(config)
    config.setdefault("model", "pixelconv")
    config.setdefault("conditional", "none")
    kind = config["model"]
    if kind not in MODELS:
        raise ValueError("unknown model {!r}; choose one of {}".format(kind, ", ".join(MODELS)))
    cdim = condition_dim(config)
    X = T.tensor4("X")
    H = T.matrix("H") if cdim else None
    args = (WrapperLayer(X), config["input_dim"], config["dim"])
    kwargs = {"num_layers": config["num_layers"], "name": PREFIX}
    if kind == "pixelconv" and fast:
        from models.fast_pixel_conv import FastPixelConv
        layer = FastPixelConv(*args, Q_LEVELS=config["q_levels"], **kwargs)
    elif kind == "pixelconv":
        layer = pixelConv(*args, Q_LEVELS=config["q_levels"], **kwargs)
    elif kind == "gated" and fast:
        from models.fast_gated_pixel_cnn import FastGatedPixelCNN
        layer = FastGatedPixelCNN(*args, config["q_levels"], condition=H, condition_dim=cdim,
                                  condition_map=condition_map_shape(config), **kwargs)
    elif kind == "gated":
        layer = gated_pixel_cnn.GatedPixelCNN(*args, config["q_levels"], condition=H,
                                              condition_dim=cdim,
                                              condition_map=condition_map_shape(config),
                                              **kwargs)
    elif fast:
        from models import fast_pixel_rnn
        cls = {"masked": fast_pixel_rnn.FastMaskedPixelCNN,
               "rowlstm": fast_pixel_rnn.FastRowLSTMPixelRNN,
               "diagbilstm": fast_pixel_rnn.FastDiagonalBiLSTMPixelRNN}[kind]
        layer = cls(*args, Q_LEVELS=config["q_levels"], **kwargs)
    elif kind == "masked":
        layer = masked_pixel_cnn.MaskedPixelCNN(*args, Q_LEVELS=config["q_levels"], **kwargs)
    else:
        cls = (pixel_rnn.RowLSTMPixelRNN if kind == "rowlstm"
               else pixel_rnn.DiagonalBiLSTMPixelRNN)
        layer = cls(*args, Q_LEVELS=config["q_levels"], **kwargs)
    model = Model(name=MODEL_NAME)
    model.add_layer(layer)
    encoder = encoder_input = None
    if config["conditional"] == "embedding":
        from models.encoder import Encoder
        config.setdefault("embed_dim", DEFAULT_EMBED_DIM)
        for key, value in ENCODER_DEFAULTS.items():
            config.setdefault(key, value)
        encoder_input = T.tensor4("images")
        encoder = Encoder(WrapperLayer(encoder_input), config["embed_dim"],
                          DIM=config["encoder_dim"], num_convs=config["encoder_convs"],
                          name=ENCODER_NAME)
    return Network(config, model, X, H, layer, encoder, encoder_input)


def infer_config(arrays):
    """Config of the network whose parameters are ``{name: ndarray}``, read off
    their names and shapes (for checkpoints that carry no description: the
    original code's, and the .pkl copies of ``--save-original-format``)."""
    if any(n.endswith(".v2h1.filter") for n in arrays):
        return _infer_gated_config(arrays)
    if any(n.endswith(".first.filter") for n in arrays):
        return _infer_block_config(arrays)
    layers = [int(m.group(1)) for m in
              (re.match(r".*\.vstack(\d+)\.filter$", n) for n in arrays) if m]
    first = [n for n in arrays if n.endswith(".vstack1.filter")]
    last = [n for n in arrays if n.endswith(".combined_stack2.filter")]
    if not layers or len(first) != 1 or len(last) != 1:
        raise ValueError("these parameters are not a pixelConv's (no unique vstack1 / "
                         "combined_stack2 filter), and the file does not describe its model")
    dim, input_dim = arrays[first[0]].shape[:2]
    out_dim = arrays[last[0]].shape[0]
    if out_dim % input_dim:
        raise ValueError("combined_stack2 has {} outputs, not a multiple of input_dim {}".format(
            out_dim, input_dim))
    return {"model": "pixelconv", "input_dim": int(input_dim), "dim": int(dim),
            "num_layers": max(layers) + 1, "q_levels": int(out_dim // input_dim),
            "conditional": "none"}


def _infer_gated_config(arrays):
    """infer_config for the gated model: its condition is a label (10 features),
    an encoder's embedding (the encoder's parameters are there) or none."""
    config = gated_pixel_cnn.infer_gated_config(arrays)
    features = config.pop("condition_dim")
    convs = [int(m.group(1)) for m in (re.match(re.escape(ENCODER_NAME) + r"\.conv(\d+)\.filter$",
                                                n) for n in arrays) if m]
    if convs:
        config.update(conditional="embedding", embed_dim=features, encoder_convs=max(convs),
                      encoder_dim=int(arrays[ENCODER_NAME + ".conv1.filter"].shape[0]))
    elif features in (0, NUM_CLASSES):
        config["conditional"] = "class" if features else "none"
    else:
        raise ValueError("the gated model's condition has {} features: neither {} labels nor "
                         "an encoder's embedding".format(features, NUM_CLASSES))
    return config


def _infer_block_config(arrays):
    """infer_config for the masked PixelCNN and the PixelRNNs (a 7x7 'first'
    convolution, residual blocks, 'output1' and 'output2')."""
    first = [n for n in arrays if n.endswith(".first.filter")]
    last = [n for n in arrays if n.endswith(".output2.filter")]
    if len(first) != 1 or len(last) != 1:
        raise ValueError("these parameters have no unique first / output2 filter, and the "
                         "file does not describe its model")
    dim, input_dim = arrays[first[0]].shape[:2]
    config = {"input_dim": int(input_dim), "dim": int(dim), "conditional": "none",
              "q_levels": int(arrays[last[0]].shape[0] // input_dim)}
    for kind, block in (("rowlstm", "rowlstm"), ("diagbilstm", "diagbilstm"),
                        ("masked", "layer")):
        blocks = [int(m.group(1)) for m in
                  (re.search(r"\.%s(\d+)\." % block, n) for n in arrays) if m]
        if blocks:
            return dict(config, model=kind, num_layers=max(blocks))
    return dict(config, model="masked", num_layers=0)


def read_network_checkpoint(path):
    """(config, ``{name: ndarray}`` under ``PREFIX``) of a checkpoint file: ours
    (.npz, or a training state.npz) or the original code's pickle. Raises
    CheckpointError for an unreadable file, ValueError for parameters that
    describe no model of ours."""
    arrays, meta = read_checkpoint(path)
    return network_of(arrays, meta, path)


def network_of(arrays, meta, source):
    """(config, ``{name: ndarray}`` under ``PREFIX``) of the arrays and description
    that ``read_checkpoint`` returned for file ``source``; ValueError as above."""
    if any(k.startswith("param/") for k in arrays):  # a training state.npz
        # the weight average where the run kept one (train_mnist.py --ema): what it
        # validated and wrote as checkpoints; else the raw weights
        prefix = "ema/" if any(k.startswith("ema/") for k in arrays) else "param/"
        arrays = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    try:
        # the data the model was trained on, and how its weights were made (an
        # average or not), are not part of its config
        config = {k: v for k, v in meta.items() if k not in RECORD_KEYS} if meta \
            else infer_config(arrays)
        condition_dim(config)
    except (ValueError, TypeError) as err:
        raise ValueError("{}: {}".format(source, err))
    return config, rename_to_prefix(arrays)


def load_weights(net, weights, source):
    """Put a checkpoint's ``{name: ndarray}`` into ``net``; CheckpointError listing every
    mismatch, and saying so when the checkpoint predates the paper's blocks."""
    try:
        net.all_params.set_param_values(weights, source=source)
    except CheckpointError as err:
        if net.config["model"] in ("masked", "rowlstm", "diagbilstm") and old_block_layout(
                net.config["model"], weights):
            raise CheckpointError(
                "{}\n{} was written before the {} model took the paper's residual blocks "
                "and output head (1x1 convolutions around each 3x3 or LSTM layer, DIM = 2h); "
                "its weights do not fit the model any more: train it again".format(
                    err, source, net.config["model"]))
        raise


def old_block_layout(model, weights):
    """True for masked / PixelRNN weights of the earlier layout (a residual layer of
    DIM maps without the 1x1 convolutions of the paper's block)."""
    if model == "masked":
        return any(re.search(r"\.layer\d+\.filter$", n) for n in weights)
    return any(re.search(r"\.%s\d+\." % model, n) for n in weights) and \
        not any(re.search(r"\.%s\d+\.expand\.filter$" % model, n) for n in weights)


def rename_to_prefix(arrays):
    """Map a checkpoint's names onto ``PREFIX`` (original runs used other model names)."""
    firsts = [n for n in arrays if n.endswith(".vstack1.filter")]
    if len(firsts) != 1:
        return dict(arrays)
    prefix = firsts[0][:-len(".vstack1.filter")]
    if prefix == PREFIX:
        return dict(arrays)
    return {PREFIX + n[len(prefix):]: v for n, v in arrays.items() if n.startswith(prefix)}
