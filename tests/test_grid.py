"""Many models in shared passes: penalty lists, glmnet's path, k-fold cross-validation, early stopping.

References: scikit-learn fitted on the same rows (a fold's complement, all rows), numpy losses at the
members' parameters, and an independent pure-Python SplitMix64 for the documented row hash. Tolerances:
training stops at a gradient max-norm of ``gtol = 1e-9`` with ``tol = 0``; with an l2 strength of at least
1e-3 on standardized features the objective is 1e-3-strongly convex, so coefficients are within
``sqrt(p) * gtol / 1e-3 < 1e-5`` of the optimum (``atol = 2e-5`` below, as scikit-learn's own solution has the
same kind of error), and objective values agree far closer (quadratic in the distance).
"""

import json
import re

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mrtrain.engine.folds import row_groups, row_hash
from mrtrain.families.glm_grid import member_parameters
from mrtrain.fitted import FittedModel
from mrtrain.storage.checkpoint import latest_checkpoint
from mrtrain.storage.dataset import Dataset
from mrtrain.trainer import Trainer
from tests.command import run
from tests.datasets import reference_data, write

TIGHT = {"tol": 0.0, "gtol": 1e-9, "max_iter": 500}


def splitmix64_reference(x):
    """SplitMix64's output for state ``x``, with Python ints (the published constants)."""
    mask = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_row_hash_is_the_documented_splitmix64():
    for partition, seed in ((0, 0), (3, 7), (12345, 2**40 + 1)):
        hashes = row_hash(partition, 50, seed)
        expected = [splitmix64_reference(((partition << 32) + r) ^ splitmix64_reference(seed))
                    for r in range(50)]
        assert [int(h) for h in hashes] == expected


def test_folds_and_holdout_are_balanced_and_depend_on_the_seed():
    groups = row_groups({"kind": "folds", "k": 5, "seed": 0}, 2, 20000)
    counts = np.bincount(groups, minlength=5)
    # Each fold is Binomial(20000, 1/5): 4000 ± 57 (sd); 5 sd is a bug, not chance.
    assert np.all(np.abs(counts - 4000) < 5 * 57), counts
    held = row_groups({"kind": "holdout", "fraction": 0.3, "seed": 0}, 2, 20000)
    assert abs(held.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / 20000)
    other = row_groups({"kind": "folds", "k": 5, "seed": 1}, 2, 20000)
    assert (other != groups).mean() > 0.7  # a new seed reshuffles about 4/5 of the rows


def dataset_groups(uri, split):
    """Every row's group, in the dataset's row order (partitions in order, as written)."""
    return np.concatenate([row_groups(split, part.index, part.rows) for part in Dataset.open(uri).partitions])


def member_thetas(checkpoint_dir):
    checkpoint = latest_checkpoint(checkpoint_dir)
    members = checkpoint.meta["grid"]["members"]
    thetas = member_parameters(checkpoint)
    assert len(thetas) == len(members)
    return thetas, checkpoint.meta


def log_loss(X, y, theta):
    eta = X @ theta[:-1] + theta[-1]
    return float(np.mean(np.logaddexp(0.0, eta) - y * eta))


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    X, y = reference_data("breast_cancer")
    X = X[:, :8]
    return X, y, write(tmp_path_factory.mktemp("cancer") / "data", X, y, partitions=3)


def test_cross_validation_members_match_scikit_learn_on_their_rows(cancer, tmp_path):
    X, y, data = cancer
    l2s = [1e-3, 1e-1]
    fitted = Trainer("logistic", l2=l2s, cv=3, checkpoint_dir=str(tmp_path / "ck"), **TIGHT).fit(data)
    thetas, meta = member_thetas(str(tmp_path / "ck"))
    groups = dataset_groups(data, {"kind": "folds", "k": 3, "seed": 0})
    assert len(thetas) == 2 * (3 + 1)
    table = fitted.cv_results_
    for c, l2 in enumerate(l2s):
        losses = []
        for f in range(3):
            train = groups != f
            theta = thetas[c * 4 + f]
            reference = LogisticRegression(C=1 / (l2 * train.sum()), tol=1e-12, max_iter=10000).fit(
                X[train], y[train])
            np.testing.assert_allclose(theta[:-1], reference.coef_[0], atol=2e-5)
            np.testing.assert_allclose(theta[-1], reference.intercept_[0], atol=2e-5)
            losses.append(log_loss(X[~train], y[~train], theta))
        # The table's validation loss is the mean log-loss of each fold member on its own fold.
        np.testing.assert_allclose(table[c]["validation_loss_mean"], np.mean(losses), rtol=1e-10)
        np.testing.assert_allclose(table[c]["validation_loss_std"], np.std(losses), rtol=1e-8, atol=1e-14)
    means = [row["validation_loss_mean"] for row in table]
    selected = int(np.argmin(means))
    assert [row["selected"] for row in table] == [c == selected for c in range(2)]
    # The result is the selected penalty's model refitted on all rows.
    reference = LogisticRegression(C=1 / (l2s[selected] * len(y)), tol=1e-12, max_iter=10000).fit(X, y)
    np.testing.assert_allclose(fitted.coef_, reference.coef_[0], atol=2e-5)
    assert fitted.l2 == l2s[selected] and fitted.converged_
    # The refit of the other penalty stopped (converged, or dropped) by the time the folds had chosen.
    records = meta["grid"]["members"]
    other = records[(1 - selected) * 4 + 3]
    folds_done = max(record["passes"] for i, record in enumerate(records) if i % 4 != 3)
    assert other["passes"] <= folds_done
    assert other["converged"] or other["reason"] == "not selected by cross-validation"
    # The checkpoint directory loads as the selected model.
    loaded = FittedModel.load(str(tmp_path / "ck"))
    assert np.array_equal(loaded.theta_, fitted.theta_) and loaded.cv_results_ == table
    assert loaded.n_iter_ == fitted.n_iter_


