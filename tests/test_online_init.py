"""Online-learning initialisation (``init="online"``): one AdaGrad epoch per partition, averaged by weight.

The epoch is checked against AdaGrad written out row block by row block in numpy; the starting point
against the weighted average of the partitions' epochs computed here, bit for bit; the job on the local
runner against the inline runner, bit for bit; training from it reaches the same optimum and counts its
pass; a resumed run does not repeat it.
"""

import numpy as np
import pytest

from mrtrain.engine.registry import make_model
from mrtrain.engine.start_point import BATCH_ROWS, LEARNING_RATE
from mrtrain.initialization import online_initial_point
from mrtrain.launcher import JobLauncher
from mrtrain.mr_jobs.online_init import EPSILON, online_epoch
from mrtrain.storage.dataset import Dataset
from mrtrain.trainer import Trainer
from tests.command import run
from tests.datasets import write


def logistic_data(n=1500, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ rng.normal(size=d) + 0.2)))).astype(float)
    w = rng.uniform(0.5, 2.0, size=n)
    return X, y, w


def test_epoch_is_adagrad_over_row_blocks():
    X, y, w = logistic_data(n=700)
    model = make_model("logistic", X.shape[1], classes=[0.0, 1.0])
    theta, squares = np.zeros(X.shape[1] + 1), np.zeros(X.shape[1] + 1)
    for start in range(0, len(y), 100):
        Xb, yb, wb = X[start:start + 100], y[start:start + 100], w[start:start + 100]
        p = 1 / (1 + np.exp(-(Xb @ theta[:-1] + theta[-1])))
        grad = np.r_[Xb.T @ (wb * (p - yb)), np.sum(wb * (p - yb))] / wb.sum()
        grad[:-1] += 0.01 * theta[:-1]
        squares += grad**2
        theta -= 0.3 * grad / np.sqrt(squares + EPSILON)
    epoch = online_epoch(model, X, y, w, l2=0.01, learning_rate=0.3, batch_rows=100)
    np.testing.assert_allclose(epoch, theta, rtol=1e-12, atol=1e-14)


def test_starting_point_is_the_weighted_average_of_the_partitions_epochs_on_every_runner(tmp_path):
    X, y, w = logistic_data()
    data = write(tmp_path / "d", X, y, w, 3)
    dataset = Dataset.open(data)
    model = make_model("logistic", X.shape[1], classes=dataset.classes)
    weights, total = 0.0, np.zeros(model.n_params)
    for index in range(3):
        Xk, yk, wk = dataset.read_partition(index)
        theta = online_epoch(model, Xk, model.encode_labels(yk), wk, l2=1e-3, learning_rate=LEARNING_RATE,
                             batch_rows=BATCH_ROWS)
        weights, total = weights + wk.sum(), total + wk.sum() * theta
    spec = {"kind": "logistic", "n_features": X.shape[1], "classes": dataset.classes, "fit_intercept": True}
    points = {}
    for runner in ("inline", "local"):
        with JobLauncher(dataset, spec, runner=runner) as launcher:
            points[runner] = online_initial_point(launcher, model, 1e-3)
    assert points["inline"].tobytes() == points["local"].tobytes()
    np.testing.assert_allclose(points["inline"], total / weights, rtol=1e-14, atol=1e-15)


def test_training_from_it_reaches_the_optimum_counts_its_pass_and_resumes_without_it(tmp_path):
    X, y, w = logistic_data()
    data = write(tmp_path / "d", X, y, w, 3)
    settings = dict(l2=1e-3, gtol=1e-9, tol=0.0, max_iter=200)
    zeros = Trainer("logistic", **settings).fit(data)
    online = Trainer("logistic", init="online", **settings).fit(data)
    assert online.history_[0] < zeros.history_[0]  # the first iterate already improves on zeros' first
    assert online.n_passes_ - online.n_iter_ == zeros.n_passes_ - zeros.n_iter_ + 1
    np.testing.assert_allclose(online.theta_, zeros.theta_, rtol=1e-6, atol=1e-7)
    assert online.settings["init"] == "online"
    checkpoints = str(tmp_path / "ck")
    Trainer("logistic", init="online", checkpoint_dir=checkpoints, **{**settings, "max_iter": 3}).fit(data)
    resumed = Trainer("logistic", init="online", checkpoint_dir=checkpoints, **settings).fit(data)
    assert resumed.theta_.tobytes() == online.theta_.tobytes()
    assert resumed.n_passes_ == online.n_passes_


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "logistic", "--init", "random"], "argument --init: invalid choice: 'random'"),
    (["--model", "multinomial-nb", "--init", "online"], "The 'init' parameter does not apply to model"),
])
def test_bad_init_is_refused(tmp_path, capsys, argv, message):
    X, y, _ = logistic_data(n=50)
    data = write(tmp_path / "d", np.abs(X), y, None, 2)
    status, out, err = run(capsys, "train", data, *argv)
    assert status == 2 and out == ""
    assert message in err[-1]
