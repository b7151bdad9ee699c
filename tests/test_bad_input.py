"""Bad input through the ``mrtrain`` command: exit status 2, one line naming the file and the row or field
with what was expected and what was found, and nothing (partial or temporary) written."""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mrtrain.cli import main
from mrtrain.storage import dataset as dataset_module
from mrtrain.storage.dataset import encode_partition
from tests.command import run, tree
from tests.datasets import poisson_data, reference_data, write

ROOT = Path(__file__).resolve().parent.parent


def cli(*args):
    return subprocess.run([sys.executable, "-m", "mrtrain", "-q", *args], capture_output=True, text=True,
                          cwd=ROOT)


@pytest.mark.parametrize(
    ("name", "text", "options", "message"),
    [
        ("d.csv", "a,b,label\n1,2,0\n3,4\n", [], "line 3: expected 3 columns, found 2"),
        ("d.csv", "a,b,label\n1,2,0\n3,4,1,5\n", [], "line 3: expected 3 columns, found 4"),
        ("d.csv", "a,b,label\n1,2,0\n3,x,1\n", [], "line 3: column 'b': expected a number, found 'x'"),
        ("d.csv", "a,b,label\n1,nan,0\n", [], "line 2: column 'b': expected a finite number, found nan"),
        ("d.csv", "a,b,label\n1,2,0\n1,2,inf\n", [], "line 3: column 'label': expected a finite number, "
                                                     "found inf"),
        ("d.csv", "a,b,label\n1,2,0\n", ["--label", "y"], "label column 'y' not found; available columns: "
                                                          "['a', 'b', 'label']"),
        ("d.csv", "a,b,label\n", [], "no rows: expected at least one data row, found 0"),
        ("d.libsvm", "1 1:2\n0 2=3\n", [], "line 2: expected index:value, found '2=3'"),
        ("d.libsvm", "1 1:2\n0 1:two\n", [], "line 2: expected index:value, found '1:two'"),
        ("d.libsvm", "1 0:2\n", [], "line 1: expected a 1-based index >= 1, found '0:2'"),
        ("d.libsvm", "1 -1:2\n", [], "line 1: expected a 1-based index >= 1, found '-1:2'"),
        ("d.libsvm", "1 1:1 3:2 2:1\n", [], "line 1: expected strictly increasing indices (previous 3), "
                                            "found '2:1'"),
        ("d.libsvm", "1 1:1\n0 2:1 2:5\n", [], "line 2: expected strictly increasing indices (previous 2), "
                                               "found '2:5'"),
        ("d.libsvm", "1 1:1\n0 2:inf\n", [], "line 2: column 'feature 1': expected a finite number, "
                                             "found inf"),
        ("d.libsvm", "nan 1:1\n", [], "line 1: column 'label': expected a finite number, found nan"),
    ],
)
def test_malformed_source_is_one_line_and_writes_nothing(tmp_path, capsys, name, text, options, message):
    source = tmp_path / name
    source.write_text(text)
    status, out, err = run(capsys, "ingest", str(source), str(tmp_path / "out"), *options)
    assert (status, out) == (2, "")
    assert err == [f"mrtrain: error: {source}: {message}"]
    assert tree(tmp_path) == [name]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.array([[1.0, np.inf]]), "y": np.array([1.0])},
         r"row 1: column 'feature 1': expected a finite number, found inf"),
        ({"X": np.ones((2, 2)), "y": np.array([1.0, np.nan])},
         r"row 2: column 'label': expected a finite number, found nan"),
        ({"X": np.ones((2, 2)), "y": np.ones(3)}, r"array 'y': expected shape \(2,\), found \(3,\)"),
    ],
)
def test_non_finite_or_misshapen_npz(tmp_path, capsys, arrays, message):
    source = tmp_path / "d.npz"
    np.savez(source, **arrays)
    status, _, err = run(capsys, "ingest", str(source), str(tmp_path / "out"))
    assert status == 2 and len(err) == 1
    assert re.search(message, err[0]) and err[0].startswith(f"mrtrain: error: {source}"), err
    assert tree(tmp_path) == ["d.npz"]