def test_grid_is_bitwise_the_same_on_every_runner_and_for_any_reducers(cancer):
    _, _, data = cancer
    settings = {"l2": [1e-3, 1e-1], "cv": 3, "max_iter": 6}
    inline = Trainer("logistic", **settings).fit(data)
    local = Trainer("logistic", runner="local", reducers=0, **settings).fit(data)
    sharded = Trainer("logistic", reducers=3, **settings).fit(data)
    for other in (local, sharded):
        assert np.array_equal(other.theta_, inline.theta_)
        assert other.cv_results_ == inline.cv_results_


def test_grid_over_allreduce_is_bitwise_the_job_per_pass_grid(cancer):
    _, _, data = cancer
    settings = {"l2": [1e-3, 1e-1], "cv": 3, "max_iter": 6}
    inline = Trainer("logistic", **settings).fit(data)
    served = Trainer("logistic", runner="local", allreduce=True, allreduce_tasks=2, **settings).fit(data)
    assert np.array_equal(served.theta_, inline.theta_)
    assert served.cv_results_ == inline.cv_results_


class Interrupt(Exception):
    pass


def test_an_interrupted_grid_resumes_to_the_same_bits(cancer, tmp_path):
    _, _, data = cancer
    # 10 iterations (the grid converges at 18): the run is cut at pass 4, well before its end.
    settings = {"l1": [1e-3, 1e-2], "l2": 1e-3, "cv": 3, "max_iter": 10, "optimizer": "owlqn"}
    whole = Trainer("logistic", checkpoint_dir=str(tmp_path / "whole"), **settings).fit(data)

    def stop_at_four(progress):
        if progress.passes == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer("logistic", checkpoint_dir=str(tmp_path / "cut"), callback=stop_at_four, **settings).fit(data)
    resumed = Trainer("logistic", checkpoint_dir=str(tmp_path / "cut"), **settings).fit(data)
    assert np.array_equal(resumed.theta_, whole.theta_)
    assert resumed.cv_results_ == whole.cv_results_
    assert resumed.n_passes_ == whole.n_passes_


@pytest.mark.parametrize("settings", [
    {"l2": [1e-3, 1e-1], "cv": 3},  # folds, then the refits of the candidate they select
    {"l1": [1e-3, 1e-2], "l2": 1e-3, "cv": 3, "optimizer": "owlqn"},
    {"l2": 1e-4, "validation_fraction": 0.3, "n_iter_no_change": 50},
])
def test_a_grid_resumed_with_a_higher_max_iter_trains_on_as_a_single_model_does(cancer, tmp_path, settings):
    """A single model trained to 4 iterations and resumed with --max-iter 9 is bitwise the model trained to
    9 at once (tests/test_training.py::test_resumed_run_ends_bitwise_identical). So is a grid: every
    member that stopped at the old limit trains on, the folds choose again, and the result, its history
    and the table are those of the grid trained to 9 at once. (The resumed grid made more passes: the
    first run's scoring pass, and passes in which only some members trained.)"""
    _, _, data = cancer
    settings = {**settings, "tol": 0.0, "gtol": 0.0}
    whole = Trainer("logistic", max_iter=9, **settings).fit(data)
    checkpoints = str(tmp_path / "ck")
    short = Trainer("logistic", max_iter=4, checkpoint_dir=checkpoints, **settings).fit(data)
    assert short.n_iter_ == 4
    resumed = Trainer("logistic", max_iter=9, checkpoint_dir=checkpoints, **settings).fit(data)
    assert resumed.theta_.tobytes() == whole.theta_.tobytes()
    assert resumed.history_ == whole.history_ and resumed.n_iter_ == whole.n_iter_
    assert resumed.cv_results_ == whole.cv_results_
    # Every scored member reached 9 (a hold-out's result is its best iterate, which may be earlier).
    assert max(max(row["iterations"]) for row in resumed.cv_results_) == 9
    loaded = FittedModel.load(checkpoints)
    assert loaded.theta_.tobytes() == whole.theta_.tobytes() and loaded.cv_results_ == whole.cv_results_
    # Resumed again with the same limit: nothing left to do, no pass.
    again = Trainer("logistic", max_iter=9, checkpoint_dir=checkpoints, **settings).fit(data)
    assert again.theta_.tobytes() == whole.theta_.tobytes() and again.n_passes_ == resumed.n_passes_


