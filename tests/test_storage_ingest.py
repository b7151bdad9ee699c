"""Tests for mrtrain.storage.ingest: CSV, libsvm, wide Parquet and npz sources."""

import os
import pathlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mrtrain.storage.errors import DataError
from mrtrain.storage.ingest import ingest

IRIS = pathlib.Path(__file__).resolve().parent.parent / "data" / "iris.libsvm"


def make_data(n=20, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[0, 0] = -0.0
    return X, rng.integers(0, 2, size=n).astype(np.float64), rng.random(n)


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return str(path)


def test_csv_round_trip_is_bitwise(tmp_path):
    X, y, w = make_data()
    rows = [[repr(float(v)) for v in (X[i, 0], y[i], X[i, 1], w[i], X[i, 2])]
            for i in range(len(y))]
    src = write_csv(tmp_path / "d.csv", ["a", "target", "b", "wt", "c"], rows)
    ds = ingest(src, str(tmp_path / "ds"), label="target", weight="wt", partitions=2)
    X2, y2, w2 = ds.read_all()
    assert X2.tobytes() == X.tobytes() and y2.tobytes() == y.tobytes()
    assert w2.tobytes() == w.tobytes()
    assert ds.feature_names == ["a", "b", "c"]
    assert (ds.manifest["label"]["name"], ds.manifest["weight"]) == ("target", "wt")
    assert ds.classes == [0.0, 1.0] and len(ds.partitions) == 2


def test_csv_skips_blank_lines(tmp_path):
    src = tmp_path / "d.csv"
    src.write_text("x,label\n1,0\n\n2,1\n")
    X, y, _ = ingest(str(src), str(tmp_path / "ds")).read_all()
    assert X.tolist() == [[1.0], [2.0]] and y.tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    ("text", "kwargs", "match"),
    [
        ("x,y,label\n1,2,0\n1,2\n", {}, r"d.csv: line 3: expected 3 columns, found 2"),
        ("x,y,label\n1,2,0\n\n1,2,3,4\n", {}, r"d.csv: line 4: expected 3 columns, found 4"),
        ("x,y,label\n1,2,0\n1,abc,1\n", {}, r"d.csv: line 3: column 'y': expected a number, "
                                            r"found 'abc'"),
        ("x,y,label\n1,,0\n", {}, r"d.csv: line 2: column 'y': expected a number, found ''"),
        ("x,y,label\n1,1_0,0\n", {}, r"line 2: column 'y': expected a number, found '1_0'"),
        ("x,y,label\n1,2,0\n1,nan,1\n", {}, r"d.csv: line 3: column 'y': expected a finite "
                                            r"number, found .*nan"),
        ("x,y,label\n1,2,0\n\n1,2,inf\n", {}, r"d.csv: line 4: column 'label': expected a "
                                              r"finite number"),
        ("x,y,label\n1,2,0\n", {"label": "cls"}, r"d.csv: label column 'cls' not found; "
                                                 r"available columns: \['x', 'y', 'label'\]"),
        ("x,y,label\n1,2,0\n", {"weight": "w"}, r"weight column 'w' not found"),
        ("x,w,label\n1,-2,0\n", {"weight": "w"}, r"line 2: column 'w': expected a weight >= 0, "
                                                 r"found .*-2"),
        ("x,x,label\n1,2,0\n", {}, r"d.csv: duplicate column names \['x'\]"),
        ("label\n1\n", {}, r"d.csv: no feature columns"),
        ("x,y,label\n", {}, r"d.csv: no rows"),
        ("", {}, r"d.csv: no rows"),
        ("x,y,label\n1,2,0\n", {"n_features": 3}, r"expected n_features=3 feature columns, "
                                                  r"found 2"),
    ],
)
def test_csv_errors(tmp_path, text, kwargs, match):
    src = tmp_path / "d.csv"
    src.write_text(text)
    with pytest.raises(DataError, match=match):
        ingest(str(src), str(tmp_path / "ds"), **kwargs)
    assert not (tmp_path / "ds").exists()