def test_missing_source_and_existing_destination(tmp_path, capsys):
    status, _, err = run(capsys, "ingest", str(tmp_path / "none.csv"), str(tmp_path / "out"))
    assert status == 2 and len(err) == 1 and "none.csv" in err[0]
    source = tmp_path / "d.csv"
    source.write_text("a,label\n1,0\n")
    (tmp_path / "out").mkdir()
    status, _, err = run(capsys, "ingest", str(source), str(tmp_path / "out"))
    assert status == 2 and err == [
        f"mrtrain: error: {tmp_path / 'out'}: destination already exists; choose a new path or delete it"
    ]


@pytest.mark.parametrize(
    ("data", "model", "message"),
    [
        ("iris", "logistic", r"Model 'logistic' needs exactly 2 classes \(for more classes use model "
                             r"'softmax'\)\. Got 3 classes: \[0.0, 1.0, 2.0\]"),
        ("diabetes", "logistic", r"d: field 'label': expected class labels for logistic, found "
                                 r"non-integer or more than 1000 distinct label values"),
        ("diabetes", "softmax", r"d: field 'label': expected class labels for softmax"),
    ],
)
def test_labels_invalid_for_the_model_are_refused_before_any_job(tmp_path, capsys, data, model, message):
    X, y = reference_data(data)
    path = write(tmp_path / "d", X, y + 0.5 if data == "diabetes" else y)
    status, out, err = run(capsys, "train", path, "--model", model, "--runner", "inline", "--checkpoint-dir",
                           str(tmp_path / "ck"))
    assert (status, out, len(err)) == (2, "", 1)
    assert re.search(message, err[0]), err
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_negative_poisson_target_names_partition_and_row(tmp_path, runner):
    X, y = poisson_data(n=90)
    y[65] = -3.0
    data = write(tmp_path / "d", X, y, partitions=3)
    result = cli("train", data, "--model", "poisson", "--runner", runner, "--checkpoint-dir",
                 str(tmp_path / "ck"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mrtrain: error: partition 2: {data}/part-00002.parquet: row 6: column 'label': Label -3.0 is not "
        f"valid for model 'poisson': labels must be finite and >= 0."
    ]
    assert not (tmp_path / "ck").exists()


def rewrite_partition(data, index, table):
    """Replace partition ``index`` and update the manifest consistently (size, sha256, checksum)."""
    path = Path(data) / f"part-{index:05d}.parquet"
    pq.write_table(table, path)
    content = path.read_bytes()
    manifest_path = Path(data) / "_dataset.json"
    manifest = json.loads(manifest_path.read_text())
    entry = manifest["partitions"][index]
    entry["sha256"] = hashlib.sha256(content).hexdigest()
    for key in ("bytes", "size"):
        if key in entry:
            entry[key] = len(content)
    manifest["checksum"] = dataset_module.manifest_checksum(manifest)
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (lambda X, y: pq.read_table(pa.BufferReader(encode_partition(X[:, :3], y))),
         r"partition 1: .*part-00001.parquet: column 'features': expected 4 features, found 3"),
        (lambda X, y: pa.table({"features": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), 4),
                                "label": pa.array(y.astype(np.int64))}),
         r"partition 1: .*part-00001.parquet: column 'label': expected type double, found int64"),
    ],
)
def test_partition_whose_schema_differs(tmp_path, capsys, table, message):
    X, y = reference_data("iris")
    data = write(tmp_path / "d", X, y, partitions=2)
    rewrite_partition(data, 1, table(X[75:], y[75:]))
    status, out, err = run(capsys, "train", data, "--model", "softmax", "--runner", "inline")
    assert (status, out, len(err)) == (2, "", 1)
    assert re.search(message, err[0]), err


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_partition_bytes_that_do_not_match_the_manifest(tmp_path, runner):
    X, y = reference_data("iris")
    data = write(tmp_path / "d", X, y, partitions=1)
    path = Path(data) / "part-00000.parquet"
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))
    result = cli("train", data, "--model", "softmax", "--runner", runner, "--checkpoint-dir",
                 str(tmp_path / "ck"))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert re.fullmatch(rf"mrtrain: error: partition 0: {re.escape(str(path))}: sha256 mismatch: expected "
                        r"[0-9a-f]{64}, found [0-9a-f]{64}", line), line
    assert not (tmp_path / "ck").exists()


