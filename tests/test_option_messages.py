"""Messages and options (issue 26, item 9): each refusal is one line that says what to do, through the CLI
with relative paths as a user types them, and through the Python API where it applies."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mrtrain import Trainer
from mrtrain.storage.checkpoint import list_checkpoints, load_checkpoint
from mrtrain.storage.ingest import ingest
from mrtrain.storage.lock import LOCK_NAME
from mrtrain.trainer import SettingsMismatchError
from tests.command import run, tree
from tests.datasets import write


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(capsys, *argv):
    """Run ``mrtrain ARGV``: it must exit 2 with one line; that line."""
    status, out, err = run(capsys, *argv)
    assert status == 2 and len(err) == 1 and out == "", (status, out, err)
    return err[0]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_like_with_a_missing_value_does_not_advise_impute(scratch, capsys, suffix):
    (scratch / "tr.csv").write_text("a,c,label\n1,x,0\n2,y,1\n3,x,1\n")
    assert run(capsys, "ingest", "tr.csv", "tr", "--categorical", "c")[0] == 0
    if suffix == "csv":
        (scratch / "te.csv").write_text("a,c,label\n,x,0\n2,y,1\n")
    else:
        pq.write_table(pa.table({"a": [None, 2.0], "c": ["x", "y"], "label": [0, 1]}), "te.parquet")
    line = refused(capsys, "ingest", f"te.{suffix}", "te", "--like", "tr")
    assert "column 'a': expected a number" in line and "--like dataset was ingested without --impute" in line
    assert "pass --impute" not in line
    # What it advises works: the training data ingested with --impute, then --like it.
    assert run(capsys, "ingest", "tr.csv", "tr2", "--categorical", "c", "--impute", "mean")[0] == 0
    assert run(capsys, "ingest", f"te.{suffix}", "te", "--like", "tr2")[0] == 0
    # Without --like the advice is --impute.
    assert "pass --impute zero or mean" in refused(capsys, "ingest", f"te.{suffix}", "te3", "--categorical",
                                                    "c")


def test_listed():
    from mrtrain.storage.encoding import listed

    assert listed(["a", "b"]) == "['a', 'b']"
    assert listed(["a", "b", "c"]) == "['a', 'b', 'c']"
    assert listed(["a", "b", "c", "d", "e"]) == "['a', 'b', 'c', … and 2 more]"


def test_encoding_mismatch_says_how_many_levels_are_not_listed(scratch, capsys):
    for name, levels in (("tr", "xyabcd"), ("te", "xypqrs")):
        rows = "".join(f"{i},{c},{i % 2}\n" for i, c in enumerate(levels))
        (scratch / f"{name}.csv").write_text("a,c,label\n" + rows)
    for argv in (("ingest", "tr.csv", "tr", "--categorical", "c"),
                 ("ingest", "te.csv", "te", "--categorical", "c"),
                 ("train", "tr", "--model", "logistic", "--runner", "inline", "--checkpoint-dir", "ck",
                  "--max-iter", "3", "--no-metrics")):
        assert run(capsys, *argv)[0] == 0
    line = refused(capsys, "evaluate", "te", "--model-dir", "ck", "--runner", "inline")
    assert ("expected 6 levels, found 6 (extra ['p', 'q', 'r', … and 1 more], lacking ['a', 'b', 'c', … "
            "and 1 more])") in line, line


TRAIN = ("train", "ds", "--model", "softmax", "--runner", "inline", "--no-metrics", "--max-iter", "2")


@pytest.mark.parametrize("options, needs", [
    (("--allreduce-tasks", "3"), "--allreduce"),
    (("--allreduce-address", "127.0.0.1:0"), "--allreduce"),
    (("--allreduce-timeout", "5.5"), "--allreduce"),
    (("--keep-checkpoints", "2"), "--checkpoint-dir"),
    (("--break-lock",), "--checkpoint-dir"),
    (("--warm-start",), "--checkpoint-dir"),
    (("--reg-path-ratio", "0.1"), "--reg-path"),
    (("--n-iter-no-change", "3"), "--validation-fraction"),
    (("--fold-seed", "2"), "--cv or --validation-fraction"),
    (("--init-steps", "2"), "--model kmeans"),
    (("--n-init", "3"), "--model kmeans"),
    (("--seed", "0"), "--model kmeans or mlp or gbt or random-forest"),
])
def test_options_that_need_another_are_refused(scratch, capsys, options, needs):
    rng = np.random.default_rng(0)
    write(scratch / "ds", rng.normal(size=(30, 2)), rng.integers(0, 3, size=30).astype(float), partitions=1)
    line = refused(capsys, *TRAIN, *options)
    given = " ".join(options)
    assert line == (f"mrtrain: error: The '{options[0]}' option only applies with {needs}. Got {given} "
                    "without it instead.")
    assert sorted(p.name for p in scratch.iterdir()) == ["ds"]


def test_the_defaults_of_dependent_options_still_apply(scratch, capsys):
    """Left out, each option keeps its documented default: the same model as the Python API's."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    write(scratch / "ds", X, (X[:, 0] > 0).astype(float), partitions=2)
    status, _, err = run(capsys, "train", "ds", "--model", "logistic", "--runner", "inline", "--l2",
                         "0.1,0.01", "--validation-fraction", "0.3", "--checkpoint-dir", "g", "--no-metrics")
    assert status == 0, err
    reference = Trainer("logistic", l2=[0.1, 0.01], validation_fraction=0.3, n_iter_no_change=5, fold_seed=0,
                        checkpoint_dir="ref").fit("ds")
    from mrtrain import FittedModel

    np.testing.assert_array_equal(FittedModel.load("g").theta_, reference.theta_)


