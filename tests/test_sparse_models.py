"""Model math on scipy.sparse CSR features: parity with dense, derivatives, no densifying, Newton's limit."""

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from mrtrain.cli import main
from mrtrain.engine.metrics import metric_partials
from mrtrain.engine.models import GLM_MODELS
from mrtrain.engine.optimizers.newton import MAX_PARAMS, Newton, check_model_size
from mrtrain.engine.registry import make_model
from tests.datasets import write

CLASSES = {"linear": None, "logistic": [-1.0, 2.0], "softmax": [0.0, 1.5, 3.0], "poisson": None,
           "linear-svc": [-1.0, 2.0]}


def sparse_block(kind, n=60, d=7, seed=0, dtype=np.float64, fit_intercept=True):
    """Model, CSR features (n, d) with empty rows and an empty column, encoded labels, weights."""
    rng = np.random.default_rng(seed)
    model = make_model(kind, d, classes=CLASSES[kind], fit_intercept=fit_intercept)
    dense = rng.normal(size=(n, d)) * (rng.uniform(size=(n, d)) < 0.35)
    dense[::7] = 0.0
    dense[:, 2] = 0.0
    X = sp.csr_array(dense.astype(dtype))
    if kind == "linear":
        y_raw = dense @ rng.normal(size=d) + rng.normal(size=n)
    elif kind == "poisson":
        y_raw = rng.poisson(np.exp(0.3 * dense @ rng.normal(size=d))).astype(float)
    else:
        y_raw = rng.choice(CLASSES[kind], size=n)
    w = rng.uniform(0.1, 3.0, size=n)
    return model, X, model.encode_labels(y_raw), w


def thetas_for(model, m, seed=1):
    return 0.5 * np.random.default_rng(seed).normal(size=(m, model.n_params))