def test_manifest_whose_checksum_does_not_match(tmp_path, capsys):
    X, y = reference_data("iris")
    data = write(tmp_path / "d", X, y, partitions=2)
    manifest_path = Path(data) / "_dataset.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["n_rows"] = 149
    manifest_path.write_text(json.dumps(manifest))
    status, _, err = run(capsys, "train", data, "--model", "softmax", "--runner", "inline")
    assert status == 2 and len(err) == 1
    assert f"{data}/_dataset.json" in err[0] and "checksum" in err[0], err


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_path_that_does_not_exist_and_directory_without_manifest(tmp_path, capsys, command):
    model_dir = tmp_path / "model"
    X, y = reference_data("iris")
    assert main(["-q", "train", write(tmp_path / "ok", X, y), "--model", "softmax", "--runner", "inline",
                 "--max-iter", "2", "--no-metrics", "--checkpoint-dir", str(model_dir)]) == 0
    capsys.readouterr()
    extra = {"train": ["--model", "softmax"], "evaluate": ["--model-dir", str(model_dir)],
             "predict": ["--model-dir", str(model_dir), "--output", str(tmp_path / "pred")]}[command]
    (tmp_path / "empty").mkdir()
    for data, message in [(tmp_path / "nope", "nope: dataset directory does not exist"),
                          (tmp_path / "empty", "empty: not an mrtrain dataset: no _dataset.json")]:
        status, out, err = run(capsys, command, str(data), *extra, "--runner", "inline")
        assert (status, out, len(err)) == (2, "", 1)
        assert message in err[0]
    assert not (tmp_path / "pred").exists()


def test_model_dir_without_checkpoints(tmp_path, capsys):
    X, y = reference_data("iris")
    data = write(tmp_path / "d", X, y)
    status, _, err = run(capsys, "evaluate", data, "--model-dir", str(tmp_path / "none"),
                         "--runner", "inline")
    assert status == 2 and err == [f"mrtrain: error: {tmp_path / 'none'}: no valid checkpoint found"]


def test_failed_predict_leaves_no_partial_output(tmp_path, capsys):
    X, y = reference_data("iris")
    data = write(tmp_path / "d", X, y, partitions=3)
    model_dir = str(tmp_path / "model")
    assert main(["-q", "train", data, "--model", "softmax", "--runner", "inline", "--max-iter", "2",
                 "--no-metrics", "--checkpoint-dir", model_dir]) == 0
    path = Path(data) / "part-00002.parquet"
    path.write_bytes(path.read_bytes()[:-10])
    capsys.readouterr()
    # Without the partition cache: training cached the partition's verified bytes, and with it
    # predict would read those instead of the damaged file.
    status, _, err = run(capsys, "predict", data, "--model-dir", model_dir, "--no-partition-cache",
                         "--output", str(tmp_path / "pred"), "--runner", "inline")
    assert status == 2 and len(err) == 1 and "partition 2: " in err[0] and "part-00002.parquet" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "model"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keep-checkpoints", "0"], "The 'keep_checkpoints' parameter must be an int >= 1. Got 0 instead."),
        (["--gtol", "inf"], "The 'gtol' parameter must be a finite float >= 0. Got inf instead."),
        (["--l2", "nan"], "The 'l2' parameter must be a finite float >= 0. Got nan instead."),
    ],
)
def test_more_parameters_out_of_range(tmp_path, capsys, args, message):
    X, y = reference_data("iris")
    data = write(tmp_path / "d", X, y)
    status, _, err = run(capsys, "train", data, "--model", "softmax", "--runner", "inline",
                         "--checkpoint-dir", str(tmp_path / "ck"), *args)
    assert status == 2 and err == [f"mrtrain: error: {message}"]
    assert not (tmp_path / "ck").exists()


def test_corrupt_only_checkpoint_directory_is_refused_with_one_warning(tmp_path):
    directory = tmp_path / "ck"
    directory.mkdir()
    (directory / "ckpt-000003.parquet").write_bytes(b"PAR1 truncated")
    result = cli("inspect", str(directory))
    err = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert err[-1] == f"mrtrain: error: {directory}: no valid checkpoint found"
    assert len(err) == 2 and "skipping invalid checkpoint" in err[0] and "ckpt-000003.parquet" in err[0]
    assert os.listdir(directory) == ["ckpt-000003.parquet"]
