"""What a new user hit typing the README's and docs' commands in a scratch directory with relative paths:
each test is one finding of that trial (the message, exit status or output that was wrong before)."""

import os
import re

import numpy as np
import pytest

from mrtrain.cli import main
from tests.command import run
from tests.datasets import write


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_bad_number_beside_text_columns_is_named_by_its_own_column_and_line(capsys, scratch):
    """'NA' in a numeric column was reported as the string label (or a kept text column) of line 2."""
    with open("f.csv", "w") as f:
        f.write("name,height,species\nA1,1.5,setosa\nB2,NA,versicolor\nC3,2.5,virginica\n")
    expected = f"mrtrain: error: {scratch / 'f.csv'}: line 3: column 'height': expected a number, found 'NA'"
    for options in (["--impute", "mean", "--categorical", "name"], ["--keep", "name"],
                    ["--keep-missing", "--id", "name"]):
        status, out, err = run(capsys, "ingest", "f.csv", "ds", "--label", "species", *options)
        assert (status, out, err) == (2, "", [expected]), options
        assert not os.path.exists("ds")


def test_a_missing_source_file_is_named_first_without_errno(capsys, scratch):
    """It was ``[Errno 2] No such file or directory: '/abs/nosuch.csv'``: Python's, not mrtrain's, form."""
    for argv in (["ingest", "nosuch.csv", "ds"], ["ingest", "nosuch.libsvm", "ds"]):
        status, out, err = run(capsys, *argv)
        expected = f"mrtrain: error: {scratch / argv[1]}: No such file or directory"
        assert (status, out, err) == (2, "", [expected])
        assert not os.path.exists("ds")


def test_tree_training_shows_a_line_per_round_and_nothing_with_q(capsys, scratch):
    """A gbt training printed nothing on stderr until its end (two minutes of silence on 300 rows at the
    defaults), where every other model shows a line per pass."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    data = write(scratch / "d", X, (X[:, 0] > 0).astype(float))
    argv = ["train", data, "--model", "gbt", "--n-trees", "3", "--max-depth", "1", "--runner", "inline",
            "--no-metrics"]
    assert main(argv) == 0
    lines = capsys.readouterr().err.splitlines()
    assert [re.sub(r"\s+[0-9.]+s$", "", line) for line in lines] == [
        f"train gbt: {k} of 3 rounds ({100 * k / 3:.0f}%)" for k in (1, 2, 3)], lines
    assert main(["-q", *argv]) == 0 and capsys.readouterr().err == ""


def test_an_unseen_category_warning_names_a_reference_level_only_when_there_is_one(capsys, caplog, scratch):
    """``--like`` a dataset one-hot encoded with every slot (``--drop none``, the default) warned that an
    unseen value has no entry "like the reference level", a level such a dataset does not have."""
    with open("train.csv", "w") as f:
        f.write("x,city,label\n1,paris,0\n2,rome,1\n3,paris,1\n")
    with open("new.csv", "w") as f:
        f.write("x,city,label\n1,oslo,0\n")
    for drop, reference in (("none", ""), ("first", ", as the reference level")):
        status, _, err = run(capsys, "ingest", "train.csv", f"t-{drop}", "--categorical", "city",
                             "--drop", drop)
        assert status == 0, err
        caplog.clear()
        assert run(capsys, "ingest", "new.csv", f"n-{drop}", "--like", f"t-{drop}")[0] == 0
        assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
            f"{scratch / 'new.csv'}: column 'city': 1 value(s) without a slot in the --like encoding (first "
            f"'oslo') have no entry (all the column's slots 0{reference})"]


def test_a_binary_model_on_three_string_classes_names_the_dataset_and_the_classes(capsys, scratch):
    """It said only 'Got 3 classes: [0.0, 1.0, 2.0]', the codes of class names the user never saw."""
    with open("f.csv", "w") as f:
        f.write("x,species\n1,setosa\n2,versicolor\n3,virginica\n4,setosa\n")
    assert run(capsys, "ingest", "f.csv", "ds", "--label", "species")[0] == 0
    for model in ("logistic", "linear-svc"):
        status, out, err = run(capsys, "train", "ds", "--model", model, "--runner", "inline",
                               "--checkpoint-dir", "ck")
        assert (status, out, err) == (2, "", [
            f"mrtrain: error: {scratch / 'ds'}: Model {model!r} needs exactly 2 classes (for more classes "
            "use model 'softmax'). Got 3 classes: [0.0, 1.0, 2.0] (the class names ['setosa', 'versicolor', "
            "'virginica'])."])
        assert not os.path.exists("ck")


def test_the_label_named_categorical_is_refused_as_the_label_not_as_missing(capsys, scratch):
    """``--categorical species`` with ``--label species`` said the column was 'not found', then listed it."""
    with open("f.csv", "w") as f:
        f.write("id,x,species\n1,0.5,a\n2,1.5,b\n")
    for options in (["--categorical", "species"], ["--categorical", "id", "--id", "id"]):
        status, out, err = run(capsys, "ingest", "f.csv", "ds", "--label", "species", *options)
        assert (status, out, err) == (2, "", [
            f"mrtrain: error: {scratch / 'f.csv'}: categorical column {options[1]!r}: expected a feature "
            "column, found the label, weight, id or a kept column"]), options
        assert not os.path.exists("ds")


def test_an_existing_trees_json_is_named_by_its_absolute_path(capsys, scratch):
    """Every other output is named absolute in messages (docs/cli.md, Paths); --trees-json FILE was not."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 2))
    write(scratch / "d", X, X[:, 0], partitions=1)
    assert run(capsys, "train", "d", "--model", "gbt", "--n-trees", "1", "--max-depth", "1", "--runner",
               "inline", "--no-metrics", "--checkpoint-dir", "ck")[0] == 0
    with open("t.json", "w") as f:
        f.write("mine")
    assert run(capsys, "inspect", "ck", "--trees-json", "t.json") == (2, "", [
        f"mrtrain: error: {scratch / 't.json'}: destination already exists; choose a new path or delete it"])
    assert open("t.json").read() == "mine"
