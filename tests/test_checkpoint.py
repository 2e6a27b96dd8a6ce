"""Checkpoint files: atomic .npz, safe reading of pickles, clear errors."""
import os
import pickle

import numpy
import pytest

from lib.checkpoint import CheckpointError, load_arrays, save_arrays, save_pickle
from tests.conftest import fixture_path


class _CreatesFile(object):
    """Unpickling this would call open(<path>, 'w'), creating a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_python2_pickle_of_the_original_reads_as_arrays():
    arrays = load_arrays(fixture_path("mnist_small_params_py2.pkl"))
    with numpy.load(fixture_path("mnist_small.npz")) as recorded:
        names = [k for k in recorded.files if k.startswith("param/")]
        assert sorted(arrays) == sorted(k[len("param/"):] for k in names)
        for k in names:
            numpy.testing.assert_array_equal(arrays[k[len("param/"):]], recorded[k])


def test_plain_pickle_needs_latin1_which_is_why_we_read_it_ourselves():
    with open(fixture_path("mnist_small_params_py2.pkl"), "rb") as f:
        with pytest.raises(UnicodeDecodeError):
            pickle.load(f)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_malicious_pickle_is_refused_and_creates_nothing(tmp_path, protocol):
    victim = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"w": _CreatesFile(str(victim))}, f, protocol=protocol)
    with pytest.raises(CheckpointError) as err:
        load_arrays(str(path))
    assert "refusing to load" in str(err.value) and "open" in str(err.value)
    assert not victim.exists()


def test_pickle_of_a_non_dict_or_non_arrays_is_refused(tmp_path):
    for i, obj in enumerate([[1, 2], {"a": "text"}, {"a": numpy.array(["x"], dtype=object)}]):
        path = tmp_path / "odd{}.pkl".format(i)
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=2)
        with pytest.raises(CheckpointError):
            load_arrays(str(path))


def test_npz_round_trip_without_pickle(tmp_path):
    arrays = {"a.filter": numpy.arange(6, dtype="float32").reshape(2, 3),
              "a.b": numpy.zeros(2, "float32")}
    path = str(tmp_path / "x.npz")
    save_arrays(path, arrays)
    with numpy.load(path, allow_pickle=False) as f:  # readable with pickle forbidden
        assert sorted(f.files) == sorted(arrays)
    back = load_arrays(path)
    for k in arrays:
        numpy.testing.assert_array_equal(back[k], arrays[k])
    assert os.listdir(str(tmp_path)) == ["x.npz"]  # no temporary file left


def test_original_format_round_trip(tmp_path):
    arrays = {"w": numpy.ones((2, 2), "float32")}
    path = str(tmp_path / "x.pkl")
    save_pickle(path, arrays)
    numpy.testing.assert_array_equal(load_arrays(path)["w"], arrays["w"])


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    path = str(tmp_path / "ckpt.npz")
    save_arrays(path, {"w": numpy.zeros(3, "float32")})

    class Boom(object):
        def __array__(self, dtype=None):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_arrays(path, {"w": numpy.ones(3, "float32"), "v": Boom()})
    assert os.listdir(str(tmp_path)) == ["ckpt.npz"]
    numpy.testing.assert_array_equal(load_arrays(path)["w"], numpy.zeros(3))


@pytest.mark.parametrize("content, words", [
    (b"", "neither an .npz checkpoint nor a parameter pickle"),
    (b"PK\x03\x04garbage", "not a readable .npz checkpoint"),
    (b"\x80\x02}q\x00(U\x01", "neither an .npz checkpoint nor a parameter pickle"),
])
def test_corrupt_files_give_a_clear_error(tmp_path, content, words):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_arrays(str(path))
    assert words in str(err.value) and "bad.ckpt" in str(err.value)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(CheckpointError) as err:
        load_arrays(str(tmp_path / "nope.npz"))
    assert "nope.npz" in str(err.value)


def test_written_files_get_the_usual_permissions(tmp_path):
    path = str(tmp_path / "x.npz")
    old = os.umask(0o022)
    try:
        save_arrays(path, {"w": numpy.zeros(2, "float32")})
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644


BASE = {"input_dim": 1, "dim": 4, "q_levels": 3, "conditional": "none"}


@pytest.mark.parametrize("config", [
    dict(BASE, model="pixelconv", num_layers=3),
    dict(BASE, model="gated", num_layers=3),
    dict(BASE, model="gated", num_layers=4, conditional="class"),
    dict(BASE, model="gated", num_layers=3, conditional="class", condition_map=2),
    dict(BASE, model="gated", num_layers=3, conditional="embedding", embed_dim=5,
         encoder_dim=6, encoder_convs=2),
    dict(BASE, model="masked", num_layers=2),
    dict(BASE, model="masked", num_layers=0),
    dict(BASE, model="rowlstm", num_layers=2),
    dict(BASE, model="diagbilstm", num_layers=1),
])
def test_original_format_copy_of_every_model_loads_with_its_config(tmp_path, config):
    """train_mnist.py --save-original-format writes the weights alone (no description);
    evaluate.py and generate.py read the model off the names and shapes."""
    from models import build as builder
    net = builder.build(config)
    path = str(tmp_path / "epoch_001.pkl")
    net.all_params.save_params(path, original_format=True)
    inferred, weights = builder.read_network_checkpoint(path)
    assert inferred == config
    again = builder.build(inferred)
    builder.load_weights(again, weights, path)
    for p, q in zip(net.all_params.get_params(), again.all_params.get_params()):
        numpy.testing.assert_array_equal(p.get_value(), q.get_value())
