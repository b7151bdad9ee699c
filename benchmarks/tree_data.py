"""Seeded tabular data for the tree ensembles' benchmark (issue 23): non-linear, with missing values.

``generate(rows, seed)`` draws ``rows`` rows of 28 features and a binary label, in whole chunks of 100,000
rows from one seeded generator, so the same seed gives the same bits on any machine and row ``i`` does not
depend on ``rows``. The label is Bernoulli of ``sigmoid(f(x))``, where ``f`` has what trees find and a
linear model does not:

- thresholds: a step in ``x0`` at 0.3 and in ``x7`` at -1;
- interactions: ``x1 < -0.5 and x2 > 0``, and the product ``x4 * x5``;
- a smooth non-linearity: ``sin(2 x3)``;
- a skewed column ``x20`` (log-normal, heavy right tail), entering through ``log1p``;
- a small-integer code column ``x21`` (0..7, skewed frequencies), each code with its own effect;
- 5% missing values (NaN) in ``x22``, whose missingness itself carries signal (missing rows lean
  positive), as it often does in real data;
- ``x6``, ``x8`` .. ``x11`` weakly linear; the other columns noise, some correlated with the signal ones.

``make_split(rows, seed)`` gives the training rows and a held-out set of ``rows // 4`` rows drawn after them
from the same stream. ``ensure_datasets`` writes both as mrtrain datasets (``missing: true``) under
``.cache/bench/trees-<rows>-s<seed>-p<partitions>{,-test}`` (git-ignored), once.
"""

import logging
import os

import numpy as np

from mrtrain.storage.dataset import Dataset, write_dataset

log = logging.getLogger(__name__)

N_FEATURES = 28
#: The column with missing values, and their share.
MISSING_COLUMN, MISSING_RATE = 22, 0.05
#: The skewed column and the small-integer code column.
SKEWED_COLUMN, CODE_COLUMN = 20, 21
#: Effect of each code 0..7 of the code column, and how often each occurs.
CODE_EFFECTS = np.array([0.0, 0.6, -0.8, 0.3, 1.2, -0.4, 0.0, -1.1])
CODE_FREQUENCIES = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02])
CHUNK = 100_000
CACHE_DIR = os.path.join(".cache", "bench")
SIZES = (200_000, 1_000_000)


def _chunk(rng, n):
    """``n`` rows: features (n, 28) with NaN in the missing column, labels (n,) in {0, 1}."""
    Z = rng.normal(size=(n, N_FEATURES))
    X = Z.copy()
    X[:, 12:16] = Z[:, 12:16] * 0.6 + Z[:, 0:4] * 0.8  # noise columns correlated with signal columns
    X[:, SKEWED_COLUMN] = rng.lognormal(mean=0.0, sigma=1.2, size=n)
    X[:, CODE_COLUMN] = rng.choice(len(CODE_EFFECTS), size=n, p=CODE_FREQUENCIES)
    missing = rng.random(n) < MISSING_RATE
    x22 = X[:, MISSING_COLUMN]
    f = (1.5 * (X[:, 0] > 0.3) - 1.2 * ((X[:, 1] < -0.5) & (X[:, 2] > 0)) + np.sin(2.0 * X[:, 3])
         + 0.8 * X[:, 4] * X[:, 5] - 0.9 * (X[:, 7] < -1.0) + 0.5 * np.log1p(X[:, SKEWED_COLUMN])
         + CODE_EFFECTS[X[:, CODE_COLUMN].astype(int)]
         + np.where(missing, 0.8, 0.7 * np.tanh(2.0 * x22))
         + 0.25 * (X[:, 6] + X[:, 8] - X[:, 9] + 0.5 * X[:, 10] - 0.5 * X[:, 11]) - 0.9)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-f))).astype(np.float64)
    X[missing, MISSING_COLUMN] = np.nan
    return X, y


def generate(rows, seed=23):
    """``rows`` rows of the benchmark's data.

    Parameters
    ----------
    rows : int >= 1
    seed : int

    Returns
    -------
    X : ndarray, shape (rows, 28), float64, NaN in column 22 (about 5% of rows)
    y : ndarray, shape (rows,), float64 in {0, 1}
    """
    rng = np.random.default_rng(seed)
    parts = [_chunk(rng, CHUNK) for _ in range(0, rows, CHUNK)]  # whole chunks: row i never depends on rows
    return np.concatenate([p[0] for p in parts])[:rows], np.concatenate([p[1] for p in parts])[:rows]


def make_split(rows, seed=23):
    """``(X_train, y_train, X_test, y_test)``: ``rows`` training rows and ``rows // 4`` held-out rows (at
    least 1,000), drawn after the training rows from the same seeded stream."""
    n_test = max(rows // 4, 1000)
    X, y = generate(rows + n_test, seed)
    return X[:rows], y[:rows], X[rows:], y[rows:]


def ensure_datasets(rows, seed=23, partitions=2, cache_dir=CACHE_DIR):
    """The training and held-out mrtrain datasets of ``make_split(rows, seed)``, written once.

    Returns
    -------
    train, test : mrtrain.storage.dataset.Dataset
    """
    base = os.path.join(cache_dir, f"trees-{rows}-s{seed}-p{partitions}")
    paths = (base, base + "-test")
    if not all(os.path.exists(os.path.join(p, "_dataset.json")) for p in paths):
        X, y, X_test, y_test = make_split(rows, seed)
        os.makedirs(cache_dir, exist_ok=True)
        for path, (features, labels), parts in ((paths[0], (X, y), partitions),
                                                (paths[1], (X_test, y_test), 1)):
            if not os.path.exists(path):
                log.info("writing %s (%d rows)", path, len(labels))
                write_dataset(path, features, labels, partitions=parts, missing=True,
                              feature_names=[f"x{j}" for j in range(N_FEATURES)])
    return Dataset.open(paths[0]), Dataset.open(paths[1])
