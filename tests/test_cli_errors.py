"""The ``mrtrain`` command's boundary: options, the mrjob config file and output targets checked before any
job runs, one line for every error (2: bad input, 1: job or internal failure, 130: interrupted), and
``--reducers`` capped at the summed vector's length."""

import json
import logging
import os
import re

import numpy as np
import pytest

from mrtrain import cli
from mrtrain.cli import main
from mrtrain.engine.metrics import metric_vector_length
from mrtrain.engine.registry import make_model
from mrtrain.launcher import JobLauncher
from mrtrain.mrjob_conf import check_mrjob_conf
from mrtrain.storage.checkpoint import latest_checkpoint, list_checkpoints
from mrtrain.trainer import Trainer
from tests.command import run, tree
from tests.datasets import write


def refused_by_argparse(capsys, *argv):
    """The one stderr line of an ``mrtrain`` call that argparse refuses with exit status 2."""
    status, out, err = run(capsys, *argv)
    assert (status, out, len(err)) == (2, "", 1), err
    return err[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 200-row binary dataset and a logistic model trained on it: ``(root, data, model_dir)``."""
    root = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=200) > 0).astype(float)
    data = write(root / "data", X, y, partitions=2)
    Trainer("logistic", l2=0.1, max_iter=3, checkpoint_dir=str(root / "ck")).fit(data)
    return root, data, str(root / "ck")


@pytest.fixture
def no_jobs(monkeypatch):
    """Any MapReduce job fails the test: the checks under test must come before every job."""

    def run(self, *args, **kwargs):
        raise AssertionError("a MapReduce job ran")

    monkeypatch.setattr(JobLauncher, "run", run)


# --- the mrjob config file ---------------------------------------------------------------------------

CONF_CASES = [
    ("passwd", "root:x:0:0:root:/root:/bin/bash\n", "expected a mapping with a 'runners' mapping, found a "
                                                    "str"),
    ("empty", "", "expected a mapping with a 'runners' mapping, found an empty file"),
    ("list", "- runners\n", "expected a mapping with a 'runners' mapping, found a list"),
    ("other", "jobs: {}\n", r"expected a mapping with a 'runners' mapping, found keys \['jobs'\]"),
    ("runners-list", "runners: [local]\n",
     "'runners': expected a mapping of runner names to options, found a list"),
    ("runner-str", "runners:\n  local: fast\n",
     "'runners': 'local': expected a mapping of options, found a str"),
    ("bad-yaml", "runners: {local: [}\n", "expected YAML or JSON, found while parsing"),
    ("deep", "[" * 100_000, "expected YAML or JSON, found values nested too deeply to parse"),
    ("laughs", "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
               + "".join(f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n"
                         for a, b in zip("abcdef", "bcdefg", strict=True)) + "runners: {}\n",
     r"expected at most 100000 values \(YAML aliases expanded\), found more"),
    ("binary", b"runners:\n\xff\xfe\x00", "expected UTF-8 text, found byte 0xff at offset 9"),
    ("huge", "runners: {}\n" + "#" * 2**20, "expected at most 1048576 bytes, found 1048588"),
    ("include-bad", "include: passwd\n",
     "passwd: mrjob config included by .*include-bad: expected a mapping with a 'runners' mapping"),
    ("include-int", "include: 5\n", "'include': expected a path or a list of paths, found 5"),
]


@pytest.mark.parametrize(("name", "text", "message"), CONF_CASES, ids=[case[0] for case in CONF_CASES])
def test_a_bad_mrjob_config_is_one_line_from_argparse_naming_the_file(tmp_path, capsys, trained, name, text,
                                                                 message):
    (tmp_path / "passwd").write_text(CONF_CASES[0][1])
    conf = tmp_path / name
    conf.write_bytes(text if isinstance(text, bytes) else text.encode())
    line = refused_by_argparse(capsys, "train", trained[1], "--model", "logistic", "--runner", "inline",
                               "--conf-path", str(conf))
    assert line.startswith(f"mrtrain: error: {tmp_path}/") and str(conf) in line
    assert re.search(message, line), line
    with pytest.raises(ValueError, match=message):
        Trainer("logistic", conf_path=str(conf)).fit(trained[1])


@pytest.mark.parametrize(("make", "found"), [
    (lambda path: path.mkdir(), "expected a regular file, found a directory"),
    (lambda path: None, "expected a readable file, found no such file or directory"),
    (lambda path: os.mkfifo(path), "expected a regular file, found a named pipe"),
])
def test_an_mrjob_config_that_is_no_regular_file_is_refused_unread(tmp_path, capsys, trained, make, found):
    conf = tmp_path / "mrjob.conf"
    make(conf)
    line = refused_by_argparse(capsys, "evaluate", trained[1], "--model-dir", trained[2], "--conf-path",
                               str(conf))
    assert line == f"mrtrain: error: {conf}: mrjob config: {found}"


def test_a_valid_mrjob_config_with_clear_tags_and_includes_is_accepted(tmp_path):
    (tmp_path / "base.conf").write_text("runners:\n  local:\n    cmdenv: {A: '1'}\n")
    conf = tmp_path / "mrjob.conf"
    conf.write_text("include: base.conf\nrunners:\n  inline: ~\n  local:\n    cmdenv: !clear\n      B: '2'\n")
    assert check_mrjob_conf(str(conf)) == str(conf)
    (tmp_path / "loop.conf").write_text('{"include": ["loop.conf"], "runners": {"local": {}}}')
    assert check_mrjob_conf(str(tmp_path / "loop.conf")) == str(tmp_path / "loop.conf")


# --- one line and an exit status for every error ------------------------------------------------------

def test_an_unexpected_error_is_one_line_with_its_type_exit_1_and_a_debug_traceback(capsys, caplog,
                                                                                     monkeypatch, tmp_path):
    def crash(args):
        raise KeyError("partitions")

    monkeypatch.setitem(cli.COMMANDS, "inspect", crash)
    status, out, err = run(capsys, "inspect", str(tmp_path))
    assert (status, out) == (1, "")
    assert err == ["mrtrain: error: KeyError: 'partitions' (rerun with -vv for the traceback)"]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="mrtrain"):
        assert main(["-vv", "inspect", str(tmp_path)]) == 1
    assert any(record.exc_info and record.exc_info[0] is KeyError for record in caplog.records)


def test_ctrl_c_is_one_line_exit_130_and_the_checkpoints_written_stay_valid(tmp_path, capsys, monkeypatch,
                                                                           trained):
    ck = tmp_path / "ck"

    def interrupt(self, progress):
        if progress.iteration == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli.TrainingProgress, "__call__", interrupt)
    args = ["train", trained[1], "--model", "logistic", "--l2", "0.1", "--runner", "inline",
            "--checkpoint-dir", str(ck), "--json"]
    assert main(args) == 130
    out, err = capsys.readouterr()
    assert (out, err) == ("", "mrtrain: interrupted\n")
    assert [iteration for iteration, _ in list_checkpoints(str(ck))] == [0, 1, 2]
    assert latest_checkpoint(str(ck)).iteration == 2
    assert tree(ck) == ["ckpt-000000.parquet", "ckpt-000001.parquet", "ckpt-000002.parquet"]
    monkeypatch.undo()
    assert main(["-q", *args]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["iterations"] > 2 and result["converged"]


@pytest.mark.parametrize(("error", "found"), [
    (RecursionError("maximum recursion depth exceeded"), "expected readable input, found values nested too "
                                                         "deeply to parse (RecursionError: maximum recursion "
                                                         "depth exceeded)"),
    (MemoryError(), "expected input that fits in memory, found it too large to read (MemoryError)"),
])
def test_a_file_too_deep_or_too_large_to_parse_is_bad_input(capsys, monkeypatch, trained, error, found):
    def load(directory):
        raise error

    monkeypatch.setattr(cli, "read_model", load)  # what every command reading a model directory calls
    status, out, err = run(capsys, "inspect", trained[2])
    assert (status, out, err) == (2, "", [f"mrtrain: error: {trained[2]}: {found}"])


# --- numeric options --------------------------------------------------------------------------------

TRAIN = ("train", "DATA", "--model", "logistic", "--runner", "inline")
INGEST = ("ingest", "SRC", "DEST")


@pytest.mark.parametrize(("command", "option", "value", "message"), [
    (TRAIN, "--tol", "inf", "The 'tol' parameter must be a finite float >= 0. Got inf instead."),
    (TRAIN, "--tol", "nan", "The 'tol' parameter must be a finite float >= 0. Got nan instead."),
    (TRAIN, "--gtol", "-1e-3", "The 'gtol' parameter must be a finite float >= 0. Got -0.001 instead."),
    (TRAIN, "--gtol", "small", "The 'gtol' parameter must be a finite float >= 0. Got 'small' instead."),
    (TRAIN, "--l2", "-inf", "The 'l2' parameter must be a finite float >= 0. Got -inf instead."),
    (TRAIN, "--max-iter", "0", "The 'max_iter' parameter must be an int >= 1. Got 0 instead."),
    (TRAIN, "--max-iter", "1e3", "The 'max_iter' parameter must be an int >= 1. Got '1e3' instead."),
    (TRAIN, "--keep-checkpoints", "0",
     "The 'keep_checkpoints' parameter must be an int >= 1. Got 0 instead."),
    (TRAIN, "--reducers", "-1", "The 'reducers' parameter must be an int >= 0. Got -1 instead."),
    (TRAIN, "--reducers", "2.5", "The 'reducers' parameter must be an int >= 0. Got '2.5' instead."),
    (INGEST, "--partitions", "0", "The 'partitions' parameter must be an int >= 1. Got 0 instead."),
    (INGEST, "--partition-size", "inf", "The 'partition_size' parameter must be a finite float > 0. Got inf "
                                        "instead."),
    (INGEST, "--partition-size", "0", "The 'partition_size' parameter must be a finite float > 0. Got 0.0 "
                                      "instead."),
    (INGEST, "--partition-size", "1e300", r"The 'partition_size' parameter must be a finite float in \(0, "
                                          r"1048576\] \(MiB\). Got 1e\+300 instead."),
    (INGEST, "--n-features", "-2", "The 'n_features' parameter must be an int >= 1. Got -2 instead."),
])
def test_numeric_options_are_one_line_from_argparse_before_anything_runs(tmp_path, capsys, command, option,
                                                                       value, message):
    argv = [{"DATA": str(tmp_path / "d"), "SRC": str(tmp_path / "s.csv"), "DEST": str(tmp_path / "o")}.get(
        arg, arg) for arg in command]
    line = refused_by_argparse(capsys, *argv, f"{option}={value}")
    assert re.fullmatch(message, line.removeprefix("mrtrain: error: ")), line
    assert tree(tmp_path) == []


# --- output targets ---------------------------------------------------------------------------------

def _outputs(root, data, model_dir):
    """``{case: (output path, expected message after 'mrtrain: error: ')}`` for predict's --output."""
    (root / "file").write_text("x")
    (root / "full").mkdir()
    (root / "full" / "x").write_text("x")
    (root / "empty").mkdir()
    os.symlink(root / "nowhere" / "x", root / "dangling")
    gone = str(root / "nowhere" / "x")
    return {
        "empty-string": ("", "The 'output' parameter must be a non-empty path. Got '' instead."),
        "file": (str(root / "file"), f"{root / 'file'}: destination already exists; choose a new path or "
                                     "delete it"),
        "non-empty-dir": (str(root / "full"), f"{root / 'full'}: destination already exists; choose a new "
                                              "path or delete it"),
        "empty-dir": (str(root / "empty"), f"{root / 'empty'}: destination already exists; choose a new path "
                                           "or delete it"),
        "dangling": (str(root / "dangling"), f"{root / 'dangling'}: expected a new output path, found a "
                                             f"dangling symbolic link (to {gone!r})"),
        "under-dangling": (str(root / "dangling" / "p"), f"{root / 'dangling' / 'p'}: expected "
                                                         f"{root / 'dangling'} to be a directory, found a "
                                                         f"dangling symbolic link (to {gone!r})"),
        "under-file": (str(root / "file" / "p"), f"{root / 'file' / 'p'}: expected {root / 'file'} to be a "
                                                 "directory, found a file"),
        "in-dataset": (f"{data}/p", f"{data}/p: expected an output outside the dataset {data}, found a path "
                                    "inside it"),
        "model-dir": (f"file://{model_dir}/",
                      f"file://{model_dir}/: destination already exists; choose a new path or delete it"),
        "in-model-dir": (f"{model_dir}/sub/p", f"{model_dir}/sub/p: expected an output outside the model "
                                               f"directory {model_dir}, found a path inside it"),
        "via-link": (str(root / "link" / "p"), f"{root / 'link' / 'p'}: expected an output outside the "
                                               f"dataset {data}, found a path inside it"),
    }


OUTPUT_CASES = ["empty-string", "file", "non-empty-dir", "empty-dir", "dangling", "under-dangling",
                "under-file", "in-dataset", "model-dir", "in-model-dir", "via-link"]


@pytest.mark.parametrize("case", OUTPUT_CASES)
def test_predict_refuses_a_bad_output_before_any_job(tmp_path, capsys, trained, no_jobs, case):
    _, data, model_dir = trained
    os.symlink(data, tmp_path / "link")
    output, message = _outputs(tmp_path, data, model_dir)[case]
    before, model_files = tree(tmp_path), tree(model_dir)
    status, out, err = run(capsys, "predict", data, "--model-dir", model_dir, "--output", output,
                           "--runner", "inline")
    assert (status, out, err) == (2, "", [f"mrtrain: error: {message}"])
    assert tree(tmp_path) == before and tree(model_dir) == model_files


def test_predict_refuses_an_output_whose_parent_is_not_writable(tmp_path, capsys, trained, no_jobs,
                                                                monkeypatch):
    _, data, model_dir = trained
    monkeypatch.setattr(cli.os, "access", lambda path, *args, **kwargs: path != str(tmp_path / "ro"))
    (tmp_path / "ro").mkdir()
    status, _, err = run(capsys, "predict", data, "--model-dir", model_dir, "--output",
                         str(tmp_path / "ro" / "new" / "p"), "--runner", "inline")
    assert (status, err) == (2, [f"mrtrain: error: {tmp_path / 'ro' / 'new' / 'p'}: expected a writable "
                                 f"directory {tmp_path / 'ro'}, found it read-only for this user"])


@pytest.mark.parametrize("dest", ["", "dangling"])
def test_ingest_refuses_a_bad_destination_before_converting(tmp_path, capsys, dest):
    source = tmp_path / "s.csv"
    source.write_text("a,label\n1,0\n2,1\n")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    target = str(tmp_path / dest) if dest else ""
    status, _, err = run(capsys, "ingest", str(source), target)
    expected = ("The 'dest' parameter must be a non-empty path. Got '' instead." if not dest else
                f"{target}: expected a new output path, found a dangling symbolic link (to "
                f"{str(tmp_path / 'nowhere')!r})")
    assert (status, err) == (2, [f"mrtrain: error: {expected}"])
    assert tree(tmp_path) == ["dangling", "s.csv"]


@pytest.mark.parametrize("where", ["data", "data/ck", "file"])
def test_train_refuses_a_checkpoint_dir_in_the_dataset_or_on_a_file(tmp_path, capsys, trained, no_jobs,
                                                                    where):
    _, data, _ = trained
    (tmp_path / "file").write_text("x")
    ck = str(tmp_path / "file") if where == "file" else data + where.removeprefix("data")
    status, _, err = run(capsys, "train", data, "--model", "logistic", "--runner", "inline",
                         "--checkpoint-dir", ck)
    expected = (f"{ck}: expected a checkpoint directory, found a file" if where == "file" else
                f"{ck}: expected a checkpoint directory outside the dataset {data}, found "
                + ("the dataset itself" if where == "data" else "a path inside it"))
    assert (status, err) == (2, [f"mrtrain: error: {expected}"])


# --- reducers -----------------------------------------------------------------------------------------

def test_reducers_are_capped_at_the_summed_vector_length(capsys, caplog, monkeypatch, trained):
    _, data, _ = trained
    used = []
    init = JobLauncher.__init__

    def spy(self, *args, **kwargs):
        used.append(kwargs["reducers"])
        init(self, *args, **kwargs)

    monkeypatch.setattr(JobLauncher, "__init__", spy)
    results = []
    for reducers in ("1", "100000"):
        caplog.clear()
        assert main(["-q", "train", data, "--model", "logistic", "--l2", "0.1", "--max-iter", "4", "--runner",
                     "inline", "--reducers", reducers, "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    model = make_model("logistic", 3, classes=[0.0, 1.0])
    gradient, metrics = model.n_params + 2, metric_vector_length(model)
    assert used == [1, 1, gradient, metrics]
    assert results[0] == results[1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "reducers" in
                r.getMessage()]
    assert warnings == [
        f"--reducers 100000: the gradient job sums a vector of {gradient} elements; using {gradient} "
        "reducers (one element each at least)",
        f"--reducers 100000: the evaluate job sums a vector of {metrics} elements; using {metrics} reducers "
        "(one element each at least)",
    ]


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "d", "--model", "lasso"], "argument --model: invalid choice: 'lasso' (choose from 'linear', "
                                         "'logistic', 'softmax', 'poisson', 'linear-svc', 'multinomial-nb', "
                                         "'bernoulli-nb', 'gaussian-nb', 'kmeans', 'mlp', 'gbt', "
                                         "'random-forest') (see 'mrtrain train --help')"),
    (["predict", "d", "--model-dir", "ck"], "the following arguments are required: --output (see 'mrtrain "
                                            "predict --help')"),
    (["inspect", "ck", "--bogus"], "unrecognized arguments: --bogus (see 'mrtrain --help')"),
])
def test_usage_errors_are_one_line_pointing_to_help(capsys, argv, message):
    assert refused_by_argparse(capsys, *argv) == f"mrtrain: error: {message}"