@pytest.mark.parametrize("source, options, message", [
    ("iris.csv", ("--dense",), "The 'dense' parameter applies to libsvm sources"),
    ("x.libsvm", ("--weight", "w"), "The 'weight' parameter names a csv or parquet column"),
])
def test_ingest_options_of_other_formats_are_refused(scratch, capsys, source, options, message):
    (scratch / "iris.csv").write_text("a,label\n1,0\n2,1\n")
    (scratch / "x.libsvm").write_text("1 1:0.5\n0 2:1.5\n")
    assert message in refused(capsys, "ingest", source, "d", *options)
    with pytest.raises(ValueError, match=message):
        ingest(source, "d", dense=options == ("--dense",), weight=None if options == ("--dense",) else "w")
    assert not (scratch / "d").exists()


def test_single_run_on_a_grid_directory_is_refused(scratch, capsys):
    """A finished grid's checkpoint holds the grid's state and pass counts: a single model's run refuses
    it (it used to resume it and report another iteration count), unless --warm-start."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    write(scratch / "ds", X, (X @ [1.0, -1.0, 0.5] + rng.logistic(size=120) > 0).astype(float), partitions=2)
    status, _, err = run(capsys, "train", "ds", "--model", "logistic", "--runner", "inline", "--l2",
                         "0.1,0.01", "--validation-fraction", "0.3", "--checkpoint-dir", "g", "--no-metrics")
    assert status == 0, err
    before = tree(scratch / "g")
    grid = run(capsys, "inspect", "g", "--json")[1]
    line = refused(capsys, "train", "ds", "--model", "logistic", "--runner", "inline", "--l2", "0.01",
                   "--checkpoint-dir", "g", "--no-metrics")
    assert "made by a grid of penalties" in line and "--warm-start" in line
    assert tree(scratch / "g") == before and LOCK_NAME not in before
    assert run(capsys, "inspect", "g", "--json")[1] == grid
    with pytest.raises(SettingsMismatchError, match="made by a grid of penalties"):
        Trainer("logistic", l2=0.01, runner="inline", checkpoint_dir="g").fit("ds")
    # --warm-start starts a new run from the grid's selected model.
    status, _, err = run(capsys, "train", "ds", "--model", "logistic", "--runner", "inline", "--l2", "0.01",
                         "--checkpoint-dir", "g", "--no-metrics", "--warm-start")
    assert status == 0, err
    newest = load_checkpoint(list_checkpoints(str(scratch / "g"))[-1][1]).meta
    assert "grid" not in newest and newest["warm_start"]["checkpoint"].endswith(before[-1])
