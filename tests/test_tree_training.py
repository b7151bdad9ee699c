"""Tree ensembles trained as MapReduce passes (issue 23, items 1 and 3): the bin-edges and histogram jobs, the
driver's loop, checkpoints and resume, early stopping, and the same bits on every runner."""

import dataclasses
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from mrtrain.engine.trees import (
    Ensemble,
    TreeGrower,
    build_histograms,
    make_bins,
    make_objective,
    route_binned,
    summarize,
)
from mrtrain.storage.dataset import write_dataset
from mrtrain.storage.errors import DataError
from mrtrain.tree_training import SettingsMismatch, TreeConfig, fit_trees


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    X[rng.random(n) < 0.15, 2] = np.nan
    signal_ = (X[:, 0] > 0.2).astype(float) + np.where(np.isnan(X[:, 2]), 1.0, X[:, 2] > 0.5) + X[:, 1]
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * (signal_ - 1)))).astype(float)
    return X, y


@pytest.fixture
def dataset(tmp_path):
    X, y = _data()
    write_dataset(str(tmp_path / "d"), X, y, partitions=3, missing=True)
    return str(tmp_path / "d"), X, y


def _bits(model):
    return {name: np.ascontiguousarray(value).tobytes() for name, value in model.ensemble.to_arrays().items()}


CONFIG = TreeConfig(n_trees=3, max_depth=3, max_bins=16, learning_rate=0.3)


