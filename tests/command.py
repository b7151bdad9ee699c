"""Running the ``mrtrain`` command inside a test, and looking at what it left on disk."""

import json
from pathlib import Path

import pyarrow.parquet as pq

from mrtrain.cli import main


def run(capsys, *argv):
    """``mrtrain -q ARGV`` in this process: (exit status, stdout, stderr lines)."""
    status = main(["-q", *argv])
    out, err = capsys.readouterr()
    return status, out, err.strip().splitlines()


def tree(path):
    """Every file and folder under ``path``, relative and sorted."""
    return sorted(str(p.relative_to(path)) for p in Path(path).rglob("*"))


def evaluate_json(capsys, data, model_dir, *options):
    """``mrtrain evaluate DATA --model-dir MODEL_DIR --json``: its metrics (the command must succeed)."""
    status, out, err = run(capsys, "evaluate", data, "--model-dir", model_dir, *options, "--json")
    assert status == 0, err
    return json.loads(out)["metrics"]


def predict_tables(capsys, data, model_dir, output, *options):
    """``mrtrain predict DATA --model-dir MODEL_DIR --output OUTPUT``: the written Parquet tables, in
    partition order (the command must succeed)."""
    status, _, err = run(capsys, "predict", data, "--model-dir", model_dir, "--output", str(output), *options)
    assert status == 0, err
    return [pq.read_table(path) for path in sorted(Path(output).glob("part-*.parquet"))]


def probabilities(tables):
    """The ``probability_<class>`` columns of prediction tables as one (n, K) array, classes in order."""
    import numpy as np

    names = [name for name in tables[0].column_names if name.startswith("probability_")]
    return np.concatenate([np.column_stack([t.column(name).to_numpy() for name in names]) for t in tables])
