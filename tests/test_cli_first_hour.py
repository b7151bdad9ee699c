"""Small things a user hits in the first hour with the ``mrtrain`` command, typed as a user types them:
``-q`` after the subcommand, ``mrtrain inspect ck | head`` ending quietly, a Poisson model without
``classes``, the CV table's separated columns, grid progress lines naming their model, ``--version``, and
plain-text help with ``train``'s options grouped by family."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import mrtrain
from mrtrain.cli import BROKEN_PIPE, main
from mrtrain.engine.grid import grid_table_lines
from tests.datasets import poisson_data, reference_data, write

COMMANDS = ("ingest", "train", "evaluate", "predict", "inspect", "report")


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    X, y = reference_data("breast_cancer")
    return write(tmp_path_factory.mktemp("cancer") / "data", X[:, :6], y, partitions=2)


@pytest.fixture(scope="module")
def model_dir(cancer, tmp_path_factory):
    checkpoints = str(tmp_path_factory.mktemp("model") / "ck")
    assert main(["-q", "train", cancer, "--model", "logistic", "--optimizer", "newton", "--runner", "inline",
                 "--checkpoint-dir", checkpoints, "--no-metrics"]) == 0
    return checkpoints


def mrtrain_command(*argv, **options):
    """``mrtrain ARGV`` in a new process, as a shell runs it."""
    return subprocess.run([sys.executable, "-m", "mrtrain", *argv], capture_output=True, text=True,
                          **options)


def test_quiet_and_verbose_are_accepted_after_the_subcommand(cancer, tmp_path, capsys):
    argv = ["train", cancer, "--model", "logistic", "--optimizer", "newton", "--runner", "inline",
            "--no-metrics"]
    assert main(argv) == 0
    assert "iter" in capsys.readouterr().err  # progress lines without -q
    for quiet in (["-q"], ["--quiet"]):
        assert main([*argv, *quiet]) == 0
        captured = capsys.readouterr()
        assert captured.err == "" and "converged: True" in captured.out
    assert main(["-q", *argv]) == 0 and capsys.readouterr().err == ""  # before it, as ever
    assert main([*argv, "-q", "-v"]) == 0 and capsys.readouterr().err == ""


def test_inspect_into_a_closed_pipe_ends_quietly(model_dir):
    read, write_end = os.pipe()
    os.close(read)  # the reader is gone before mrtrain prints: every write fails with EPIPE
    try:
        process = subprocess.run([sys.executable, "-m", "mrtrain", "inspect", model_dir], stdout=write_end,
                                 stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write_end)
    assert process.returncode == BROKEN_PIPE == 141
    assert process.stderr == ""  # no "[Errno 32] Broken pipe", no traceback
    shell = subprocess.run(["bash", "-c", f'{sys.executable} -m mrtrain inspect "$1" | head -1; '
                                          'echo "${PIPESTATUS[0]}" >&2', "-", model_dir],
                           capture_output=True, text=True)
    assert shell.stdout.startswith("model        logistic")
    assert shell.stderr.strip() in ("0", "141")  # nothing but the exit status


def test_poisson_model_lists_no_classes(tmp_path, capsys):
    X, y = poisson_data(n=200)
    source = tmp_path / "counts.csv"
    source.write_text("a,b,c,d,label\n" + "\n".join(",".join(repr(float(v)) for v in (*row, label))
                                                    for row, label in zip(X, y, strict=True)) + "\n")
    assert main(["-q", "ingest", str(source), str(tmp_path / "counts")]) == 0
    out = capsys.readouterr().out
    assert not re.search(r"^\s*classes:", out, re.M)  # counts are label values, not classes
    assert re.search(r"^\s*label values: \[0\.0, 1\.0, 2\.0", out, re.M)
    assert "encoding: None" not in out
    assert main(["-q", "train", str(tmp_path / "counts"), "--model", "poisson", "--runner", "inline",
                 "--no-metrics"]) == 0
    out = capsys.readouterr().out
    assert "classes" not in out and "None" not in out
    assert main(["-q", "train", str(tmp_path / "counts"), "--model", "poisson", "--runner", "inline",
                 "--no-metrics", "--json"]) == 0
    assert '"classes": null' in capsys.readouterr().out  # JSON keeps every key


def test_cv_table_columns_are_separated():
    rows = [{"candidate": c, "l1": l1, "l2": 0.0, "lambda": l1, "alpha": 1.0, "selected": c == 1,
             "metric": "accuracy", "validation_loss_mean": 0.123456789 * (c + 1),
             "validation_loss_std": 0.0123,
             "accuracy_mean": 0.95, "accuracy_std": 0.01, "iterations": list(range(100, 110))}
            for c, l1 in enumerate([123456.789, 1.23456e-05])]
    lines = grid_table_lines(rows)
    assert lines[0] == "candidates:"
    header = re.split(r"\s{2,}", lines[1].strip())
    assert header == ["l1", "l2", "lambda", "alpha", "validation loss", "accuracy", "iterations", "selected"]
    for line in lines[2:]:
        fields = re.split(r"\s{2,}", line.strip())
        assert len(fields) in (len(header) - 1, len(header))  # the selected mark is the last field
    assert lines[3].endswith("*") and not lines[2].endswith("*")
    assert "100,101,102,103,104,105,106,107,108,109" in lines[2]


def test_grid_progress_lines_name_their_model(cancer, tmp_path, capsys):
    assert main(["train", cancer, "--model", "logistic", "--reg", "0.01,0.1", "--cv", "2", "--max-iter", "5",
                 "--runner", "inline", "--no-metrics"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "iter" in line]
    assert lines
    pattern = (r"^model \d+ of 6 \(l1 0, l2 (0\.01|0\.1); (fold \d of 2|refit on all rows)\)  "
               r"iter +\d+  objective")
    assert all(re.match(pattern, line) for line in lines), lines[:3]


def test_version():
    process = mrtrain_command("--version")
    assert process.returncode == 0 and process.stdout == f"mrtrain {mrtrain.__version__}\n"


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_is_plain_text(command):
    process = mrtrain_command(*([command] if command else []), "--help")
    assert process.returncode == 0 and process.stderr == ""
    for markup in ("``", ":class:", ":func:", ":mod:"):
        assert markup not in process.stdout
    if command is None:
        assert "The mrtrain command line: ingest, train, evaluate, predict, inspect, report." in (
            process.stdout)


def test_train_help_groups_options_by_family():
    text = mrtrain_command("train", "--help").stdout
    groups = ["model:", "penalty:", "penalty lists, paths and model selection:",
              "optimizer and stopping rule:", "checkpoints:", "output:", "execution:"]
    starts = [text.index("\n" + group + "\n") for group in groups]
    assert starts == sorted(starts)
    sections = dict(zip(groups, [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)],
                        strict=True))
    for group, options in {"model:": ["--model", "--layers"], "penalty:": ["--l2", "--reg", "--standardize"],
                           "penalty lists, paths and model selection:": ["--cv", "--reg-path"],
                           "optimizer and stopping rule:": ["--optimizer", "--tol", "--gtol"],
                           "checkpoints:": ["--checkpoint-dir"], "output:": ["--json", "--inference"],
                           "execution:": ["--runner", "--allreduce"]}.items():
        for option in options:
            assert re.search(rf"^  {option}\b", sections[group], re.M), (group, option)


def test_binary_coef_shape_is_scikit_learns():
    from sklearn import linear_model

    from mrtrain import LogisticRegression

    X, y = reference_data("breast_cancer")
    ours = LogisticRegression(l2=1e-2, optimizer="newton", gtol=1e-10).fit(X, y)
    ref = linear_model.LogisticRegression(C=1 / (len(y) * 1e-2), solver="newton-cholesky",
                                          tol=1e-12).fit(X, y)
    assert ours.coef_.shape == ref.coef_.shape == (1, X.shape[1])
    assert ours.intercept_.shape == ref.intercept_.shape == (1,)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-6)
    np.testing.assert_allclose(ours.decision_function(X), ref.decision_function(X), atol=1e-5)