def test_csv_not_utf8(tmp_path):
    src = tmp_path / "d.csv"
    src.write_bytes(b"x,label\n1,0\n\xff,1\n")
    with pytest.raises(DataError, match=r"d.csv: line 3: expected UTF-8 text, found byte 0xff"):
        ingest(str(src), str(tmp_path / "ds"))


def test_iris_libsvm_matches_scikit_learn(tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris()
    ds = ingest(str(IRIS), str(tmp_path / "iris"))
    X, y, w = ds.read_all()
    np.testing.assert_array_equal(X.toarray(), iris.data)
    np.testing.assert_array_equal(y, iris.target)
    assert w is None and ds.classes == [0.0, 1.0, 2.0] and ds.n_rows == 150


def test_libsvm_sparse_comments_and_padding(tmp_path):
    src = tmp_path / "d.svm"
    src.write_text("# header comment\n1 2:5.5 4:1\n\n0  # no features\n-1 1:2e3\n")
    ds = ingest(str(src), str(tmp_path / "ds"), n_features=6)
    X, y, _ = ds.read_all()
    X = X.toarray()
    expected = np.zeros((3, 6))
    expected[0, 1], expected[0, 3], expected[2, 0] = 5.5, 1.0, 2000.0
    np.testing.assert_array_equal(X, expected)
    assert y.tolist() == [1.0, 0.0, -1.0]


@pytest.mark.parametrize(
    ("text", "kwargs", "match"),
    [
        ("1 1:2\n0 1:x\n", {}, r"d.libsvm: line 2: expected index:value, found '1:x'"),
        ("1 1:2\n0 12\n", {}, r"d.libsvm: line 2: expected index:value, found '12'"),
        ("1 a:2\n", {}, r"line 1: expected index:value, found 'a:2'"),
        ("1 0:2\n", {}, r"line 1: expected a 1-based index >= 1, found '0:2'"),
        ("\n1 3:2 2:1\n", {}, r"line 2: expected strictly increasing indices \(previous 3\), "
                              r"found '2:1'"),
        ("1 2:2 2:1\n", {}, r"line 1: expected strictly increasing indices \(previous 2\), "
                            r"found '2:1'"),
        ("1 5:2\n", {"n_features": 4}, r"line 1: expected an index <= n_features=4, found '5:2'"),
        ("yes 1:2\n", {}, r"line 1: expected a numeric label first, found 'yes'"),
        ("1 1:2\n1 1:nan\n", {}, r"line 2: column 'feature 0': expected a finite number"),
        ("1\n0\n", {}, r"d.libsvm: no features"),
        ("\n# only a comment\n", {}, r"d.libsvm: no rows"),
    ],
)
def test_libsvm_errors(tmp_path, text, kwargs, match):
    src = tmp_path / "d.libsvm"
    src.write_text(text)
    with pytest.raises(DataError, match=match):
        ingest(str(src), str(tmp_path / "ds"), **kwargs)


def test_wide_parquet_round_trip(tmp_path):
    X, y, w = make_data()
    table = pa.table({"f1": X[:, 0], "f2": X[:, 1].astype(np.float32), "lbl": y.astype(np.int64),
                      "f3": X[:, 2], "wt": w})
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=7)
    ds = ingest(str(tmp_path / "d.parquet"), str(tmp_path / "ds"), label="lbl", weight="wt")
    X2, y2, w2 = ds.read_all()
    expected = X.copy()
    expected[:, 1] = X[:, 1].astype(np.float32)
    assert X2.tobytes() == expected.tobytes() and y2.tobytes() == y.tobytes()
    assert w2.tobytes() == w.tobytes() and ds.feature_names == ["f1", "f2", "f3"]


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        ({"a": ["x", "y"], "label": [0.0, 1.0]}, r"column 'a': expected a numeric type, "
                                                  r"found string"),
        ({"a": [1.0, None], "label": [0.0, 1.0]}, r"row 2: column 'a': expected a number, "
                                                   r"found null"),
        ({"a": [1.0, 2.0]}, r"label column 'label' not found; available columns: \['a'\]"),
        ({"a": pa.array([], pa.float64()), "label": pa.array([], pa.float64())}, r"no rows"),
    ],
)
def test_wide_parquet_errors(tmp_path, columns, match):
    pq.write_table(pa.table(columns), tmp_path / "d.parquet")
    with pytest.raises(DataError, match=match):
        ingest(str(tmp_path / "d.parquet"), str(tmp_path / "ds"))


