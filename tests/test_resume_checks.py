"""train_mnist.py --resume: what it checks before anything is compiled or written.

Each test resumes a copy of one finished tiny run (tests/test_train.py's
synthetic data and model) whose files were edited as a user might; a refusal
must exit 2 with one line and leave every file of the run as it was.
"""
import json
import os
import shutil

import pytest

import evaluate
import train_mnist
from data import binarized
from lib.checkpoint import read_checkpoint
from tests.test_binarized import write_fixed_files
from tests.test_train import call_main, checkpoints, cli, data_dir  # noqa: F401  (fixture)


def snapshot(folder):
    """{file name: bytes} of every file in ``folder``."""
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(str(folder)))}


def assert_refused(code, out, err, *words):
    assert code == 2, err
    assert "Traceback" not in err and "Compiling" not in out
    assert len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, (word, err)


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory):  # noqa: F811
    """One epoch of the tiny run, validated on the test images."""
    out_dir = tmp_path_factory.mktemp("finished") / "run"
    code, out, err = call_main(cli(data_dir, out_dir, "--epochs", "1", "--samples-every", "0"))
    assert code == 0, err
    return out_dir


@pytest.fixture
def run_copy(finished_run, tmp_path):
    out_dir = tmp_path / "run"
    shutil.copytree(str(finished_run), str(out_dir))
    return out_dir


def edit_config(out_dir, **changes):
    path = out_dir / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("changes, words", [
    ({"num_layers": "two"}, ['"num_layers" is "two"', "--num-layers"]),
    ({"model": "foo"}, ['"model" is "foo"', "--model"]),
    ({"q_levels": 1}, ["Q_LEVELS"]),
    ({"epochs": "3"}, ['"epochs" is "3"', "--epochs"]),
    ({"batch_size": 0}, ["--batch-size must be at least 1, got 0"]),
    ({"lr": -0.001}, ["--lr must be a positive number, got -0.001"]),
    ({"lr": None}, ['"lr" is null']),
    ({"no_verify": "yes"}, ['"no_verify" is "yes"']),
    ({"valid_split": -5}, ["--valid-split must be at least 0"]),
    ({"input_dim": 3}, ['"input_dim" is 3']),
])
def test_hand_edited_config_is_refused_before_anything_is_written(run_copy, changes, words):
    edit_config(run_copy, **dict({"epochs": 2}, **changes))
    before = snapshot(run_copy)
    code, out, err = call_main(["--resume", str(run_copy), "--no-progress"])
    assert_refused(code, out, err, "config.json", "correct the file", *words)
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("content", [b"[{oops", b"", b"[1, 2]", b'{"epoch": 1}',
                                     b'[{"epoch": "one", "train_nll": 1, "valid_nll": 1}]'])
def test_damaged_history_is_found_before_compiling(run_copy, content):
    (run_copy / "history.json").write_bytes(content)
    before = snapshot(run_copy)
    code, out, err = call_main(["--resume", str(run_copy), "--epochs", "2", "--no-progress"])
    assert_refused(code, out, err, "history.json is damaged", "Put back a good copy")
    assert snapshot(run_copy) == before


def test_diverging_resume_leaves_the_run_as_it_was(run_copy):
    before = snapshot(run_copy)
    code, out, err = call_main(["--resume", str(run_copy), "--epochs", "2", "--lr", "1e30",
                                "--samples-every", "0", "--no-progress"])
    assert code == 1 and "Traceback" not in err
    assert "became nan" in err and "--lr" in err
    assert "--grad-clip" not in err  # --resume refuses it
    assert snapshot(run_copy) == before  # config.json keeps the old rate
    # and a plain --resume afterwards trains on at the saved rate
    code, out, err = call_main(["--resume", str(run_copy), "--epochs", "2", "--no-progress",
                                "--samples-every", "0"])
    assert code == 0, err
    assert json.loads((run_copy / "config.json").read_text())["lr"] == 1e-3


def test_fresh_run_that_diverges_still_advises_grad_clip(data_dir, tmp_path):  # noqa: F811
    code, out, err = call_main(cli(data_dir, tmp_path / "run", "--epochs", "1", "--lr",
                                   "1e30", "--samples-every", "0"))
    assert code == 1 and "--grad-clip" in err


