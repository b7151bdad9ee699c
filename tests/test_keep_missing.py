"""``ingest --keep-missing`` (issue 23, item 2): missing numeric features are stored as NaN, the manifest
records it, every read keeps them, and the models that cannot take a missing value refuse the dataset with
one line naming ``--impute``, writing nothing."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mrtrain.storage.dataset import Dataset, write_dataset
from mrtrain.storage.errors import DataError
from mrtrain.storage.ingest import ingest
from tests.command import run, tree

CSV = "a,b,c,label\n1,,x,0\n2,3,y,1\nnan,4,x,0\n5,6,y,1\n7,8,x,1\n"
#: The CSV's numeric features as ingested with --keep-missing: the empty field and 'nan' are NaN.
FEATURES = np.array([[1, np.nan], [2, 3], [np.nan, 4], [5, 6], [7, 8]])


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text(CSV)
    return tmp_path


def refused(capsys, *argv):
    """Run ``mrtrain ARGV``: it must exit 2 with one line; that line."""
    status, out, err = run(capsys, *argv)
    assert status == 2 and len(err) == 1 and out == "", (status, out, err)
    return err[0]


def test_csv_keeps_missing_values_as_nan(scratch, capsys):
    status, out, err = run(capsys, "ingest", "m.csv", "d", "--keep-missing", "--keep", "c", "--json")
    assert status == 0, err
    assert json.loads(out)["missing"] == "kept as NaN"
    manifest = json.loads((scratch / "d" / "_dataset.json").read_text())
    assert manifest["missing"] is True
    dataset = Dataset.open("d")
    X, y, _ = dataset.read_all()
    assert dataset.has_missing and dataset.layout == "dense"
    np.testing.assert_array_equal(X, FEATURES)  # NaN where missing, every other value as given
    np.testing.assert_array_equal(y, [0, 1, 0, 1, 1])


def test_parquet_nulls_and_categorical_columns(scratch):
    pq.write_table(pa.table({"a": [1.0, None, 3.0], "c": ["x", "y", "x"], "label": [0, 1, 1]}), "m.parquet")
    dense = ingest("m.parquet", "p", keep="c".split(), keep_missing=True).read_all()[0]
    np.testing.assert_array_equal(dense, [[1], [np.nan], [3]])
    # Categorical columns: a csr dataset whose stored values hold the NaN; --like passes the handling on.
    encoded = ingest("m.parquet", "q", categorical=["c"], keep_missing=True)
    X = encoded.read_all()[0]
    assert encoded.layout == "csr" and np.isnan(X.toarray()[1, 0]) and X.toarray()[0, 0] == 1
    assert ingest("m.parquet", "r", like="q").has_missing


def test_without_keep_missing_nothing_changes(scratch, capsys):
    line = refused(capsys, "ingest", "m.csv", "d", "--keep", "c")
    assert "(a missing value: pass --impute zero or mean)" in line
    assert tree(scratch) == ["m.csv"]
    (scratch / "e.csv").write_text(CSV.replace("nan", ""))
    dataset = ingest("e.csv", "d", keep=["c"], impute="zero")
    assert not dataset.has_missing and "missing" not in dataset.manifest


@pytest.mark.parametrize("argv, expected", [
    (["--keep-missing", "--impute", "zero"], "argument --impute: not allowed with argument --keep-missing"),
    (["--keep-missing", "--like", "d0"], "'like' parameter takes the missing values' handling"),
])
def test_keep_missing_refuses_impute_and_like(scratch, capsys, argv, expected):
    assert run(capsys, "ingest", "m.csv", "d0", "--keep", "c", "--keep-missing")[0] == 0
    assert expected in refused(capsys, "ingest", "m.csv", "d", "--keep", "c", *argv)
    assert not (scratch / "d").exists()


def test_an_infinity_is_no_missing_value(scratch, capsys):
    (scratch / "inf.csv").write_text("a,label\n1,0\ninf,1\n")
    line = refused(capsys, "ingest", "inf.csv", "d", "--keep-missing")
    assert "line 3: column 'a': expected a finite number or a missing value, found inf" in line
    with pytest.raises(DataError, match="row 2: feature 0: expected a finite number or NaN .missing., found"):
        write_dataset(str(scratch / "w"), np.array([[1.0], [np.inf]]), np.zeros(2), missing=True)
    with pytest.raises(DataError, match="row 1: label: expected a finite number, found nan"):
        write_dataset(str(scratch / "w"), np.ones((1, 1)), np.array([np.nan]), missing=True)
    assert not (scratch / "w").exists()


def test_manifest_field_is_checked(scratch):
    write_dataset(str(scratch / "w"), FEATURES, np.zeros(5), missing=True)
    path = scratch / "w" / "_dataset.json"
    manifest = json.loads(path.read_text())
    manifest["missing"] = False
    from mrtrain.storage.dataset import manifest_checksum

    manifest["checksum"] = manifest_checksum(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="_dataset.json: missing: expected true .or no key., found False"):
        Dataset.open(str(scratch / "w"))
    # A dataset that does not record it refuses the NaN its partition holds.
    del manifest["missing"]
    manifest["checksum"] = manifest_checksum(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="feature 1: expected a finite number, found nan"):
        Dataset.open(str(scratch / "w")).read_all()


@pytest.mark.parametrize("model", ["linear", "logistic", "softmax", "poisson", "linear-svc", "mlp",
                                   "gaussian-nb", "multinomial-nb", "bernoulli-nb", "kmeans"])
def test_models_without_missing_values_refuse_the_dataset(scratch, capsys, model):
    assert run(capsys, "ingest", "m.csv", "d", "--keep", "c", "--keep-missing")[0] == 0
    line = refused(capsys, "train", "d", "--model", model, "--checkpoint-dir", "ck",
                   *(["--k", "2"] if model == "kmeans" else []))
    assert line == (f"mrtrain: error: {scratch}/d: expected a dataset without missing values for model "
                    f"{model!r}, found one ingested with --keep-missing (NaN features); ingest the source "
                    "with --impute zero or mean instead")
    assert not (scratch / "ck").exists()


def test_evaluate_and_predict_refuse_it_too(scratch, capsys):
    (scratch / "e.csv").write_text(CSV.replace("nan", ""))
    assert run(capsys, "ingest", "e.csv", "full", "--keep", "c", "--impute", "mean")[0] == 0
    assert run(capsys, "train", "full", "--model", "logistic", "--checkpoint-dir", "ck",
               "--max-iter", "2")[0] == 0
    assert run(capsys, "ingest", "m.csv", "d", "--keep", "c", "--keep-missing")[0] == 0
    expected = "found one ingested with --keep-missing (NaN features); ingest the source with --impute"
    assert expected in refused(capsys, "evaluate", "d", "--model-dir", "ck")
    assert expected in refused(capsys, "predict", "d", "--model-dir", "ck", "--output", "out")
    assert not (scratch / "out").exists()
