"""The ``mrtrain`` command line: the demo, JSON output, and one-line errors with exit status 2."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mrtrain.cli import main
from tests.datasets import reference_data, write

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mrtrain", *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_demo_prints_iris_accuracy_of_at_least_095():
    result = subprocess.run(["bash", str(ROOT / "scripts" / "demo")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"^\s+accuracy: ([0-9.]+)$", result.stdout, re.M).group(1))
    assert accuracy >= 0.95
    assert re.search(r"^\s+rows: 150$", result.stdout, re.M)


def test_train_json_has_the_documented_keys(tmp_path, capsys):
    data = str(tmp_path / "iris")
    assert main(["-q", "ingest", str(ROOT / "data" / "iris.libsvm"), data, "--partitions", "3"]) == 0
    capsys.readouterr()
    assert main(["-q", "train", data, "--model", "softmax", "--optimizer", "newton", "--l2", "0.01",
                 "--runner", "inline", "--checkpoint-dir", str(tmp_path / "ck"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("model", "coefficients", "intercept", "classes", "iterations", "passes", "objective",
                "converged", "metrics"):
        assert key in result
    assert result["classes"] == [0.0, 1.0, 2.0]
    assert len(result["coefficients"]) == 3 and len(result["coefficients"][0]) == 4
    assert result["metrics"]["accuracy"] >= 0.95
    assert main(["inspect", str(tmp_path / "ck"), "--json"]) == 0
    inspected = json.loads(capsys.readouterr().out)
    assert inspected["coefficients"] == result["coefficients"]
    assert inspected["checkpoints"] == list(range(result["iterations"] + 1))
    assert main(["evaluate", data, "--model-dir", str(tmp_path / "ck"), "--runner", "inline", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == result["metrics"]


def test_map_only_and_uncached_training_print_the_same_model(tmp_path, capsys):
    """``--reducers 0`` and ``--no-partition-cache`` change how a pass runs, never the model or metrics."""
    data = str(tmp_path / "iris")
    assert main(["-q", "ingest", str(ROOT / "data" / "iris.libsvm"), data, "--partitions", "3"]) == 0
    results = []
    for extra in ([], ["--reducers", "0"], ["--no-partition-cache"]):
        capsys.readouterr()
        assert main(["-q", "train", data, "--model", "softmax", "--optimizer", "newton", "--l2", "0.01",
                     "--runner", "local", "--json", *extra]) == 0
        result = json.loads(capsys.readouterr().out)
        results.append({key: result[key] for key in ("coefficients", "intercept", "objective", "metrics")})
    assert results[1] == results[0] and results[2] == results[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--l2", "-1"], "The 'l2' parameter must be a finite float >= 0. Got -1.0 instead."),
        (["--max-iter", "0"], "The 'max_iter' parameter must be an int >= 1. Got 0 instead."),
        (["--tol", "nan"], "The 'tol' parameter must be a finite float >= 0. Got nan instead."),
    ],
)
def test_bad_parameter_exits_2_with_one_line(tmp_path, args, message):
    X, y = reference_data("iris")
    data = write(tmp_path / "d", X, y)
    result = run_cli("train", data, "--model", "softmax", "--runner", "inline",
                     "--checkpoint-dir", str(tmp_path / "ck"), *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"mrtrain: error: {message}"]
    assert result.stdout == ""
    assert not (tmp_path / "ck").exists()


def test_missing_dataset_and_missing_manifest(tmp_path):
    result = run_cli("train", str(tmp_path / "nope"), "--model", "linear", "--runner", "inline")
    assert result.returncode == 2
    assert "nope: dataset directory does not exist" in result.stderr
    (tmp_path / "empty").mkdir()
    result = run_cli("train", str(tmp_path / "empty"), "--model", "linear", "--runner", "inline")
    assert result.returncode == 2
    assert "not an mrtrain dataset: no _dataset.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_csv_row_is_named_and_nothing_is_written(tmp_path):
    source = tmp_path / "bad.csv"
    source.write_text("a,b,label\n1,2,0\n3,x,1\n")
    result = run_cli("ingest", str(source), str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mrtrain: error: {source}: line 3: column 'b': expected a number, found 'x'"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_inspect_prints_a_readable_summary(tmp_path, capsys):
    X, y = reference_data("iris")
    data, model = write(tmp_path / "iris", X, y), str(tmp_path / "model")
    assert main(["-q", "train", data, "--model", "softmax", "--optimizer", "newton", "--l2", "0.01",
                 "--checkpoint-dir", model, "--no-metrics"]) == 0
    capsys.readouterr()
    assert main(["inspect", model]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "model        softmax (3 classes: 0, 1, 2), 4 features, intercept"
    assert lines[3].startswith("result       converged after ")
    assert lines[6] == "coefficients largest |value| first (10 of 12):"
    magnitudes = [abs(float(line.split()[-1])) for line in lines[7:17]]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert lines[-1].startswith("intercept    ")