def test_another_runs_config_is_blamed_not_the_state(run_copy):
    edit_config(run_copy, dim=8)  # as if copied from a wider run
    before = snapshot(run_copy)
    code, out, err = call_main(["--resume", str(run_copy), "--epochs", "2", "--no-progress"])
    assert_refused(code, out, err, "config.json", "another run", "dim 4 in state.npz")
    assert "Put back a good copy of state.npz" not in err
    assert snapshot(run_copy) == before


def test_read_only_run_folder_is_not_told_to_choose_another_out_dir(run_copy, monkeypatch):
    """(Simulated: the tests may run as root, who can write anywhere.)"""
    from training import run_folder

    def refuse(path, write):
        raise PermissionError(13, "Permission denied", path)
    monkeypatch.setattr(run_folder, "atomic_write", refuse)
    code, out, err = call_main(["--resume", str(run_copy), "--epochs", "2", "--no-progress"])
    assert_refused(code, out, err, "cannot write to the run's folder", "Permission denied",
                   "writable copy")
    assert "--out-dir" not in err


def test_embedding_condition_on_binarized_mnist_is_refused():
    code, out, err = call_main(["--model", "gated", "--conditional", "embedding",
                                "--dataset", "binarized-mnist"])
    assert code == 2 and "--conditional embedding does not work with --dataset " \
        "binarized-mnist" in err


@pytest.fixture(scope="module")
def dynamic_run(data_dir, tmp_path_factory):  # noqa: F811
    """One epoch on MNIST binarized dynamically (the data folder has no .amat file)."""
    out_dir = tmp_path_factory.mktemp("dynamic") / "run"
    argv = cli(data_dir, out_dir, "--epochs", "1", "--samples-every", "0", "--dataset",
               "binarized-mnist")
    del argv[argv.index("--q-levels"):argv.index("--q-levels") + 2]
    code, out, err = call_main(argv)
    assert code == 0, err
    return out_dir


def test_dynamic_run_records_its_binarization(dynamic_run):
    assert json.loads((dynamic_run / "config.json").read_text())["binarization"] == "dynamic"
    for name in checkpoints(dynamic_run) + ["state.npz"]:
        meta = read_checkpoint(str(dynamic_run / name))[1]
        assert (meta["dataset"], meta["binarization"]) == ("binarized-mnist", "dynamic")


def test_resuming_a_dynamic_run_on_fixed_files_is_refused(dynamic_run, data_dir, tmp_path):  # noqa: F811,E501
    out_dir = tmp_path / "run"
    shutil.copytree(str(dynamic_run), str(out_dir))
    amat_dir = tmp_path / "with-amat"
    shutil.copytree(str(data_dir), str(amat_dir))
    write_fixed_files(amat_dir, {"train": 40, "test": 30})
    before = snapshot(out_dir)
    code, out, err = call_main(["--resume", str(out_dir), "--epochs", "2", "--data-dir",
                                str(amat_dir), "--no-progress"])
    assert_refused(code, out, err, "trained on the dynamic binarization",
                   "gives the fixed one", "--data-dir a folder without binarized_mnist_*.amat")
    assert snapshot(out_dir) == before


