"""Seeded synthetic benchmark data, written once in mrtrain's dataset format and cached.

Three problems, each at a full and a ``--quick`` size:

- ``higgs``: dense binary logistic, 1M rows x 28 features, shaped like the HIGGS data (correlated
  features, a weak linear signal: training accuracy near 0.7);
- ``wide``: dense binary logistic, 200k rows x 200 features;
- ``linear``: linear regression with Gaussian noise, 500k rows x 50 features.

Datasets live in ``.cache/bench/<name>-<rows>x<d>-<dtype>-p<partitions>`` (git-ignored) and are rebuilt
only when missing. Generation is deterministic: same seed, same bytes, same dataset checksum.
"""

import logging
import os
from dataclasses import dataclass

import numpy as np

from mrtrain.storage.dataset import Dataset, write_dataset

log = logging.getLogger(__name__)

CACHE_DIR = os.path.join(".cache", "bench")


@dataclass(frozen=True)
class Problem:
    """One benchmark problem.

    Attributes
    ----------
    name : str
    model : {"logistic", "linear"}
    rows, features : int
    l2 : float
        Strength of ``(l2/2)||w||^2`` for every system.
    seed : int
    """

    name: str
    model: str
    rows: int
    features: int
    l2: float
    seed: int


FULL = (
    Problem("higgs", "logistic", 1_000_000, 28, 1e-4, 1),
    Problem("wide", "logistic", 200_000, 200, 1e-4, 2),
    Problem("linear", "linear", 500_000, 50, 1e-3, 3),
)

QUICK = (
    Problem("higgs", "logistic", 20_000, 28, 1e-3, 1),
    Problem("wide", "logistic", 4_000, 50, 1e-3, 2),
    Problem("linear", "linear", 10_000, 20, 1e-3, 3),
)


def generate(problem, chunk=100_000):
    """The rows of ``problem``: features (n, d) float64, labels (n,) float64.

    Features are standard normal mixed by a fixed random matrix (correlated columns, varying scale);
    logistic labels are Bernoulli of ``sigmoid(x.w + b)``, linear labels ``x.w + b + N(0, 1)``.
    Rows are drawn in chunks so the result does not depend on the machine.
    """
    rng = np.random.default_rng(problem.seed)
    d = problem.features
    mixing = np.eye(d) + rng.normal(scale=0.3 / np.sqrt(d), size=(d, d))
    scale = rng.uniform(0.5, 2.0, size=d)
    coef = rng.normal(scale=1.0 / np.sqrt(d), size=d)
    intercept = 0.3
    X = np.empty((problem.rows, d))
    y = np.empty(problem.rows)
    for start in range(0, problem.rows, chunk):
        stop = min(start + chunk, problem.rows)
        block = (rng.normal(size=(stop - start, d)) @ mixing) * scale
        eta = block @ coef + intercept
        if problem.model == "logistic":
            y[start:stop] = rng.random(stop - start) < 1.0 / (1.0 + np.exp(-eta))
        else:
            y[start:stop] = eta + rng.normal(size=stop - start)
        X[start:stop] = block
    return X, y


def dataset_path(problem, dtype="float64", partitions=2, cache_dir=CACHE_DIR):
    """Where the dataset of ``problem`` with this dtype and partition count is cached."""
    name = f"{problem.name}-{problem.rows}x{problem.features}-{dtype}-p{partitions}"
    return os.path.join(cache_dir, name)


def ensure_dataset(problem, dtype="float64", partitions=2, cache_dir=CACHE_DIR):
    """Open the cached dataset of ``problem``, writing it first if it is missing.

    Returns
    -------
    mrtrain.storage.dataset.Dataset
    """
    path = dataset_path(problem, dtype, partitions, cache_dir)
    if not os.path.isdir(path):
        os.makedirs(cache_dir, exist_ok=True)
        X, y = generate(problem)
        log.info("writing %s (%d x %d, %s, %d partitions)", path, *X.shape, dtype, partitions)
        write_dataset(path, X, y, partitions=partitions, dtype=dtype)
    return Dataset.open(path)
