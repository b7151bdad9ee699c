"""The optimizers' preconditioner: standardized coordinates with the objective left as asked.

``Trainer(precondition=True)`` (the default for gd, lbfgs and owlqn) runs the optimizer on ``θ'`` with
``w = w'/s`` and ``b = b' - μ·w``, ``s = sqrt(var + l2)``, while the objective and its penalties stay those
of the stored features. It must find the same optimum (scikit-learn, and the unpreconditioned run), in
fewer passes on badly scaled data.

Tolerances: both runs stop at a relative objective change of 1e-12 on an objective of ~0.5; with the
objective l2-strongly convex (l2 = 1e-3) the distance to the optimum is then at most
sqrt(2·(f - f*)/l2) ~ 3e-5, so the objectives agree to 1e-9 relative and coefficients to 1e-4.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from mrtrain.engine.standardization import Standardization, feature_sums
from mrtrain.trainer import SettingsMismatchError, Trainer
from tests.command import run
from tests.datasets import write

L2 = 1e-3
TIGHT = {"tol": 1e-12, "gtol": 1e-10, "max_iter": 1000}


def badly_scaled(seed=5, n=2000):
    """Two numeric columns of very different spreads (one far from 0) next to three one-hot columns of
    Zipf-distributed levels (many seen in a handful of rows): the conditioning of click logs."""
    rng = np.random.default_rng(seed)
    levels = rng.zipf(1.3, size=(n, 3)) % 300
    one_hot = [sp.csr_matrix((np.ones(n), (np.arange(n), levels[:, j])), shape=(n, 300)) for j in range(3)]
    numeric = rng.normal(size=(n, 2)) * np.array([50.0, 0.02]) + np.array([200.0, 0.0])
    X = sp.hstack([sp.csr_matrix(numeric)] + one_hot).tocsr()
    w = rng.normal(size=X.shape[1])
    w[:2] = [0.01, 30.0]
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w - 2)))).astype(float)
    return X, y


def objective(X, y, coef, intercept, l2=L2, l1=0.0):
    eta = X @ coef + intercept
    return float(np.mean(np.logaddexp(0, eta) - y * eta) + 0.5 * l2 * coef @ coef + l1 * np.abs(coef).sum())


def test_the_preconditioner_is_the_diagonal_scale_centred_through_the_intercept():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4)) * np.array([1e-3, 1.0, 1e3, 0.0]) + np.array([5.0, 0.0, -2.0, 3.0])
    s = rng.random(50) + 0.5
    vector = feature_sums(X, s)
    mean = np.average(X, axis=0, weights=s)
    variance = np.average((X - mean) ** 2, axis=0, weights=s)
    with_intercept = Standardization.preconditioner(vector, 1, True, 0.25)
    assert_allclose(with_intercept.shift, mean, rtol=1e-12)
    assert_allclose(with_intercept.scale[:3], np.sqrt(variance[:3] + 0.25), rtol=1e-9)
    assert with_intercept.scale[3] == 1.0 and with_intercept.constant.tolist() == [False, False, False, True]
    # Without an intercept nothing absorbs a shift: scaled by the root mean square instead.
    without = Standardization.preconditioner(vector, 1, False, 0.25)
    assert_array_equal(without.shift, np.zeros(4))
    assert_allclose(without.scale, np.sqrt(np.average(X**2, axis=0, weights=s) + 0.25), rtol=1e-12)
    # The intercept's scale is 1 and the coefficients' are s: how l1 strengths move to w'.
    assert_array_equal(with_intercept.parameter_scales(), np.append(with_intercept.scale, 1.0))


def test_same_optimum_as_scikit_learn_in_a_fraction_of_the_passes(tmp_path):
    from sklearn.linear_model import LogisticRegression

    X, y = badly_scaled()
    data = write(tmp_path / "d", X, y)
    fast = Trainer("logistic", l2=L2, **TIGHT).fit(data)
    slow = Trainer("logistic", l2=L2, precondition=False, **{**TIGHT, "max_iter": 200}).fit(data)
    reference = LogisticRegression(C=1 / (len(y) * L2), tol=1e-12, max_iter=100_000).fit(X, y)
    best = objective(X, y, reference.coef_[0], reference.intercept_[0])
    assert fast.converged_ and fast.n_passes_ <= 60  # measured: 22
    assert fast.objective_ <= best * (1 + 1e-9)
    assert_allclose(objective(X, y, fast.coef_, fast.intercept_), fast.objective_, rtol=1e-12)
    assert_allclose(fast.coef_, reference.coef_[0], atol=2e-3 * np.abs(reference.coef_).max())
    # Without the preconditioner 200 iterations are still far from it (measured: 1000 do not converge).
    assert not slow.converged_ and slow.objective_ > fast.objective_ * (1 + 1e-7)


def test_l1_runs_with_per_coordinate_strengths_and_finds_the_same_sparse_optimum(tmp_path):
    X, y = badly_scaled(seed=6, n=800)
    data = write(tmp_path / "d", X, y)
    pre = Trainer("logistic", l2=L2, l1=2e-3, **TIGHT).fit(data)
    plain = Trainer("logistic", l2=L2, l1=2e-3, precondition=False, **{**TIGHT, "max_iter": 5000}).fit(data)
    assert pre.converged_ and plain.converged_
    assert pre.n_passes_ * 5 < plain.n_passes_  # measured: 12 and 313
    # The unpreconditioned run creeps: its relative change per iteration reaches 1e-12 while it is still
    # 4e-8 above (measured); the preconditioned one ends lower.
    assert pre.objective_ <= plain.objective_
    assert_allclose(pre.objective_, plain.objective_, rtol=1e-7)
    assert_allclose(objective(X, y, pre.coef_, pre.intercept_, l1=2e-3), pre.objective_, rtol=1e-12)
    assert 0 < np.count_nonzero(pre.coef_) < X.shape[1]
    assert_array_equal(pre.coef_ == 0, plain.coef_ == 0)


def test_a_checkpoint_made_without_it_is_not_resumed_with_it(tmp_path, capsys):
    X, y = badly_scaled(n=300)
    data = write(tmp_path / "d", X, y)
    checkpoints = str(tmp_path / "ck")
    Trainer("logistic", l2=L2, precondition=False, max_iter=3, checkpoint_dir=checkpoints).fit(data)
    with pytest.raises(SettingsMismatchError, match=r"cannot resume.*precondition"):
        Trainer("logistic", l2=L2, max_iter=3, checkpoint_dir=checkpoints).fit(data)
    # The CLI's switch, and inspect's line for each.
    status, _, _ = run(capsys, "train", data, "--model", "logistic", "--l2", str(L2), "--max-iter", "4",
                       "--no-precondition", "--checkpoint-dir", checkpoints, "--no-metrics")
    assert status == 0
    out = run(capsys, "inspect", checkpoints)[1]
    assert "optimizer    lbfgs, l2 0.001, l1 0" in out.splitlines()
    other = str(tmp_path / "ck2")
    assert run(capsys, "train", data, "--model", "logistic", "--l2", str(L2), "--max-iter", "4",
               "--checkpoint-dir", other, "--no-metrics")[0] == 0
    lines = run(capsys, "inspect", other)[1].splitlines()
    assert "optimizer    lbfgs, l2 0.001, l1 0, preconditioned" in lines


def test_a_grid_runs_each_member_in_the_coordinates_of_its_own_l2(tmp_path):
    """Grid members (here cv=2 and two l2 values) are preconditioned too, each with ``s = sqrt(var + l2)``
    of its own l2: every member reaches its scikit-learn optimum, on its own rows, in a fraction of the
    passes the unpreconditioned grid needs, and resumes from its checkpoint to the same bits."""
    from sklearn.linear_model import LogisticRegression

    from mrtrain.engine.folds import row_groups
    from mrtrain.families.glm_grid import member_parameters
    from mrtrain.storage.checkpoint import latest_checkpoint
    from mrtrain.storage.dataset import Dataset

    X, y = badly_scaled()
    data = write(tmp_path / "d", X, y)
    l2s = [L2, 1e-2]
    checkpoints = tmp_path / "ck"
    fast = Trainer("logistic", l2=l2s, cv=2, checkpoint_dir=str(checkpoints), **TIGHT).fit(data)
    slow = Trainer("logistic", l2=l2s, cv=2, precondition=False, **{**TIGHT, "max_iter": 200}).fit(data)
    checkpoint = latest_checkpoint(str(checkpoints))
    assert checkpoint.meta["settings"]["precondition"] is True
    thetas = member_parameters(checkpoint)
    groups = np.concatenate([row_groups({"kind": "folds", "k": 2, "seed": 0}, part.index, part.rows)
                             for part in Dataset.open(data).partitions])
    for c, l2 in enumerate(l2s):
        for f, rows in enumerate([groups != 0, groups != 1, np.ones(len(y), dtype=bool)]):  # folds, refit
            record = checkpoint.meta["grid"]["members"][c * 3 + f]
            if record["reason"] == "not selected by cross-validation":
                continue
            assert record["converged"] and record["passes"] <= 80, (c, f, record["passes"])  # measured: 17-30
            reference = LogisticRegression(C=1 / (rows.sum() * l2), tol=1e-12, max_iter=100_000).fit(
                X[rows], y[rows])
            best = objective(X[rows], y[rows], reference.coef_[0], reference.intercept_[0], l2=l2)
            coef, intercept = thetas[c * 3 + f][:-1], thetas[c * 3 + f][-1]
            assert objective(X[rows], y[rows], coef, intercept, l2=l2) <= best * (1 + 1e-9), (c, f)
    # Without the preconditioner the grid stops at max_iter (measured: 202 passes, far from the optimum).
    assert fast.n_passes_ < slow.n_passes_ and slow.objective_ > fast.objective_ * (1 + 1e-7)
    # The checkpoint directory loads as the selected model, and a rerun resumes it to the same bits.
    loaded = Trainer("logistic", l2=l2s, cv=2, checkpoint_dir=str(checkpoints), **TIGHT).fit(data)
    assert_array_equal(loaded.theta_, fast.theta_)


def test_a_grid_made_without_the_preconditioner_resumes_only_without_it(tmp_path):
    X, y = badly_scaled(n=300)
    data = write(tmp_path / "d", X, y)
    checkpoints = str(tmp_path / "ck")
    settings = {"l2": [L2, 1e-2], "cv": 2, "max_iter": 2, "checkpoint_dir": checkpoints}
    Trainer("logistic", precondition=False, **settings).fit(data)
    with pytest.raises(SettingsMismatchError, match=r"precondition: checkpoint has False, this run has True.*"
                                                    r"or pass --no-precondition to resume a grid"):
        Trainer("logistic", **settings).fit(data)
    assert Trainer("logistic", precondition=False, **settings).fit(data).n_passes_ > 0