def assert_close(actual, expected):
    """Equal to 1e-12 relative to the largest entry (entries near 0 cancel in both computations)."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    assert_allclose(actual, expected, rtol=1e-12, atol=1e-12 * scale)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", GLM_MODELS)
def test_partial_sums_on_csr_equal_the_dense_sums(kind, dtype, fit_intercept):
    model, X, y, w = sparse_block(kind, dtype=dtype, fit_intercept=fit_intercept)
    thetas = thetas_for(model, 3)
    sparse_sums = model.partial_sums(X, y, w, thetas, hessian=2)
    dense_sums = model.partial_sums(X.toarray(), y, w, thetas, hessian=2)
    assert sparse_sums.weight == dense_sums.weight
    assert_close(sparse_sums.loss, dense_sums.loss)
    assert_close(sparse_sums.grad, dense_sums.grad)
    assert sparse_sums.hess.shape == dense_sums.hess.shape
    assert_close(sparse_sums.hess, dense_sums.hess)
    assert_array_equal(sparse_sums.hess, sparse_sums.hess.transpose(0, 2, 1))


@pytest.mark.parametrize("kind", GLM_MODELS)
def test_other_sparse_formats_and_unweighted_rows_work(kind):
    model, X, y, _ = sparse_block(kind)
    thetas = thetas_for(model, 2)
    expected = model.partial_sums(X.toarray(), y, None, thetas, hessian=1)
    for features in (sp.csr_matrix(X), sp.csc_array(X), sp.coo_array(X)):
        sums = model.partial_sums(features, y, None, thetas, hessian=1)
        assert_close(sums.grad, expected.grad)
        assert_close(sums.hess, expected.hess)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", GLM_MODELS)
def test_decision_function_predict_and_metrics_on_csr_equal_dense(kind, dtype):
    model, X, y, w = sparse_block(kind, n=200, dtype=dtype, seed=3)
    theta = thetas_for(model, 1, seed=4)[0]
    dense = X.toarray()
    assert_close(model.decision_function(X, theta), model.decision_function(dense, theta))
    sparse_out, dense_out = model.predict(X, theta), model.predict(dense, theta)
    assert sparse_out.keys() == dense_out.keys()
    for key in dense_out:
        assert_close(sparse_out[key], dense_out[key])
    assert_close(metric_partials(model, X, y, w, theta), metric_partials(model, dense, y, w, theta))


@pytest.mark.parametrize("kind", GLM_MODELS)
def test_empty_sparse_block_gives_zeros(kind):
    model = make_model(kind, 5, classes=CLASSES[kind])
    X = sp.csr_array((0, 5))
    sums = model.partial_sums(X, np.zeros(0), None, thetas_for(model, 2), hessian=1)
    assert sums.weight == 0.0
    assert_array_equal(sums.grad, 0.0)
    assert sums.hess.shape == (1, model.n_params, model.n_params)


def central_difference(func, theta, eps=1e-6):
    columns = []
    for j in range(theta.size):
        step = np.zeros_like(theta)
        step[j] = eps
        columns.append((func(theta + step) - func(theta - step)) / (2 * eps))
    return np.stack(columns, axis=-1)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("kind", GLM_MODELS)
def test_sparse_gradient_and_hessian_match_finite_differences(kind, fit_intercept):
    model, X, y, w = sparse_block(kind, n=40, d=5, seed=5, fit_intercept=fit_intercept)
    theta = thetas_for(model, 1, seed=6)[0]
    sums = model.partial_sums(X, y, w, theta[None, :], hessian=1)
    numeric_grad = central_difference(
        lambda t: model.partial_sums(X, y, w, t[None, :]).loss[0], theta
    )
    numeric_hess = central_difference(
        lambda t: model.partial_sums(X, y, w, t[None, :]).grad[0], theta
    )
    assert_allclose(sums.grad[0], numeric_grad, rtol=1e-6, atol=1e-6)
    assert_allclose(sums.hess[0], numeric_hess, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(4, 6), (4,)])
def test_sparse_features_of_the_wrong_shape_are_refused(shape):
    model = make_model("linear", 5)
    X = sp.csr_array(np.ones((4, 6))) if len(shape) == 2 else sp.coo_array(np.ones(4))
    with pytest.raises(ValueError, match=r"X must have shape \(n, 5\).*Got \(4,? ?6?\) instead"):
        model.partial_sums(X, np.zeros(4), None, np.zeros((1, 6)))


# Runs in a child process whose address space is capped a little above what it uses after imports, so
# densifying X (1000 x 2**22 float64 = 32 GiB) fails with MemoryError instead of exhausting the machine.
NO_DENSIFY_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    import scipy.sparse as sp
    from mrtrain.engine.metrics import metric_partials
    from mrtrain.engine.models import GLM_MODELS
    from mrtrain.engine.registry import make_model

    n, d, per_row = 1000, 2**22, 5
    rng = np.random.default_rng(0)
    indices = np.sort(rng.choice(d, size=(n, per_row), replace=True), axis=1).astype(np.int32).ravel()
    values = rng.normal(size=n * per_row).astype(np.float32)
    X = sp.csr_array((values, indices, np.arange(0, n * per_row + 1, per_row, dtype=np.int32)), shape=(n, d))
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    limit = size + int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    classes = {"linear": None, "logistic": [0.0, 1.0], "softmax": [0.0, 1.0, 2.0], "poisson": None,
               "linear-svc": [0.0, 1.0]}
    report = {}
    for kind in GLM_MODELS:
        model = make_model(kind, d, classes=classes[kind])
        y = model.encode_labels(rng.integers(0, len(classes[kind] or [0, 1]), size=n).astype(float))
        theta = np.full(model.n_params, 1e-3)
        sums = model.partial_sums(X, y, None, theta[None, :])
        eta = model.decision_function(X, theta)
        prediction = model.predict(X, theta)["prediction"]
        metrics = metric_partials(model, X, y, None, theta)
        touched = np.unique(indices)
        grad = sums.grad[0].reshape(model.n_outputs, -1)[:, :d]
        report[kind] = {
            "finite": bool(np.all(np.isfinite(sums.grad)) and np.isfinite(metrics).all()),
            "zero_outside_touched": bool(np.count_nonzero(np.delete(grad, touched, axis=1)) == 0),
            "rows": [eta.shape[0], prediction.shape[0]],
        }
        del sums, grad
    print(json.dumps(report))
""")


def test_wide_sparse_features_are_never_densified():
    headroom = 1536 * 2**20
    done = subprocess.run(
        [sys.executable, "-c", NO_DENSIFY_SCRIPT, str(headroom)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert set(report) == set(GLM_MODELS)
    for kind, facts in report.items():
        assert facts == {"finite": True, "zero_outside_touched": True, "rows": [1000, 1000]}, kind


def test_newton_refuses_more_than_max_params_and_names_lbfgs():
    check_model_size(MAX_PARAMS)
    Newton().init(np.zeros(MAX_PARAMS))
    with pytest.raises(ValueError, match=r"The 'optimizer' parameter must be 'lbfgs' or 'gd'.*"
                                         rf"p = {MAX_PARAMS + 1}\)\. Got 'newton' instead\."):
        Newton().init(np.zeros(MAX_PARAMS + 1))
    with pytest.raises(ValueError, match=r"more than 4096 parameters.*p = 1048577"):
        check_model_size(2**20 + 1)


def test_train_with_newton_on_too_many_features_exits_2_and_writes_nothing(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = write(tmp_path / "data", rng.normal(size=(8, MAX_PARAMS)), rng.normal(size=8), partitions=1)
    checkpoints = tmp_path / "checkpoints"
    code = main(["-q", "train", data, "--model", "linear", "--optimizer", "newton", "--runner", "inline",
                 "--checkpoint-dir", str(checkpoints)])
    assert code == 2
    assert re.fullmatch(
        r"mrtrain: error: The 'optimizer' parameter must be 'lbfgs' or 'gd' .* p = 4097\)\. "
        r"Got 'newton' instead\.\n",
        capsys.readouterr().err,
    )
    assert not checkpoints.exists()
