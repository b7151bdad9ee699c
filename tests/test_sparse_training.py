"""Training on sparse (CSR) datasets end to end: the same objective as scikit-learn on the same sparse
matrix, the same model as on the densified data, bitwise the same on every runner and for any number of
reducers, libsvm ingested without densifying, and a dimension that could never be densified."""

import json

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.sparse import csr_array, random_array
from sklearn.linear_model import LogisticRegression

from mrtrain.cli import main
from mrtrain.storage.dataset import Dataset, write_dataset
from mrtrain.trainer import Trainer

TIGHT = {"optimizer": "newton", "tol": 0.0, "gtol": 1e-10, "max_iter": 50, "runner": "inline"}


def sparse_problem(kind, seed=0, n=400, d=30, density=0.15):
    """Seeded CSR features (some empty rows) and labels with a signal, for each model kind."""
    rng = np.random.default_rng(seed)
    X = csr_array(random_array((n, d), density=density, format="csr", rng=rng))
    X.sort_indices()
    eta = X @ rng.normal(size=d) + 0.2
    if kind == "linear":
        y = eta + 0.1 * rng.normal(size=n)
    elif kind == "logistic":
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    elif kind == "softmax":
        y = np.digitize(eta + 0.3 * rng.normal(size=n), np.quantile(eta, [1 / 3, 2 / 3])).astype(float)
    else:
        y = rng.poisson(np.exp(0.5 * eta)).astype(float)
    return X, y


def write_sparse(path, X, y, partitions=3):
    write_dataset(str(path), X, y, partitions=partitions)
    return str(path)


@pytest.mark.parametrize("kind", ["linear", "logistic", "softmax", "poisson"])
def test_sparse_training_equals_training_on_the_densified_data(tmp_path, kind):
    X, y = sparse_problem(kind)
    sparse = Trainer(kind, l2=0.01, **TIGHT).fit(write_sparse(tmp_path / "sparse", X, y))
    write_dataset(str(tmp_path / "dense"), X.toarray(), y, partitions=3)
    dense = Trainer(kind, l2=0.01, **TIGHT).fit(str(tmp_path / "dense"))
    assert Dataset.open(str(tmp_path / "sparse")).layout == "csr"
    assert sparse.converged_ and dense.converged_
    assert_allclose(sparse.theta_, dense.theta_, rtol=1e-9, atol=1e-12)


def test_sparse_logistic_matches_sklearn_on_the_same_csr_matrix(tmp_path):
    X, y = sparse_problem("logistic", seed=3)
    l2 = 0.01
    fitted = Trainer("logistic", l2=l2, **TIGHT).fit(write_sparse(tmp_path / "d", X, y))
    reference = LogisticRegression(C=1 / (len(y) * l2), solver="newton-cholesky", tol=1e-12,
                                   max_iter=1000).fit(X, y)
    assert_allclose(fitted.coef_, reference.coef_[0], rtol=1e-6, atol=1e-8)
    assert_allclose(fitted.intercept_, reference.intercept_[0], rtol=1e-6)


@pytest.mark.parametrize("reducers", [0, 1, 3])
def test_sparse_runners_agree_bitwise(tmp_path, reducers):
    X, y = sparse_problem("softmax", seed=5)
    data = write_sparse(tmp_path / "d", X, y)
    settings = {"optimizer": "lbfgs", "l2": 0.01, "max_iter": 4, "reducers": reducers}
    inline = Trainer("softmax", runner="inline", **settings).fit(data)
    local = Trainer("softmax", runner="local", **settings).fit(data)
    reference = Trainer("softmax", runner="inline", optimizer="lbfgs", l2=0.01, max_iter=4).fit(data)
    assert inline.theta_.tobytes() == local.theta_.tobytes() == reference.theta_.tobytes()


def test_libsvm_is_ingested_sparse_and_trains_evaluates_and_predicts(tmp_path, capsys):
    X, y = sparse_problem("logistic", seed=7, n=300, d=50)
    lines = []
    for i in range(X.shape[0]):
        row = slice(X.indptr[i], X.indptr[i + 1])
        pairs = " ".join(f"{j + 1}:{float(v)!r}" for j, v in zip(X.indices[row], X.data[row], strict=True))
        lines.append(f"{int(y[i])} {pairs}".rstrip())
    source = tmp_path / "train.libsvm"
    source.write_text("\n".join(lines) + "\n")
    data, checkpoints = str(tmp_path / "data"), str(tmp_path / "model")
    assert main(["-q", "ingest", str(source), data, "--partitions", "2", "--n-features", "60"]) == 0
    dataset = Dataset.open(data)
    assert dataset.layout == "csr" and dataset.n_features == 60
    capsys.readouterr()
    assert main(["-q", "train", data, "--model", "logistic", "--optimizer", "newton", "--l2", "0.01",
                 "--runner", "local", "--checkpoint-dir", checkpoints, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["converged"] and result["metrics"]["accuracy"] > 0.6
    assert len(result["coefficients"]) == 60
    output = str(tmp_path / "predictions")
    assert main(["-q", "predict", data, "--model-dir", checkpoints, "--output", output]) == 0
    assert main(["-q", "evaluate", data, "--model-dir", checkpoints, "--json"]) == 0


def test_a_dimension_that_could_never_be_densified_trains(tmp_path):
    """5,000 rows x 2^20 features (42 GB dense) with ~8 values per row: trained without densifying."""
    rng = np.random.default_rng(11)
    n, d, per_row = 5000, 2**20, 8
    indices = np.sort(rng.choice(d, size=(n, per_row)), axis=1)
    indices = np.array([np.unique(row) for row in indices], dtype=object)
    indptr = np.concatenate([[0], np.cumsum([len(row) for row in indices])])
    flat = np.concatenate(indices).astype(np.int32)
    X = csr_array((rng.normal(size=len(flat)), flat, indptr), shape=(n, d))
    y = (X @ rng.normal(size=d) > 0).astype(float)
    fitted = Trainer("logistic", optimizer="lbfgs", l2=1e-3, max_iter=3, runner="inline").fit(
        write_sparse(tmp_path / "wide", X, y, partitions=2)
    )
    assert fitted.coef_.shape == (d,)
    assert fitted.history_[-1] < fitted.history_[0]


def test_inspect_shows_a_datasets_layout_nnz_and_density(tmp_path, capsys):
    X, y = sparse_problem("linear", seed=13, n=100, d=40, density=0.1)
    data = write_sparse(tmp_path / "d", X, y, partitions=2)
    assert main(["inspect", data, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layout"] == "csr" and summary["nnz"] == X.nnz and summary["features"] == 40
    assert summary["density"] == X.nnz / (100 * 40) and summary["partitions"] == 2
