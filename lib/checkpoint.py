"""Checkpoint files: name -> float array dictionaries, written safely, read safely.

Our format is a NumPy ``.npz`` archive written with ``allow_pickle=False``
to a temporary file in the target folder and renamed into place, so a crash
never leaves a half-written checkpoint.

The original code saved ``pickle.dump({name: ndarray})``, often under
Python 2. Those files are read through an allow-listed unpickler: it can
rebuild NumPy arrays and dtypes inside a dict and nothing else, so loading a
checkpoint never runs code from it.
"""
import io
import json
import os
import pickle
import tempfile
import zipfile

import numpy

# (module, name) pairs a parameter pickle may reference, mapped to the callable used.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): numpy.core.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): numpy.core.multiarray._reconstruct,
    ("numpy", "ndarray"): numpy.ndarray,
    ("numpy", "dtype"): numpy.dtype,
    ("_codecs", "encode"): lambda text, encoding="utf-8": text.encode(encoding),
}


class CheckpointError(ValueError):
    """A checkpoint could not be read, or does not fit the model."""


class _ParamUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(
                "refusing to load {}.{} from a checkpoint pickle: only NumPy arrays "
                "in a dict are allowed, and loading never runs code".format(module, name))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write):
    """Call ``write(file_object)`` on a temp file beside ``path``, then rename it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give the usual mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


META_KEY = "__meta__"  # optional JSON description of the model, stored as uint8 bytes
# Keys of that description naming which training images the model learnt from: the
# last ``valid_split`` images of the training split were held out for validation,
# and training used at most the first ``train_limit`` (None: all) of the rest.
SPLIT_KEYS = ("valid_split", "train_limit")
# Keys of that description naming the data a model was trained on, not the model.
DATASET_KEYS = ("dataset", "binarization") + SPLIT_KEYS


# Keys of that description saying which weights a checkpoint holds, not the model:
# ``ema`` the decay of train_mnist.py's weight average (--ema) whose value it holds
# after ``ema_steps`` steps (ema 0: the raw weights), ``mean_of`` the number of
# checkpoints average_checkpoints.py took the mean of (with ``ema`` when they all
# record the same). Files written before these keys existed record none of them.
WEIGHTS_KEYS = ("ema", "ema_steps", "mean_of")
# Every key of a description that is not part of the model's config.
RECORD_KEYS = DATASET_KEYS + WEIGHTS_KEYS


def describe_weights(meta):
    """One phrase on the weights a checkpoint with description ``meta`` holds: an
    average (of the training steps, or of checkpoints), the raw weights, or not
    recorded."""
    meta = meta or {}
    if meta.get("mean_of"):
        each = ""
        if "ema" in meta:
            each = (", each a moving average of its run's weights (--ema {})".format(
                meta["ema"]) if meta["ema"] else ", each the raw weights of its run")
        return "the mean of {} checkpoints (average_checkpoints.py){}".format(
            meta["mean_of"], each)
    if "ema" not in meta:
        return "not recorded (written before checkpoints recorded it; its run's " \
            "history.json, where there is one, says whether it validated averaged weights)"
    if not meta["ema"] or not meta.get("ema_steps"):
        return "the raw weights of the last training step"
    return "a moving average of the training steps' weights (--ema {}, over {} " \
        "steps)".format(meta["ema"], meta["ema_steps"])


def recorded_data(meta):
    """The DATASET_KEYS entries of a description (``{}`` for None or none recorded)."""
    return {k: meta[k] for k in DATASET_KEYS if meta and k in meta}


def non_finite(arrays):
    """Sorted names of the arrays of ``{name: ndarray}`` holding a NaN or an infinity."""
    return sorted(name for name, value in arrays.items()
                  if value.dtype.kind == "f" and not numpy.isfinite(value).all())


def save_arrays(path, arrays, meta=None):
    """Write ``{name: array}`` to ``path`` as an .npz, atomically, without pickle.
    ``meta`` (a JSON-serialisable dict, e.g. the model config) is stored beside them."""
    arrays = {name: numpy.asarray(value) for name, value in arrays.items()}
    if meta is not None:
        arrays[META_KEY] = numpy.frombuffer(json.dumps(meta).encode(), dtype=numpy.uint8)
    atomic_write(path, lambda f: _write_npz(f, arrays))


def _write_npz(f, arrays):
    """The archive ``numpy.savez`` writes (one uncompressed ``<name>.npy`` member per
    array), its zip file closed even when the writing is interrupted (Ctrl-C), so
    that nothing writes to ``f`` after ``atomic_write`` has closed and removed it."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED,
                         allowZip64=True) as archive:
        for name, value in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                numpy.lib.format.write_array(member, value, allow_pickle=False)


def save_pickle(path, arrays):
    """Write ``{name: array}`` the way the original ``Model.save_params`` does, atomically."""
    atomic_write(path, lambda f: pickle.dump(dict(arrays), f, protocol=2))


def _check_arrays(obj, path):
    if not isinstance(obj, dict):
        raise CheckpointError("{}: expected a dict of parameter arrays, found {}".format(
            path, type(obj).__name__))
    out = {}
    for key, value in obj.items():
        if isinstance(key, bytes):
            key = key.decode("latin1")
        if not isinstance(key, str) or not isinstance(value, numpy.ndarray) \
                or value.dtype.kind not in "fiu":
            raise CheckpointError("{}: entry {!r} is not a numeric array".format(path, key))
        out[key] = value
    return out


def load_arrays(path):
    """Read a checkpoint (our .npz or an original pickle) as ``{name: ndarray}``."""
    return read_checkpoint(path)[0]


def read_checkpoint(path):
    """(``{name: ndarray}``, meta dict or None) of a checkpoint."""
    arrays = _read_arrays(path)
    meta = arrays.pop(META_KEY, None)
    if meta is not None:
        try:
            meta = json.loads(meta.tobytes().decode())
        except ValueError:
            raise CheckpointError("{}: its model description is not valid JSON".format(path))
        if not isinstance(meta, dict):
            raise CheckpointError("{}: its model description is not a dict".format(path))
    return arrays, meta


def _read_arrays(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise CheckpointError("cannot read checkpoint {}: {}".format(path, err.strerror))
    if data[:4] == b"PK\x03\x04":
        try:
            with numpy.load(io.BytesIO(data), allow_pickle=False) as archive:
                return _check_arrays({k: archive[k] for k in archive.files}, path)
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
            raise CheckpointError("{} is not a readable .npz checkpoint ({}): it is truncated "
                                  "or damaged; copy it again, or use another".format(path, err))
    try:
        obj = _ParamUnpickler(io.BytesIO(data), encoding="latin1").load()
    except CheckpointError as err:
        raise CheckpointError("{}: {}".format(path, err))
    except Exception as err:  # any malformed pickle: truncated, wrong opcodes, ...
        raise CheckpointError("{} is neither an .npz checkpoint nor a parameter pickle "
                              "({}: {})".format(path, type(err).__name__, err))
    return _check_arrays(obj, path)
