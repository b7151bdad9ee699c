"""Overflow is never a silently wrong model: non-finite objectives, directions and parameters are detected in
the driver and the map tasks, named, and reported as errors or as runs that did not converge."""

import io
import json
import logging
import sys
import warnings

import numpy as np
import pytest

from mrtrain.engine.loop import NonFiniteObjectiveError, initial_status, optimize
from mrtrain.engine.optimizers import make_optimizer
from mrtrain.engine.optimizers.base import Evaluation, first_armijo
from mrtrain.engine.optimizers.lbfgs import two_loop_direction
from mrtrain.launcher import JobLauncher
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.mr_jobs.partition_job import single_threaded_blas
from mrtrain.storage.dataset import Dataset
from tests.command import run
from tests.datasets import reference_data, write

HUGE = 1e300


def huge_linear(tmp_path):
    """Features around 1e300 and label = a + b: the squared loss at zero overflows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2)) * HUGE
    return write(tmp_path / "huge-linear", X, X[:, 0] + X[:, 1], partitions=2)


def huge_separable(tmp_path):
    """Separable classes with features around 1e300: the gradient's norm overflows."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2))
    return write(tmp_path / "huge-logistic", X * HUGE, (X[:, 0] > 0).astype(float), partitions=2)


@pytest.mark.parametrize("runner", ["inline", "local"])
@pytest.mark.parametrize(("options", "message"), [
    # The preconditioner's statistics pass comes first and overflows first (squares of ~1e300).
    ((), "the feature statistics are not finite"),
    (("--no-precondition",), "starting point is not finite"),
])
def test_an_overflowing_objective_is_a_clear_error_naming_the_partitions(tmp_path, capsys, runner, options,
                                                                         message):
    data = huge_linear(tmp_path)
    checkpoints = tmp_path / "checkpoints"
    status, out, err = run(capsys, "train", data, "--model", "linear", "--runner", runner,
                           "--checkpoint-dir", str(checkpoints), *options)
    assert status == 2 and out == ""
    assert len(err) == 1, err
    assert message in err[0] and "part-00000.parquet" in err[0], err
    assert "TypeError" not in err[0]
    assert not list(checkpoints.glob("ckpt-*"))


@pytest.mark.parametrize("optimizer", ["gd", "lbfgs"])
def test_overflowing_directions_never_count_as_converged(tmp_path, capsys, optimizer):
    # Without the preconditioner, whose statistics pass would stop first (squares of 1e300 overflow).
    status, out, _ = run(capsys, "train", huge_separable(tmp_path), "--model", "logistic", "--optimizer",
                         optimizer, "--runner", "inline", "--json", "--no-metrics", "--no-precondition")
    result = json.loads(out)
    assert status == 0
    assert result["converged"] is False, result
    assert result["stop_reason"] in ("line search found no decrease",
                                     "numerical overflow: the next trial points are not finite")


def test_an_overflowing_hessian_at_the_start_is_a_clear_error(tmp_path, capsys):
    status, out, err = run(capsys, "train", huge_separable(tmp_path), "--model", "logistic", "--optimizer",
                           "newton", "--runner", "inline")
    assert status == 2 and out == "" and len(err) == 1
    assert "Hessian max-norm inf" in err[0] and "part-0000" in err[0]


def test_steepest_descent_direction_of_a_huge_gradient_is_a_finite_unit_vector():
    grad = np.array([4e299, -3e299, 1e299])
    direction = two_loop_direction(grad, np.zeros((0, 3)), np.zeros((0, 3)))
    assert np.isfinite(direction).all()
    np.testing.assert_allclose(np.linalg.norm(direction), 1.0, rtol=1e-15)
    assert direction @ grad < 0


def test_a_step_without_descent_or_with_a_non_finite_gradient_is_not_accepted():
    finite = Evaluation(1.0, np.zeros(2))
    assert first_armijo(1.0, 0.0, [1.0], [finite]) is None
    assert first_armijo(1.0, float("-inf"), [1.0], [finite]) is None
    assert first_armijo(2.0, -1.0, [1.0], [Evaluation(1.0, np.array([np.inf, 0.0]))]) is None
    assert first_armijo(2.0, -1.0, [1.0], [finite]) == 0


def test_a_non_finite_starting_objective_stops_the_loop_with_what_overflowed():
    def evaluate(points, hessian):
        return [Evaluation(float("inf"), np.full(points.shape[1], np.nan))]

    optimizer = make_optimizer("lbfgs")
    with pytest.raises(NonFiniteObjectiveError, match=r"objective inf, gradient max-norm nan"):
        optimize(optimizer, evaluate, initial_status(optimizer, np.zeros(3)), max_iter=5, tol=0, gtol=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_map_tasks_refuse_non_finite_parameters(tmp_path, bad):
    X, y = reference_data("iris")
    dataset = Dataset.open(write(tmp_path / "iris", X, y, partitions=2))
    spec = {"kind": "softmax", "n_features": 4, "classes": [0.0, 1.0, 2.0], "fit_intercept": True}
    thetas = np.zeros((1, 15))
    thetas[0, 3] = bad
    with JobLauncher(dataset, spec, runner="inline") as launcher, \
            pytest.raises(ValueError, match=r"params\.npy: expected finite parameter points.*non-finite"):
        launcher.sum_vector(MRGradient, thetas, {"hessian": 0})


def test_warnings_in_task_math_are_logged_not_printed_to_a_bytes_stderr(monkeypatch, caplog):
    """mrjob's inline runner gives tasks a bytes stderr: a printed warning there was a TypeError."""
    monkeypatch.setattr(sys, "stderr", io.BytesIO())
    with caplog.at_level(logging.WARNING), single_threaded_blas():
        assert np.isinf(np.float64(1e300) * 1e300)  # no RuntimeWarning: overflow is checked explicitly
        warnings.warn("something odd", UserWarning, stacklevel=1)
    assert "UserWarning: something odd" in caplog.text


def test_evaluate_and_predict_refuse_overflowing_results(tmp_path, capsys):
    X = np.arange(1.0, 31.0)[:, None]
    checkpoints = tmp_path / "checkpoints"
    assert run(capsys, "train", write(tmp_path / "line", X, 2 * X[:, 0]), "--model", "linear",
               "--checkpoint-dir", str(checkpoints), "--no-metrics")[0] == 0
    huge = write(tmp_path / "huge", X / X.max() * 1.5e308, X[:, 0])  # finite features; 2·x overflows
    status, _, err = run(capsys, "evaluate", huge, "--model-dir", str(checkpoints))
    assert status == 2 and len(err) == 1 and "not finite" in err[0] and "part-0000" in err[0], err
    output = tmp_path / "predictions"
    status, _, err = run(capsys, "predict", huge, "--model-dir", str(checkpoints), "--output", str(output))
    assert status == 2 and len(err) == 1 and "expected a finite prediction" in err[0], err
    assert not output.exists()