def test_a_grid_resumed_with_a_higher_max_iter_on_the_command_line(capsys, tmp_path, cancer, monkeypatch):
    _, _, data = cancer
    monkeypatch.chdir(tmp_path)
    common = ["train", data, "--model", "logistic", "--reg", "0.001,0.1", "--cv", "3", "--tol", "0",
              "--gtol", "0", "--json"]
    status, whole, err = run(capsys, *common, "--max-iter", "4")
    assert status == 0, err
    status, _, err = run(capsys, *common, "--max-iter", "2", "--checkpoint-dir", "ck")
    assert status == 0, err
    status, resumed, err = run(capsys, *common, "--max-iter", "4", "--checkpoint-dir", "ck")
    assert status == 0, err
    whole, resumed = json.loads(whole), json.loads(resumed)
    assert resumed["coefficients"] == whole["coefficients"] and resumed["iterations"] == 4
    assert resumed["cross_validation"] == whole["cross_validation"]


@pytest.mark.parametrize("standardize", [False, True])
def test_the_path_starts_at_the_lasso_lambda_max(tmp_path, standardize):
    X, y = reference_data("diabetes")
    data = write(tmp_path / "data", X, y, partitions=2)
    fitted = Trainer("linear", reg_path=4, reg_path_ratio=1e-2, cv=3, standardize=standardize, max_iter=300,
                     checkpoint_dir=str(tmp_path / "ck")).fit(data)
    # --standardize: Spark's (n - 1) standard deviation
    Z = (X - X.mean(axis=0)) / X.std(axis=0, ddof=1) if standardize else X - X.mean(axis=0)
    # scikit-learn's (and glmnet's) lambda max of the lasso: max |Xc' (y - mean y)| / n. mrtrain's linear loss
    # is (y - eta)^2 / 2 per row, the Lasso's scaling.
    lambda_max = np.max(np.abs(Z.T @ (y - y.mean()))) / len(y)
    thetas, meta = member_thetas(str(tmp_path / "ck"))
    np.testing.assert_allclose(meta["grid"]["lambda_max"], lambda_max, rtol=1e-9)
    lambdas = [row["lambda"] for row in fitted.cv_results_]
    np.testing.assert_allclose(lambdas, lambda_max * np.logspace(0, -2, 4), rtol=1e-12)
    assert all(row["alpha"] == 1.0 for row in fitted.cv_results_)
    # At lambda max every coefficient of the first penalty's refit on all rows (member 3) is 0 (up to the
    # rounding of lambda max itself); at the next penalty, some are not.
    assert np.all(np.abs(thetas[3][:-1]) <= 1e-9)
    assert np.any(np.abs(thetas[7][:-1]) > 1e-3)


def test_early_stopping_keeps_the_best_iterate(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 60))
    y = (X[:, 0] + 2.0 * rng.normal(size=300) > 0).astype(float)  # mostly noise: training overfits
    data = write(tmp_path / "data", X, y, partitions=2)
    fitted = Trainer("logistic", l2=1e-6, validation_fraction=0.3, n_iter_no_change=3, max_iter=300,
                     checkpoint_dir=str(tmp_path / "ck")).fit(data)
    _, meta = member_thetas(str(tmp_path / "ck"))
    member = meta["grid"]["members"][0]
    assert member["reason"] == "validation loss did not improve for 3 iterations"
    assert member["iteration"] < 300
    history = member["valid_history"]
    assert fitted.cv_results_[0]["validation_loss_mean"] == min(history) == member["best_valid"]
    # The result is the best iterate, scored on the held-out rows by numpy.
    held = dataset_groups(data, {"kind": "holdout", "fraction": 0.3, "seed": 0}) == 1
    np.testing.assert_allclose(log_loss(X[held], y[held], fitted.theta_), min(history), rtol=1e-10)
    assert fitted.n_iter_ == member["best_iteration"] < member["iteration"]