def test_gbt_equals_the_engine_on_all_rows_at_once(dataset):
    """The passes (bins from merged partition summaries, histograms added in partition order) grow the trees
    the engine grows on all rows in memory: the same splits, the same leaf values to rounding."""
    uri, X, y = dataset
    model = fit_trees(uri, CONFIG)
    bins = make_bins(summarize(X), CONFIG.max_bins)
    np.testing.assert_array_equal(model.bins.edges, bins.edges)  # merging summaries is exact
    objective = make_objective("logistic")
    binned, missing_bins = bins.transform(X), bins.n_edges + 1
    base = objective.base_score(objective.base_stats(y, np.ones_like(y)))
    trees = []
    for t in range(CONFIG.n_trees):
        ensemble = Ensemble.from_trees(trees, [0] * len(trees), base, 4)
        g, h = objective.gradients(y, ensemble.predict_margin_binned(binned, missing_bins))
        grower = TreeGrower(bins, CONFIG.grow_params(CONFIG.n_trees), t)
        while not grower.finished:
            nodes = route_binned(grower.tree, binned, missing_bins)
            grower.update(build_histograms(binned, g[:, 0], h[:, 0], np.ones_like(y), nodes,
                                           grower.build_nodes, bins.offsets))
        trees.append(grower.tree)
    reference = Ensemble.from_trees(trees, [0] * len(trees), base, 4)
    np.testing.assert_array_equal(model.ensemble.nodes.feature, reference.nodes.feature)
    np.testing.assert_array_equal(model.ensemble.nodes.bin, reference.nodes.bin)
    np.testing.assert_array_equal(model.ensemble.nodes.default_left, reference.nodes.default_left)
    np.testing.assert_allclose(model.ensemble.nodes.value, reference.nodes.value, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(model.predict_margin(X), reference.predict_margin(X), rtol=1e-12)
    assert model.ensemble.n_trees == 3 and (model.ensemble.nodes.feature == 2).any()  # the NaN column is used


def test_same_bits_on_every_runner_and_reducers(dataset):
    uri, _, _ = dataset
    expected = _bits(fit_trees(uri, CONFIG))
    assert _bits(fit_trees(uri, CONFIG, reducers=0)) == expected
    assert _bits(fit_trees(uri, CONFIG, runner="local", reducers=2)) == expected
    assert _bits(fit_trees(uri, CONFIG, runner="local", allreduce=True, allreduce_tasks=2)) == expected


def test_random_forest_same_bits_and_averages_its_trees(dataset):
    uri, X, y = dataset
    config = TreeConfig(model="random-forest", n_trees=3, max_depth=2, max_bins=16, max_features="sqrt",
                        min_child_weight=0.0)
    model = fit_trees(uri, config)
    assert _bits(fit_trees(uri, config, runner="local", reducers=0)) == _bits(model)
    assert _bits(fit_trees(uri, config, runner="local", allreduce=True)) == _bits(model)
    p = model.predict_proba(X)[:, 1]
    assert ((p >= 0) & (p <= 1)).all() and np.corrcoef(p, y)[0, 1] > 0.3
    # Each tree's root value is its bootstrap sample's mean label over the number of trees.
    roots = model.ensemble.nodes.value[model.ensemble.tree_start[:-1]]
    assert np.all((roots > 0.2 / 3) & (roots < 0.8 / 3))


def test_missing_values_take_the_learnt_direction(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=400)
    missing = rng.random(400) < 0.25
    y = np.where(missing, 1.0, (x > 1.0).astype(float))  # missing rows are positive, as the high ones
    X = np.where(missing, np.nan, x)[:, None]
    write_dataset(str(tmp_path / "m"), X, y, partitions=2, missing=True)
    model = fit_trees(str(tmp_path / "m"), TreeConfig(n_trees=1, max_depth=1, max_bins=32, learning_rate=1.0))
    tree = model.ensemble.tree(0)
    assert tree.feature[0] == 0 and not tree.default_left[0]  # NaN goes right, with the rows above 1
    margin = model.predict_margin(np.array([[np.nan], [2.0], [0.0]]))[:, 0]
    assert margin[0] == margin[1] > margin[2]


def test_early_stopping_keeps_the_best_round(tmp_path):
    X, y = _data(400, seed=1)
    y = np.where(np.random.default_rng(2).random(400) < 0.4, 1 - y, y)  # noisy labels: it overfits
    write_dataset(str(tmp_path / "e"), X, y, partitions=2, missing=True)
    config = TreeConfig(n_trees=30, max_depth=4, max_bins=32, learning_rate=0.8, l2=0.0, min_child_weight=0.0,
                        validation_fraction=0.3, n_iter_no_change=3)
    model = fit_trees(str(tmp_path / "e"), config)
    history = model.history
    best = int(np.argmin(history))
    assert len(history) - 1 - best == 3 and len(history) < 31
    assert model.ensemble.n_trees == best
    # history[0] is the base score's validation log loss: that of the training rows' mean on held-out rows.
    assert 0.6 < history[0] < 0.75


def test_resume_after_sigkill_gives_the_same_bits(dataset, tmp_path):
    uri, _, _ = dataset
    expected = _bits(fit_trees(uri, CONFIG))
    checkpoints = str(tmp_path / "ck")
    script = (
        "import os, signal, sys\n"
        "from mrtrain.tree_training import TreeConfig, fit_trees\n"
        "def kill(training):\n"
        "    if training.passes == 6:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        f"fit_trees({uri!r}, TreeConfig(**{CONFIG.__dict__!r}), checkpoint_dir={checkpoints!r}, "
        "callback=kill)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True)
    assert completed.returncode == -signal.SIGKILL, completed.stderr.decode()[-2000:]
    # Checkpoints are written in the background: the 6th pass's may not be on disk, the 5th is (the 6th's
    # write waited for it). Either is mid-tree: level passes of tree 1.
    assert "ckpt-000005.parquet" in os.listdir(checkpoints)
    resumed = fit_trees(uri, CONFIG, checkpoint_dir=checkpoints)
    assert _bits(resumed) == expected
    with pytest.raises(SettingsMismatch, match="cannot resume, the checkpoint was made with other settings "
                                               r"\(learning_rate: checkpoint has 0.3, this run has 0.5\)"):
        fit_trees(uri, TreeConfig(**{**CONFIG.__dict__, "learning_rate": 0.5}), checkpoint_dir=checkpoints)


@pytest.mark.parametrize("settings, message", [
    ({"max_bins": 1}, r"'max_bins' parameter must be an int in \[2, 65535\]. Got 1"),
    ({"max_bins": 65536}, r"'max_bins' parameter must be an int in \[2, 65535\]. Got 65536"),
    ({"max_depth": 0}, r"'max_depth' parameter must be an int in \[1, 30\]. Got 0"),
    ({"max_depth": 31}, r"'max_depth' parameter must be an int in \[1, 30\]. Got 31"),
    ({"learning_rate": 0.0}, r"'learning_rate' parameter must be a number > 0. Got 0.0"),
    ({"subsample": 0.0}, r"'subsample' parameter must be a number in \(0, 1\]. Got 0.0"),
    ({"subsample": 1.5}, r"'subsample' parameter must be a number in \(0, 1\]. Got 1.5"),
    ({"colsample": 0.0}, r"'colsample' parameter must be a number in \(0, 1\]. Got 0.0"),
    ({"n_iter_no_change": 2}, "'n_iter_no_change' parameter must be an int >= 1, with a "),
    ({"model": "random-forest", "learning_rate": 0.5}, "'learning_rate' parameter does not apply to model "
                                                       "'random-forest'"),
    ({"max_features": "sqrt"}, "'max_features' parameter applies to model 'random-forest'"),
    ({"objective": "hinge"}, "'objective' parameter of model 'gbt' must be one of"),
])
def test_bad_settings_are_refused_before_anything_runs(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        fit_trees(str(tmp_path / "no-such-dataset"), TreeConfig(**settings),
                  checkpoint_dir=str(tmp_path / "c"))
    assert not (tmp_path / "c").exists()


def test_labels_that_do_not_fit_the_objective(tmp_path):
    write_dataset(str(tmp_path / "names"), np.ones((4, 1)), np.array([0.0, 1.0, 2.0, 1.0]),
                  class_names=["a", "b", "c"])
    with pytest.raises(DataError, match="expected numeric labels for gbt regression, found class names"):
        fit_trees(str(tmp_path / "names"), TreeConfig(objective="squared_error"))
    with pytest.raises(DataError, match="expected two classes for the logistic objective, found 3"):
        fit_trees(str(tmp_path / "names"), TreeConfig(objective="logistic"))


def test_sparse_partitions_grow_the_dense_partitions_trees(tmp_path):
    from scipy import sparse

    X, y = _data(200, seed=4)
    X = np.where(np.abs(X) < 0.7, 0.0, X)  # zeros the CSR layout leaves implicit
    write_dataset(str(tmp_path / "dense"), X, y, partitions=2, missing=True)
    write_dataset(str(tmp_path / "csr"), sparse.csr_array(X), y, partitions=2, missing=True)
    dense = fit_trees(str(tmp_path / "dense"), CONFIG)
    assert _bits(fit_trees(str(tmp_path / "csr"), CONFIG)) == _bits(dense)


@pytest.mark.parametrize("objective, labels", [
    ("softmax", lambda X: (X[:, 0] > 0).astype(float) + (np.nan_to_num(X[:, 2]) > 0.5)),
    ("poisson", lambda X: np.floor(np.exp(0.5 * X[:, 0] + 0.3 * X[:, 1]))),
])
def test_softmax_and_poisson_reduce_their_loss(tmp_path, objective, labels):
    X, _ = _data(300, seed=5)
    y = labels(X)
    write_dataset(str(tmp_path / "d"), X, y, partitions=3, missing=True)
    config = TreeConfig(objective=objective, n_trees=4, max_depth=3, max_bins=16, learning_rate=0.5,
                        validation_fraction=0.2)
    model = fit_trees(str(tmp_path / "d"), config)
    outputs = 3 if objective == "softmax" else 1
    assert model.ensemble.n_trees == 4 * outputs and model.ensemble.n_outputs == outputs
    assert model.history[-1] < model.history[0]  # held-out loss falls from the base score's
    assert _bits(fit_trees(str(tmp_path / "d"), config, reducers=3)) == _bits(model)


def test_the_trees_are_a_family_of_the_trainer(dataset):
    """``Trainer("gbt", ...)``: the registry's tree family builds the same config and grows the same trees;
    another family's parameter is refused, and a tree parameter on another model."""
    from mrtrain import Trainer

    uri, _, _ = dataset
    fitted = Trainer("gbt", n_trees=3, max_depth=3, max_bins=16, learning_rate=0.3).fit(uri)
    assert _bits(fitted) == _bits(fit_trees(uri, CONFIG))
    with pytest.raises(ValueError, match="The 'k' parameter applies to model 'kmeans' only"):
        Trainer("gbt", k=3).fit(uri)
    with pytest.raises(ValueError, match="The 'n_trees' parameter applies to the tree ensemble models"):
        Trainer("logistic", n_trees=3).fit(uri)


@pytest.mark.parametrize("config", [
    TreeConfig(n_trees=4, max_depth=3, max_bins=16, learning_rate=0.5, subsample=0.8, validation_fraction=0.2,
               n_iter_no_change=1, l2=0.0, min_child_weight=0.0),
    TreeConfig(model="random-forest", n_trees=3, max_depth=2, max_bins=16, max_features="sqrt")])
def test_an_allreduce_tasks_memory_gives_the_vectors_computed_afresh(dataset, config):
    """What an --allreduce task remembers of a partition between passes (binned rows, the finished trees'
    margin, the growing trees' routes) gives every pass's vector bit for bit, in the training's order and in
    any other (a resumed driver, an ensemble cut back by early stopping: nothing remembered applies)."""
    from mrtrain.engine.tree_memory import PartitionMemory
    from mrtrain.storage.dataset import Dataset

    uri, _, _ = dataset

    def states(seed):
        kept = []
        fit_trees(uri, dataclasses.replace(config, seed=seed),
                  callback=lambda training: kept.append(training.state("grow")))
        return [s for s in kept if s.ensemble is not None]

    first, other = states(0), states(1)  # another seed: other trees of the same sizes
    assert len(first) >= 3
    X, y, w = Dataset.open(uri).read_partition(1)
    memory = PartitionMemory()
    for state in first + first[::-1] + other + first[::3]:
        fresh = state.partition_vector(X, y, w, 1)
        assert state.partition_vector(X, y, w, 1, memory).tobytes() == fresh.tobytes()