def test_evaluate_warns_when_a_checkpoint_is_scored_on_other_data(dynamic_run, data_dir,  # noqa: F811,E501
                                                                  capsys):
    path = str(dynamic_run / checkpoints(dynamic_run)[0])
    common = ["--checkpoint", path, "--data-dir", str(data_dir), "--no-verify",
              "--no-progress"]
    assert evaluate.main(common + ["--dataset", "binarized-mnist"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert evaluate.main(common + ["--dataset", "mnist"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("warning: {} was trained on binarized-mnist (dynamic "
                          "binarization), but these images are mnist".format(path))


def test_generate_warns_when_it_reconstructs_other_data(dynamic_run, data_dir, tmp_path,  # noqa: F811,E501
                                                        capsys):
    import generate
    path = str(dynamic_run / checkpoints(dynamic_run)[0])
    code = generate.main(["--checkpoint", path, "--reconstruct", "2", "--data-dir",
                          str(data_dir), "--no-verify", "--no-progress", "--out",
                          str(tmp_path / "r.png")])
    assert code == 0
    err = capsys.readouterr().err
    assert "warning: {} was trained on binarized-mnist (dynamic binarization), but these " \
        "images are mnist".format(path) in err


@pytest.mark.parametrize("with_amat", [False, True])
def test_generate_tells_the_fixed_binarization_from_the_dynamic_one(
        dynamic_run, data_dir, tmp_path, capsys, with_amat):  # noqa: F811
    import generate
    path = str(dynamic_run / checkpoints(dynamic_run)[0])
    images_dir = tmp_path / "data"
    shutil.copytree(str(data_dir), str(images_dir))
    if with_amat:
        write_fixed_files(images_dir, {"train": 40, "valid": 10, "test": 30})
    code = generate.main(["--checkpoint", path, "--complete", "2", "--num", "1",
                          "--dataset", "binarized-mnist", "--data-dir", str(images_dir),
                          "--no-verify", "--no-progress", "--out", str(tmp_path / "c.png")])
    assert code == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    if with_amat:
        assert warnings == ["warning: {} was trained on binarized-mnist (dynamic binarization), "
                            "but these images are binarized-mnist (fixed binarization); its "
                            "figures do not describe its own data".format(path)]
    else:
        assert warnings == []


def test_resume_help_names_only_the_settings_it_may_change():
    from training import run_folder
    (action,) = [a for a in train_mnist.build_parser()._actions if a.dest == "resume"]
    for key in run_folder.CHANGEABLE:
        assert run_folder.option(key) in action.help, key
    for key in ("dataset", "valid_split", "train_limit", "valid_limit", "grad_clip"):
        assert key not in run_folder.CHANGEABLE
        assert run_folder.option(key) + "," not in action.help, key


def binarized_cli(data_dir, out_dir, *extra):  # noqa: F811
    argv = cli(data_dir, out_dir, "--dataset", "binarized-mnist", *extra)
    del argv[argv.index("--q-levels"):argv.index("--q-levels") + 2]
    return argv


def test_train_names_a_non_utf8_amat_line_and_found_and_missing_files(data_dir, tmp_path):  # noqa: F811,E501
    folder = tmp_path / "data"
    shutil.copytree(str(data_dir), str(folder))
    write_fixed_files(folder, {"test": 2})
    code, out, err = call_main(binarized_cli(folder, tmp_path / "run"))
    assert_refused(code, out, err, "holds binarized_mnist_test.amat but not "
                   "binarized_mnist_train.amat")
    write_fixed_files(folder, {"train": 3})
    path = folder / binarized.AMAT_FILES["train"]
    path.write_bytes(path.read_bytes().replace(b"1", b"\xe9", 1))
    code, out, err = call_main(binarized_cli(folder, tmp_path / "run"))
    assert_refused(code, out, err, str(path), "line 1", "not UTF-8")
    assert not (tmp_path / "run").exists()


def test_evaluate_names_a_non_utf8_amat_line(dynamic_run, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    write_fixed_files(folder, {"test": 2})
    path = folder / binarized.AMAT_FILES["test"]
    path.write_bytes(path.read_bytes().replace(b"0", b"\xff", 1))
    code = evaluate.main(["--checkpoint", str(dynamic_run / checkpoints(dynamic_run)[0]),
                          "--dataset", "binarized-mnist", "--data-dir", str(folder),
                          "--no-verify", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert str(path) in err and "line 1" in err and "not UTF-8" in err


@pytest.mark.parametrize("extra, option", [
    (["--dataset", "binarized-mnist"], "--dataset"),
    (["--valid-split", "5"], "--valid-split"),
    (["--train-limit", "20"], "--train-limit"),
])
def test_a_setting_the_command_line_cannot_change_is_blamed_on_it(run_copy, extra, option):
    """Not on config.json: the file is fine, the option given again is the problem."""
    before = snapshot(run_copy)
    code, out, err = call_main(["--resume", str(run_copy), "--epochs", "2",
                                "--no-progress"] + extra)
    assert_refused(code, out, err, "--resume continues the run as it was set up; it cannot "
                   "change {}. Leave it out".format(option))
    assert "correct the file" not in err and "config.json" not in err
    assert snapshot(run_copy) == before


def test_the_state_records_the_split_and_a_config_of_another_split_is_blamed(run_copy):
    meta = read_checkpoint(str(run_copy / "state.npz"))[1]
    assert (meta["valid_split"], meta["train_limit"]) == (0, None)
    for name in checkpoints(run_copy):
        assert read_checkpoint(str(run_copy / name))[1]["valid_split"] == 0
    edit_config(run_copy, valid_split=10)  # as if copied from a run that held 10 out
    before = snapshot(run_copy)
    code, out, err = call_main(["--resume", str(run_copy), "--epochs", "2", "--no-progress"])
    assert_refused(code, out, err, "config.json", "another run",
                   "valid_split 0 in state.npz, 10 in config.json")
    assert snapshot(run_copy) == before
