"""A data scientist's day on Palmer penguins and scikit-learn's datasets, through the CLI as a user types it
(a scratch directory, relative paths) and the Python API: feature and class names in every output, string
labels, ``--like`` carrying the whole recipe, and predictions people can join (row index, id and kept
columns, one probability column per class named by the class).

References: scikit-learn's multinomial ``LogisticRegression`` on the same one-hot design (``C = 1/(n l2)``:
the same optimum, to the stopping rule's precision) and its ``LabelEncoder`` order of the classes.
"""

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from mrtrain.fitted import FittedModel
from mrtrain.storage.checkpoint_writer import CheckpointWriter
from mrtrain.storage.dataset import Dataset
from mrtrain.storage.lock import DirectoryLock
from tests.command import run

palmerpenguins = pytest.importorskip("palmerpenguins")

CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_kg", "island=Dream",
            "island=Torgersen", "sex=male"]
#: Newton's method: the optimum in about 10 passes where L-BFGS takes about 40 (the names are the point here).
TRAIN = ("--runner", "inline", "--l2", "0.01", "--optimizer", "newton")
#: To compare with scikit-learn's optimum.
TIGHT = ("--tol", "1e-12", "--gtol", "1e-9", "--max-iter", "300")


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A scratch directory holding ``peng.csv`` (an id column first), ``hold.csv`` (no species column)
    and ``gentoo.csv`` (Gentoo rows only, with their species), as a user would have them."""
    monkeypatch.chdir(tmp_path)
    frame = palmerpenguins.load_penguins().dropna().drop(columns=["year"]).reset_index(drop=True)
    frame["body_mass_kg"] = frame.pop("body_mass_g") / 1000
    frame.insert(0, "penguin", [f"P{i:03d}" for i in range(len(frame))])
    frame.to_csv("peng.csv", index=False)
    frame.drop(columns=["species"]).iloc[::-1].iloc[:7].to_csv("hold.csv", index=False)
    frame[frame.species == "Gentoo"].iloc[:5].to_csv("gentoo.csv", index=False)
    return frame


def _ingest_and_train(capsys, *options):
    status, out, err = run(capsys, "ingest", "peng.csv", "ds", "--label", "species", "--categorical",
                           "island,sex", "--drop", "first", "--id", "penguin", "--partitions", "3")
    assert status == 0, err
    status, out, err = run(capsys, "train", "ds", "--model", "softmax", *TRAIN, *options,
                           "--checkpoint-dir", "ck")
    assert status == 0, err
    return out


def test_string_labels_train_to_scikit_learns_model_and_every_output_names_features_and_classes(
        capsys, scratch):
    from sklearn.linear_model import LogisticRegression

    out = _ingest_and_train(capsys, *TIGHT)
    assert "classes: Adelie, Chinstrap, Gentoo" in out
    # train prints one line per feature, a column per class
    assert any(line.split()[:1] == ["island=Dream"] and len(line.split()) == 4 for line in out.splitlines())
    assert "confusion_matrix: (rows: true class, columns: predicted class)" in out
    dataset = Dataset.open("ds")
    assert dataset.class_names == CLASSES and dataset.classes == [0.0, 1.0, 2.0]
    assert dataset.feature_names == FEATURES and dataset.kept_columns == ["penguin"]

    X, y, _ = dataset.read_all()
    reference = LogisticRegression(C=1 / (len(y) * 0.01), tol=1e-12, max_iter=10_000).fit(X.toarray(), y)
    fitted = FittedModel.load("ck")
    assert fitted.feature_names_ == FEATURES and fitted.class_names_ == CLASSES
    np.testing.assert_allclose(fitted.predict_proba(X), reference.predict_proba(X.toarray()), atol=2e-5)

    status, out, err = run(capsys, "inspect", "ck")
    assert status == 0, err
    assert "softmax (3 classes: Adelie, Chinstrap, Gentoo), 7 features" in out
    assert "class Chinstrap, bill_length_mm" in out and "feature 0" not in out
    status, out, err = run(capsys, "inspect", "ck", "--json")
    summary = json.loads(out)
    assert summary["feature_names"] == FEATURES and summary["class_names"] == CLASSES
    assert np.shape(summary["coefficients"]) == (3, len(FEATURES))

    status, out, err = run(capsys, "evaluate", "ds", "--model-dir", "ck", "--runner", "inline")
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split() == CLASSES)
    assert [line.split()[0] for line in lines[header + 1:header + 4]] == CLASSES

    status, _, err = run(capsys, "predict", "ds", "--model-dir", "ck", "--output", "pred",
                         "--runner", "inline")
    assert status == 0, err
    tables = [pq.read_table(f"pred/part-{i:05d}.parquet") for i in range(3)]
    assert tables[1].column_names == ["row", "penguin", "label", "prediction", "probability_Adelie",
                                      "probability_Chinstrap", "probability_Gentoo"]
    joined = np.concatenate([t.column("row").to_numpy() for t in tables])
    assert joined.tolist() == list(range(len(scratch)))
    ids = sum((t.column("penguin").to_pylist() for t in tables), [])
    assert ids == scratch["penguin"].tolist()
    assert sum((t.column("label").to_pylist() for t in tables), []) == scratch["species"].tolist()
    predicted = sum((t.column("prediction").to_pylist() for t in tables), [])
    assert predicted == [CLASSES[k] for k in reference.predict(X.toarray()).astype(int)]
    assert json.loads(open("pred/_predictions.json").read())["classes"] == CLASSES

    pytest.importorskip("matplotlib")
    status, _, err = run(capsys, "report", "ck", "--data", "ds", "--output", "r.html", "--runner", "inline")
    assert status == 0, err
    page = open("r.html", encoding="utf-8").read()
    assert "class Chinstrap: bill_length_mm" in page and "<td>Gentoo</td>" in page


def test_a_holdout_without_the_label_and_one_with_some_classes_ingest_like_the_training_data(
        capsys, scratch):
    _ingest_and_train(capsys)
    # No --label, --categorical, --id or --drop: --like carries them; the holdout has no species column.
    status, out, err = run(capsys, "ingest", "hold.csv", "hold", "--like", "ds")
    assert status == 0, err
    hold = Dataset.open("hold")
    assert not hold.has_label and hold.encoding == Dataset.open("ds").encoding
    assert hold.kept_columns == ["penguin"] and hold.label_name == "species"
    status, _, err = run(capsys, "predict", "hold", "--model-dir", "ck", "--output", "p",
                         "--runner", "inline")
    assert status == 0, err
    table = pq.read_table("p/part-00000.parquet")
    assert table.column_names == ["row", "penguin", "prediction", "probability_Adelie",
                                  "probability_Chinstrap", "probability_Gentoo"]
    expected = FittedModel.load("ck").predict_proba(Dataset.open("ds").read_all()[0][::-1][:7])
    np.testing.assert_array_equal(np.column_stack([table.column(f"probability_{c}").to_numpy()
                                                   for c in CLASSES]), expected)
    assert table.column("penguin").to_pylist() == scratch["penguin"][::-1][:7].tolist()
    status, _, err = run(capsys, "evaluate", "hold", "--model-dir", "ck", "--runner", "inline")
    assert status == 2 and "expected labels to evaluate on" in err[0]

    # Only Gentoo rows: the classes and their codes are the training data's.
    assert run(capsys, "ingest", "gentoo.csv", "gentoo", "--like", "ds")[0] == 0
    gentoo = Dataset.open("gentoo")
    assert gentoo.class_names == CLASSES and gentoo.read_all()[1].tolist() == [2.0] * 5
    status, out, err = run(capsys, "evaluate", "gentoo", "--model-dir", "ck", "--runner", "inline", "--json")
    assert json.loads(out)["metrics"]["confusion_matrix"] == [[0, 0, 0], [0, 0, 0], [0, 0, 5]]


def test_bad_labels_are_refused_in_one_line(capsys, scratch):
    _ingest_and_train(capsys)
    scratch.loc[3, "species"] = "Emperor"
    scratch.iloc[:6].to_csv("odd.csv", index=False)
    status, out, err = run(capsys, "ingest", "odd.csv", "odd", "--like", "ds")
    assert status == 2 and len(err) == 1 and not os.path.exists("odd")
    assert err[0] == (f"mrtrain: error: {os.path.abspath('odd.csv')}: line 5: column 'species': expected one "
                      "of the classes of the --like dataset ['Adelie', 'Chinstrap', 'Gentoo'], "
                      "found 'Emperor'")
    # A dataset ingested on its own has its own classes: the model refuses it.
    scratch.to_csv("odd.csv", index=False)
    assert run(capsys, "ingest", "odd.csv", "own", "--categorical", "island,sex", "--drop", "first",
               "--label", "species", "--id", "penguin")[0] == 0
    status, _, err = run(capsys, "evaluate", "own", "--model-dir", "ck", "--runner", "inline")
    assert status == 2
    assert "expected the classes of the training data ['Adelie', 'Chinstrap', 'Gentoo']" in err[0]
    for model in ("linear", "poisson"):
        status, _, err = run(capsys, "train", "ds", "--model", model, "--runner", "inline")
        assert status == 2 and len(err) == 1
        assert (f"ds: field 'species': expected numeric labels for {model}, found class names ['Adelie', "
                "'Chinstrap', 'Gentoo'] (a classifier takes them)") in err[0]
    scratch.loc[3, "species"] = ""
    scratch.to_csv("empty.csv", index=False)
    status, _, err = run(capsys, "ingest", "empty.csv", "e", "--label", "species", "--categorical",
                         "island,sex", "--id", "penguin")
    assert status == 2 and "line 5: column 'species': expected a class name, found an empty value" in err[0]


def test_inference_table_names_the_columns(capsys, scratch):
    assert run(capsys, "ingest", "peng.csv", "ds", "--label", "body_mass_kg", "--categorical",
               "species,island,sex", "--drop", "first", "--id", "penguin")[0] == 0
    status, out, err = run(capsys, "train", "ds", "--model", "linear", "--optimizer", "newton", "--inference",
                           "--runner", "inline", "--checkpoint-dir", "ck")
    assert status == 0, err
    names = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "species=Chinstrap", "species=Gentoo",
             "island=Dream", "island=Torgersen", "sex=male", "intercept"]
    rows = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and len(line.split()) == 5]
    assert rows[-len(names):] == names
    status, out, err = run(capsys, "inspect", "ck", "--json")
    assert json.loads(out)["inference"]["names"] == names


def test_like_carries_the_recipe_of_a_plain_numeric_dataset(capsys, tmp_path, monkeypatch):
    from sklearn.datasets import load_diabetes

    monkeypatch.chdir(tmp_path)
    frame = load_diabetes(as_frame=True).frame
    frame["w"] = np.linspace(0.5, 1.5, len(frame))
    frame.to_csv("diabetes.csv", index=False)
    assert run(capsys, "ingest", "diabetes.csv", "train", "--label", "target", "--weight", "w",
               "--dtype", "float32")[0] == 0
    # Columns in another order, no options: the label, the weight, the dtype and the order are the training
    # data's.
    shuffled = frame[["s1", "w", "target", *[c for c in frame.columns if c not in ("s1", "w", "target")]]]
    shuffled.iloc[:40].to_csv("test.csv", index=False)
    status, out, err = run(capsys, "ingest", "test.csv", "test", "--like", "train")
    assert status == 0, err
    test, train = Dataset.open("test"), Dataset.open("train")
    assert (test.label_name, test.weight_name, test.dtype) == ("target", "w", "float32")
    assert test.feature_names == train.feature_names
    X, y, w = test.read_all()
    np.testing.assert_array_equal(X, train.read_all()[0][:40])
    np.testing.assert_array_equal(w, frame["w"][:40])
    # Without the label and weight columns: a dataset for predict.
    frame.drop(columns=["target", "w"]).iloc[:5].to_csv("new.csv", index=False)
    assert run(capsys, "ingest", "new.csv", "new", "--like", "train")[0] == 0
    assert not Dataset.open("new").has_label
    # The label without the weight: refused, naming the weight column.
    frame.drop(columns=["w"]).iloc[:5].to_csv("noweight.csv", index=False)
    status, _, err = run(capsys, "ingest", "noweight.csv", "nw", "--like", "train")
    assert status == 2 and "weight column 'w' (of the --like dataset) not found" in err[0]
    # Training on a dataset without labels is refused in one line.
    status, _, err = run(capsys, "train", "new", "--model", "linear", "--runner", "inline")
    assert status == 2 and "expected labels to train linear" in err[0]


def test_a_numeric_label_dataset_keeps_its_manifest(capsys, tmp_path, monkeypatch):
    """No new manifest fields for what existed before: the same CSV gives the same checksum as before
    class names existed (recorded from the previous release: main at c454760)."""
    monkeypatch.chdir(tmp_path)
    with open("d.csv", "w") as handle:
        handle.write("a,b,label\n1,2,0\n3,4,1\n5,6,1\n")
    status, out, err = run(capsys, "ingest", "d.csv", "d", "--json")
    assert json.loads(out)["checksum"] == "b0a1ae74c21e787db44ff3af8ed7537b0250a77db854704431462c4f06d5d7ec"


def test_estimators_name_features_and_classes(scratch):
    from mrtrain import LogisticRegression
    from mrtrain.storage.ingest import ingest

    ingest("peng.csv", "ds", label="species", categorical=["island", "sex"], drop="first", id="penguin")
    model = LogisticRegression(l2=0.01, max_iter=300).fit("ds")
    assert model.classes_.tolist() == CLASSES
    assert model.feature_names_in_.tolist() == FEATURES
    X = Dataset.open("ds").read_all()[0]
    with pytest.warns(UserWarning, match="does not have valid feature names"):  # scikit-learn's own check
        assert set(model.predict(X)) <= set(CLASSES)
    frame = scratch[["bill_length_mm", "bill_depth_mm"]]
    fitted = LogisticRegression(l2=0.01).fit(frame, scratch["species"])
    assert fitted.feature_names_in_.tolist() == ["bill_length_mm", "bill_depth_mm"]
    assert fitted.classes_.tolist() == CLASSES


def test_lock_and_writer_keep_a_relative_directory_while_the_working_directory_changes(tmp_path, monkeypatch):
    """mrjob's inline runner changes the process's working directory while tasks run; the lease thread and
    the checkpoint writer's thread must still find a relative checkpoint directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    with DirectoryLock("ck") as lock, CheckpointWriter("ck") as writer:
        os.chdir("elsewhere")
        assert lock.read_holder() is not None
        writer.save(0, {"x": np.zeros(3)}, {"iteration": 0})
        writer.wait()
    assert (tmp_path / "ck" / "ckpt-000000.parquet").exists()
    assert not (tmp_path / "elsewhere" / "ck").exists()