def test_npz_round_trip(tmp_path):
    X, y, w = make_data()
    np.savez(tmp_path / "d.npz", X=X, y=y, w=w)
    ds = ingest(str(tmp_path / "d.npz"), str(tmp_path / "ds"), dtype="float32")
    X2, y2, w2 = ds.read_all()
    assert X2.tobytes() == X.astype(np.float32).tobytes()
    assert y2.tobytes() == y.tobytes() and w2.tobytes() == w.tobytes()
    assert ds.weight_name == "weight"


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"X": np.array([{"a": 1}], dtype=object), "y": np.zeros(1)},
         r"d.npz: not a loadable .npz without pickle"),
        ({"X": np.zeros((2, 2))}, r"expected arrays X, y and optionally w, found \['X'\]"),
        ({"X": np.zeros((2, 2)), "y": np.zeros(2), "z": np.zeros(2)}, r"found \['X', 'y', 'z'\]"),
        ({"X": np.zeros(2), "y": np.zeros(2)}, r"array 'X': expected 2 dimensions"),
        ({"X": np.zeros((2, 2)), "y": np.zeros(3)}, r"array 'y': expected shape \(2,\), "
                                                     r"found \(3,\)"),
        ({"X": np.array([["a"]]), "y": np.zeros(1)}, r"array 'X': expected a numeric dtype"),
        ({"X": np.zeros((0, 2)), "y": np.zeros(0)}, r"d.npz: no rows"),
    ],
)
def test_npz_errors(tmp_path, arrays, match):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=match):
        ingest(str(tmp_path / "d.npz"), str(tmp_path / "ds"))


def test_not_an_npz(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"d.npz: not a loadable .npz"):
        ingest(str(tmp_path / "d.npz"), str(tmp_path / "ds"))


def test_format_inference_and_override(tmp_path):
    (tmp_path / "d.txt").write_text("1 1:2\n")
    with pytest.raises(DataError, match=r"d.txt: cannot infer the format from extension '.txt'"):
        ingest(str(tmp_path / "d.txt"), str(tmp_path / "ds"))
    with pytest.raises(ValueError, match=r"'format' parameter must be one of .* Got 'xls'"):
        ingest(str(tmp_path / "d.txt"), str(tmp_path / "ds"), format="xls")
    ds = ingest(str(tmp_path / "d.txt"), str(tmp_path / "ds"), format="libsvm")
    assert ds.n_rows == 1


def test_destination_exists(tmp_path):
    (tmp_path / "ds").mkdir()
    with pytest.raises(FileExistsError, match=r"ds: destination already exists"):
        ingest(str(IRIS), str(tmp_path / "ds"))


def test_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.csv"):
        ingest(str(tmp_path / "nope.csv"), str(tmp_path / "ds"))
    assert os.listdir(tmp_path) == []


@pytest.mark.hadoop
def test_ingest_from_and_to_hdfs(hadoop_cluster):
    from mrtrain.storage.dataset import Dataset
    from mrtrain.storage.filesystem import get_filesystem, join

    base = join(os.environ["MRTRAIN_HDFS_URL"], "tmp", "mrtrain-test-ingest", os.urandom(4).hex())
    fs = get_filesystem(base)
    fs.write_bytes(join(base, "iris.libsvm"), IRIS.read_bytes())
    try:
        ingest(join(base, "iris.libsvm"), join(base, "iris"), partitions=3)
        ds = Dataset.open(join(base, "iris"))
        X, y, _ = ds.read_all()
        assert (ds.n_rows, len(ds.partitions), X.shape) == (150, 3, (150, 4))
        assert fs.listdir(base) == ["iris", "iris.libsvm"]
    finally:
        fs.delete(base, recursive=True)
