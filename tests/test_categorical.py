"""Categorical columns at ingest: MurmurHash3, hashed and one-hot encodings, --min-count, --impute, --like,
and evaluate/predict refusing a dataset encoded otherwise than the model's training data."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mrtrain.cli import main
from mrtrain.storage.dataset import MANIFEST_NAME, Dataset, manifest_checksum
from mrtrain.storage.encoding import murmurhash3_32
from mrtrain.storage.errors import DataError
from mrtrain.storage.ingest import ingest

CSV = "x,city,label\n1.5,Paris,1\n0,Lyon,0\n2,Paris,1\n,Nice,0\n3,,1\n"


def _csv(tmp_path, text=CSV, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _dense(dataset):
    X, y, _ = dataset.read_all()
    return X.toarray(), y


# Vectors of Austin Appleby's MurmurHash3_x86_32 (SMHasher) as published with its ports.
@pytest.mark.parametrize("data, seed, expected", [
    (b"", 0, 0),
    (b"", 1, 0x514E28B7),
    (b"", 0xFFFFFFFF, 0x81F16F39),
    (b"\x00\x00\x00\x00", 0, 0x2362F9DE),
    (b"hello", 0, 0x248BFA47),
    (b"Hello, world!", 0, 0xC0363E43),
    (b"Hello, world!", 0x9747B28C, 0x24884CBA),
    (b"The quick brown fox jumps over the lazy dog", 0, 0x2E4FF723),
    (b"The quick brown fox jumps over the lazy dog", 0x9747B28C, 0x2FA826CD),
    (b"aaaa", 0x9747B28C, 0x5A97808A),
    (b"abc", 0, 0xB3DD93FA),
    (b"test", 0, 0xBA6BD213),
])
def test_murmurhash3_matches_the_reference_vectors(data, seed, expected):
    assert murmurhash3_32(data, seed) == expected


def test_hashed_csv_has_one_slot_per_value_after_the_numeric_columns(tmp_path):
    dataset = ingest(_csv(tmp_path), str(tmp_path / "d"), categorical=["city"], hash_bits=6,
                     impute="zero")
    assert dataset.layout == "csr" and dataset.n_features == 1 + 64
    X, y = _dense(dataset)
    expected = np.zeros((5, 65))
    expected[:, 0] = [1.5, 0, 2, 0, 3]
    for row, text in enumerate(["Paris", "Lyon", "Paris", "Nice", "<missing>"]):
        expected[row, 1 + murmurhash3_32(f"city={text}".encode()) % 64] += 1.0
    np.testing.assert_array_equal(X, expected)
    np.testing.assert_array_equal(y, [1, 0, 1, 0, 1])
    assert dataset.encoding["hash_bits"] == 6 and dataset.encoding["levels"] is None


def test_hash_collisions_within_a_row_add_up(tmp_path):
    path = _csv(tmp_path, "a,b,label\nu,u,1\nv,w,0\n")
    dataset = ingest(path, str(tmp_path / "d"), categorical=["a", "b"], hash_bits=1)
    X, _ = _dense(dataset)
    assert X.sum(axis=1).tolist() == [2.0, 2.0]
    slots = [murmurhash3_32(f"{c}={v}".encode()) % 2 for c, v in (("a", "u"), ("b", "u"))]
    assert X[0, slots[0]] == (2.0 if slots[0] == slots[1] else 1.0)


def test_one_hot_csv_sorted_levels_and_only_the_filled_missing_and_other_slots(tmp_path):
    dataset = ingest(_csv(tmp_path), str(tmp_path / "d"), categorical=["city"], impute="mean")
    # No value went to <other> (min_count 1): no slot for it; a missing city fills <missing>.
    assert dataset.feature_names == ["x", "city=Lyon", "city=Nice", "city=Paris", "city=<missing>"]
    assert dataset.encoding["drop"] == "none" and dataset.encoding["reference"] == {"city": None}
    X, _ = _dense(dataset)
    mean = (1.5 + 0 + 2 + 3) / 4
    np.testing.assert_array_equal(X, [[1.5, 0, 0, 1, 0], [0, 1, 0, 0, 0], [2, 0, 0, 1, 0],
                                      [mean, 0, 1, 0, 0], [3, 0, 0, 0, 1]])
    assert dataset.encoding["means"] == [mean]
    reopened = Dataset.open(dataset.uri)
    assert reopened.encoding == dataset.encoding and reopened.encoding_digest == dataset.encoding_digest


def test_min_count_sends_rare_values_to_other(tmp_path):
    dataset = ingest(_csv(tmp_path), str(tmp_path / "d"), categorical=["city"], min_count=2, impute="zero")
    assert dataset.feature_names == ["x", "city=Paris", "city=<missing>", "city=<other>"]
    X, _ = _dense(dataset)
    np.testing.assert_array_equal(X[:, 1:], [[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0]])


@pytest.mark.parametrize("drop, names, rows", [
    # R's treatment coding: the first level (Lyon) is the reference, in the intercept.
    ("first", ["city=Nice", "city=Paris", "city=<missing>"],
     [[0, 1, 0], [0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]]),
    # Four filled categories: not binary, nothing dropped.
    ("if-binary", ["city=Lyon", "city=Nice", "city=Paris", "city=<missing>"],
     [[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]),
])
def test_drop_leaves_the_reference_level_without_a_slot(tmp_path, drop, names, rows):
    dataset = ingest(_csv(tmp_path), str(tmp_path / "d"), categorical=["city"], impute="zero", drop=drop)
    assert dataset.feature_names == ["x", *names]
    assert dataset.encoding["reference"] == {"city": "Lyon" if drop == "first" else None}
    np.testing.assert_array_equal(_dense(dataset)[0][:, 1:], rows)


def test_drop_if_binary_matches_scikit_learn(tmp_path):
    from sklearn.preprocessing import OneHotEncoder

    text = "x,sex,city,label\n1,f,Paris,1\n2,m,Lyon,0\n3,f,Nice,1\n4,m,Paris,0\n"
    dataset = ingest(_csv(tmp_path, text), str(tmp_path / "d"), categorical=["sex", "city"],
                     drop="if-binary")
    values = [["f", "Paris"], ["m", "Lyon"], ["f", "Nice"], ["m", "Paris"]]
    for drop in ("if_binary", "first"):
        reference = OneHotEncoder(drop=drop, sparse_output=False).fit(values)
        if drop == "if_binary":
            np.testing.assert_array_equal(_dense(dataset)[0][:, 1:], reference.transform(values))
            assert dataset.feature_names[1:] == [n.replace("x0_", "sex=").replace("x1_", "city=")
                                                 for n in reference.get_feature_names_out()]
    first = ingest(_csv(tmp_path, text), str(tmp_path / "f"), categorical=["sex", "city"], drop="first")
    np.testing.assert_array_equal(_dense(first)[0][:, 1:], reference.transform(values))


def test_an_encoding_written_before_slots_keeps_every_slot_and_like_follows_it(tmp_path):
    dataset = ingest(_csv(tmp_path), str(tmp_path / "d"), categorical=["city"], impute="zero")
    path = tmp_path / "d" / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    for key in ("drop", "slots", "reference"):
        del manifest["encoding"][key]
    manifest["n_features"] = 6
    manifest["checksum"] = manifest_checksum(manifest)
    path.write_text(json.dumps(manifest))
    old = Dataset.open(dataset.uri)
    assert old.feature_names == ["x", "city=Lyon", "city=Nice", "city=Paris", "city=<missing>",
                                 "city=<other>"]
    test = _csv(tmp_path, "city,label,x\nRome,0,5\nParis,0,1\n", name="test.csv")
    X, _ = _dense(ingest(test, str(tmp_path / "test"), like=old.uri))
    np.testing.assert_array_equal(X, [[5, 0, 0, 0, 0, 1], [1, 0, 0, 1, 0, 0]])


def test_parquet_string_and_integer_categoricals_with_nulls(tmp_path):
    path = str(tmp_path / "t.parquet")
    pq.write_table(pa.table({
        "zip": pa.array([75001, 69001, None, 75001], pa.int64()),
        "x": pa.array([1.0, None, 2.0, 4.0]),
        "dev": pa.array(["ios", "web", "ios", None]).dictionary_encode(),
        "label": pa.array([1.0, 0.0, 1.0, 0.0]),
    }), path)
    dataset = ingest(path, str(tmp_path / "d"), categorical=["zip", "dev"], impute="mean")
    assert dataset.feature_names == [
        "x", "zip=69001", "zip=75001", "zip=<missing>", "dev=ios", "dev=web", "dev=<missing>"]
    X, _ = _dense(dataset)
    np.testing.assert_array_equal(X, [[1, 0, 1, 0, 1, 0, 0], [7 / 3, 1, 0, 0, 0, 1, 0],
                                      [2, 0, 0, 1, 1, 0, 0], [4, 0, 1, 0, 0, 0, 1]])
    hashed = ingest(path, str(tmp_path / "h"), categorical=["zip", "dev"], hash_bits=8, impute="zero")
    Xh, _ = _dense(hashed)
    assert Xh[0, 1 + murmurhash3_32(b"zip=75001") % 256] >= 1
    assert Xh[2, 1 + murmurhash3_32(b"zip=<missing>") % 256] >= 1
    assert Xh[1, 0] == 0.0


def test_missing_numeric_values_need_impute(tmp_path):
    with pytest.raises(DataError, match=r"line 5: column 'x': expected a number, found '' .*--impute"):
        ingest(_csv(tmp_path), str(tmp_path / "d"), categorical=["city"])
    path = str(tmp_path / "t.parquet")
    pq.write_table(pa.table({"x": [1.0, None], "c": ["a", "b"], "label": [0.0, 1.0]}), path)
    with pytest.raises(DataError, match=r"row 2: column 'x': expected a number, found null .*--impute"):
        ingest(path, str(tmp_path / "d"), categorical=["c"])
    assert not (tmp_path / "d").exists()
    pq.write_table(pa.table({"x": [1.0, None], "label": [0.0, 1.0]}), path)
    dataset = ingest(path, str(tmp_path / "d"), impute="zero")
    assert dataset.layout == "dense"
    np.testing.assert_array_equal(dataset.read_all()[0], [[1.0], [0.0]])


def test_like_reuses_levels_classes_column_order_and_means(tmp_path):
    train = ingest(_csv(tmp_path), str(tmp_path / "train"), categorical=["city"], impute="mean")
    test = _csv(tmp_path, "city,label,x\nRome,0,5\nParis,0,\nLyon,0,1\n", name="test.csv")
    dataset = ingest(test, str(tmp_path / "test"), like=train.uri)
    assert dataset.encoding == train.encoding and dataset.feature_names == train.feature_names
    assert dataset.classes == [0.0, 1.0]
    X, _ = _dense(dataset)
    # Rome: no <other> slot in the training data, so no entry (scikit-learn's handle_unknown="ignore").
    np.testing.assert_array_equal(X, [[5, 0, 0, 0, 0], [1.625, 0, 0, 1, 0], [1, 1, 0, 0, 0]])


def test_manifest_encoding_is_validated(tmp_path):
    dataset = ingest(_csv(tmp_path), str(tmp_path / "d"), categorical=["city"], impute="zero")
    path = tmp_path / "d" / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["encoding"]["levels"]["city"] = ["Paris", "Lyon", "Nice"]
    manifest["checksum"] = manifest_checksum(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"encoding.levels\['city'\]: expected sorted levels"):
        Dataset.open(dataset.uri)


@pytest.mark.parametrize("args, message", [
    (["--categorical", "town"],
     r"categorical column 'town' not found .*columns found: \['x', 'city', 'label'\]"),
    (["--categorical", "city", "--hash-bits", "0"],
     r"The 'hash_bits' parameter must be an int in \[1, 30\]\. Got 0 instead"),
    (["--categorical", "city", "--hash-bits", "31"], r"The 'hash_bits' parameter .* Got 31 instead"),
    (["--like", "NOT_A_DATASET"], r"not an mrtrain dataset"),
    (["--like", "MISSING"], r"dataset directory does not exist"),
    (["--hash-bits", "4"], r"The 'hash_bits' and 'min_count' parameters need 'categorical' columns"),
    (["--categorical", "city"], r"line 5: column 'x': expected a number, found ''"),
])
def test_bad_ingest_arguments_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, args, message):
    (tmp_path / "NOT_A_DATASET").mkdir()
    args = [str(tmp_path / a) if a in ("NOT_A_DATASET", "MISSING") else a for a in args]
    assert main(["-q", "ingest", _csv(tmp_path), str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mrtrain: error: ")
    assert __import__("re").search(message, err)
    assert not (tmp_path / "out").exists()


def test_like_of_a_dataset_without_encoding_needs_its_columns(tmp_path, capsys):
    assert main(["-q", "ingest", _csv(tmp_path, "x,label\n1,0\n2,1\n"), str(tmp_path / "plain")]) == 0
    out, plain = str(tmp_path / "out"), str(tmp_path / "plain")
    other = _csv(tmp_path, "x,z,label\n1,2,0\n", name="other.csv")
    assert main(["-q", "ingest", other, out, "--like", plain]) == 2
    assert "expected the feature columns of the --like dataset ['x'], found ['x', 'z']" in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_train_like_predict_and_refuse_another_encoding(tmp_path, capsys):
    rng = np.random.default_rng(0)
    cities = np.array(["Paris", "Lyon", "Nice", "Lille"])
    rows = rng.integers(0, 4, 200)
    x = rng.normal(size=200)
    y = ((rows < 2) ^ (x > 1.5)).astype(int)
    lines = ["x,city,label"] + [f"{a:.3f},{cities[r]},{b}" for a, r, b in zip(x, rows, y, strict=True)]
    train, model = str(tmp_path / "train"), str(tmp_path / "ck")
    source = _csv(tmp_path, "\n".join(lines) + "\n")
    assert main(["-q", "ingest", source, train, "--categorical", "city"]) == 0
    assert main(["-q", "train", train, "--model", "logistic", "--l2", "0.01", "--runner", "inline",
                 "--checkpoint-dir", model]) == 0
    test_csv = _csv(tmp_path, "x,city,label\n0.1,Paris,1\n0.2,Nice,0\n0.3,Rome,0\n0.4,Lyon,1\n",
                    name="test.csv")
    test = str(tmp_path / "test")
    assert main(["-q", "ingest", test_csv, test, "--like", train]) == 0
    capsys.readouterr()
    assert main(["-q", "predict", test, "--model-dir", model, "--output", str(tmp_path / "pred"),
                 "--runner", "inline"]) == 0
    predictions = pq.read_table(str(tmp_path / "pred" / "part-00000.parquet")).column("prediction")
    assert predictions.to_pylist()[:2] == [1.0, 0.0]
    own = str(tmp_path / "own")
    assert main(["-q", "ingest", test_csv, own, "--categorical", "city", "--min-count", "1"]) == 0
    assert Dataset.open(own).n_features == Dataset.open(train).n_features  # Rome instead of Lille
    capsys.readouterr()
    for command in (["evaluate", own], ["predict", own, "--output", str(tmp_path / "p2")]):
        assert main(["-q", *command, "--model-dir", model, "--runner", "inline"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "expected the categorical encoding of the training data" in err
        assert "levels of column 'city'" in err
    assert not (tmp_path / "p2").exists()
    # With the training dataset gone, the digest the trainer recorded still refuses the other encoding.
    os.rename(train, str(tmp_path / "moved"))
    assert main(["-q", "evaluate", own, "--model-dir", model, "--runner", "inline"]) == 2
    assert "encoding digest" in capsys.readouterr().err