def test_newton_grid_matches_single_newton_models(tmp_path):
    X, y = reference_data("iris")
    data = write(tmp_path / "data", X, y, partitions=2)
    fitted = Trainer("softmax", optimizer="newton", l2=[1e-2, 1e-1], cv=3, **TIGHT).fit(data)
    single = Trainer("softmax", optimizer="newton", l2=fitted.l2, **TIGHT).fit(data)
    # Both stop at a gradient max-norm of 1e-9 on a 1e-2-strongly convex objective.
    np.testing.assert_allclose(fitted.theta_, single.theta_, atol=1e-6)


def test_grid_on_the_command_line(capsys, tmp_path, cancer):
    _, _, data = cancer
    status, out, err = run(capsys, "train", data, "--model", "logistic", "--reg", "0.001,0.01",
                           "--elastic-net", "0.5", "--cv", "3", "--runner", "inline",
                           "--checkpoint-dir", str(tmp_path / "ck"),
                           "--max-iter", "20")
    assert status == 0, err
    assert "validation loss" in out and "accuracy" in out
    assert sum(line.rstrip().endswith("*") for line in out.splitlines()) == 1
    status, out, err = run(capsys, "train", data, "--model", "logistic", "--reg", "0.001,0.01",
                           "--elastic-net", "0.5", "--cv", "3", "--runner", "inline",
                           "--checkpoint-dir", str(tmp_path / "ck"),
                           "--max-iter", "20", "--json")
    assert status == 0, err
    result = json.loads(out)
    rows = result["cross_validation"]
    assert [(row["l1"], row["l2"]) for row in rows] == [(0.0005, 0.0005), (0.005, 0.005)]
    assert result["settings"]["grid"]["cv"] == 3
    status, out, err = run(capsys, "inspect", str(tmp_path / "ck"))
    assert status == 0, err
    assert "selected     from 2 penalties by 3-fold cross-validation" in out and "validation loss" in out
    status, out, err = run(capsys, "evaluate", data, "--model-dir", str(tmp_path / "ck"), "--runner",
                           "inline", "--json")
    assert status == 0, err
    assert json.loads(out)["metrics"]["accuracy"] > 0.9


@pytest.mark.parametrize("argv, message", [
    (["--l2", "0.1", "--cv", "1"], "'cv' parameter must be an int >= 2"),
    (["--l2", "0.1,0.2"], "need 'cv'"),
    (["--l1", "0.1,0.2", "--l2", "0.1,0.2,0.3", "--cv", "2"], "same length"),
    (["--reg-path", "3", "--l2", "0.1", "--cv", "2"], "cannot be combined"),
    (["--reg", "0.1,0.2", "--elastic-net", "0.1,0.2,0.3", "--cv", "2"], "same length"),
    (["--reg", "0.1", "--elastic-net", "1.5"], r"\[0, 1\]"),
    (["--l1", "-0.1"], "'l1' parameter must be a finite float >= 0"),
    (["--l2", "0.1,0.2", "--cv", "3", "--validation-fraction", "0.2"], "choose one"),
    (["--validation-fraction", "1.5"], r"\(0, 1\)"),
    (["--l1", "0.1,0.2", "--cv", "2", "--optimizer", "newton"], "owlqn"),
    (["--l2", "0.1,0.2", "--cv", "1000"], "at most the dataset's"),
])
def test_bad_grid_settings_are_refused(capsys, tmp_path, cancer, argv, message):
    _, _, data = cancer
    status, out, err = run(capsys, "train", data, "--model", "logistic", "--runner", "inline",
                           "--checkpoint-dir", str(tmp_path / "ck"), *argv)
    assert status == 2 and out == ""
    assert len(err) == 1 and err[0].startswith("mrtrain: error:")
    assert re.search(message, err[0]), err
    assert not (tmp_path / "ck").exists()


def test_single_step_lbfgs_tries_the_full_step_alone_and_backtracks_with_four():
    from mrtrain.engine.loop import initial_status, optimize
    from mrtrain.engine.optimizers.base import Evaluation
    from mrtrain.engine.optimizers.lbfgs import LBFGS

    A = np.diag([1.0, 10.0, 100.0])
    b = np.array([1.0, -2.0, 3.0])
    sizes = []

    def evaluate(points, hessian):
        sizes.append(len(points))
        return [Evaluation(0.5 * x @ A @ x - b @ x, A @ x - b, None) for x in points]

    optimizer = LBFGS(single_step=True)
    status, _, converged = optimize(optimizer, evaluate, initial_status(optimizer, np.zeros(3)),
                                    max_iter=100, tol=0.0, gtol=1e-10)
    assert converged
    np.testing.assert_allclose(status.state.x, np.linalg.solve(A, b), rtol=1e-9)
    # The starting point alone, the first direction's four steps, then one point per pass except after
    # a rejection (four again).
    assert sizes[:2] == [1, 4] and set(sizes[2:]) <= {1, 4} and sizes.count(1) > sizes.count(4)
