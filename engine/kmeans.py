"""k-means clustering: nearest centres, mergeable cluster statistics, and the k-means|| initialisation's math.

The model is Spark MLlib's ``KMeans`` (and scikit-learn's ``KMeans(algorithm="lloyd")``): ``k`` centres in
feature space minimising the inertia (within-cluster sum of squares) ``Σᵢ sᵢ ‖xᵢ − c(xᵢ)‖²``, where
``c(x)`` is the centre nearest ``x`` in squared Euclidean distance, ties going to the lowest index, and
``sᵢ`` the sample weight. Labels are ignored.

One Lloyd pass over the data is one MapReduce job: :func:`cluster_statistics` turns a block of rows (dense
or CSR) into a vector of sums, vectors of several blocks are merged by elementwise addition (in partition
order, so the bits are the same on every runner), and :func:`update_centers` gives the new centres: the
weighted mean of each cluster's rows. A cluster with no weight keeps its old centre (Spark's rule;
scikit-learn instead moves it to a far point). The statistics vector is
``[rows (k), weight (k), inertia (k), Σ s·x (k·d), Σ s·‖x‖² (1)]``.

k-means|| (Bahmani et al. 2012, Spark's default with ``initSteps = 2``) is driven by
:mod:`mrtrain.kmeans_training`; this module holds its pieces: :func:`sample_rows` keeps every row
with probability ``min(1, l·s·d²(x)/φ)`` (``l = 2k``, ``φ = Σ s·d²``) using a random stream that depends
only on the seed, the step and the partition (:func:`partition_stream`), and :func:`reduce_candidates`
reduces the weighted candidates to ``k`` centres on the driver with weighted k-means++ and weighted Lloyd
steps (Spark's ``LocalKMeans``).

Parameter layout: ``theta`` is the row-major ravel of the ``(k, d)`` centres. A *parameter point* of the
jobs is one centre, so :attr:`KMeansModel.n_params` is ``d`` and the jobs receive the centres as the
``(k, d)`` array of points.
"""

import logging

import numpy as np

from mrtrain.engine.models import is_sparse, sample_weights

log = logging.getLogger(__name__)

#: The model kind.
KMEANS = "kmeans"
#: k-means|| sampling steps (Spark's ``initSteps``).
DEFAULT_INIT_STEPS = 2
#: Weighted Lloyd iterations on the candidates after k-means++ (Spark's ``LocalKMeans`` uses 30).
LOCAL_LLOYD_ITERATIONS = 30
#: Cells (rows × centres) of one block of squared distances: bounds a task's temporary memory (32 MiB).
BLOCK_CELLS = 2**22
#: Random stream tags: the first centre, the per-partition sampling streams, k-means++ on the driver.
FIRST_CENTER, SAMPLING, PLUS_PLUS = 1, 2, 3


class KMeansModel:
    """k-means over ``d`` features; see the module docstring. Build it with
    :func:`mrtrain.engine.registry.make_model` (``"kmeans"``).

    Attributes
    ----------
    kind : str
        ``"kmeans"``.
    n_features : int
        ``d``.
    n_params : int
        ``d``: the length of one parameter point (one centre) as the jobs receive them.
    classes, n_classes : None
        Labels are ignored.
    fit_intercept : bool
        False: centres have no intercept.
    dense_only : bool
        False: dense and CSR features.
    clusters : bool
        True: it clusters rows (no labels needed to evaluate; its parameters are centres).
    statistics_only : bool
        False: Lloyd passes, not one statistics pass.
    """

    kind = KMEANS
    classes = None
    n_classes = None
    fit_intercept = False
    dense_only = False
    clusters = True
    statistics_only = False

    def __init__(self, n_features):
        self.n_features = n_features
        self.n_params = n_features

    def spec(self):
        """What rebuilds the model (:func:`mrtrain.engine.registry.model_from_spec`)."""
        return {"kind": self.kind, "n_features": self.n_features, "classes": None, "fit_intercept": False}

    def __repr__(self):
        return f"KMeansModel(n_features={self.n_features})"

    def encode_labels(self, y_raw):
        """The labels as float64: k-means ignores them."""
        return np.asarray(y_raw, dtype=np.float64)

    def centers(self, theta):
        """The centres of a parameter vector, shape (k, d).

        Raises
        ------
        ValueError
            If ``theta`` is not ``k·d`` finite numbers for some ``k >= 1``.
        """
        theta = np.asarray(theta, dtype=np.float64)
        d = self.n_features
        if theta.ndim > 2 or theta.size == 0 or theta.size % d or (theta.ndim == 2 and theta.shape[1] != d):
            raise ValueError(f"The centres of {self!r} must be k x {d} numbers for some k >= 1. Got shape "
                             f"{theta.shape} instead.")
        return theta.reshape(-1, d)

    def coefficients(self, theta):
        """``(centres (k, d), None)``: k-means has no intercept."""
        return self.centers(theta).copy(), None

    def decision_function(self, X, theta):
        """Euclidean distances from every row to every centre, shape (n, k) (scikit-learn's ``transform``)."""
        centers = self.centers(theta)
        X = self.features(X)
        scores = squared_distances(X, centers)
        return np.sqrt(np.maximum(scores, 0.0))

    def predict(self, X, theta):
        """``{"prediction": (n,), "distance": (n,)}``: the nearest centre's index (as float) and the Euclidean
        distance to it."""
        labels, distances = nearest_centers(self.features(X), self.centers(theta))
        return {"prediction": labels.astype(np.float64), "distance": np.sqrt(distances)}

    def features(self, X):
        """``X`` as float64 (n, d): a dense array, or a CSR matrix whose values are float64."""
        if is_sparse(X):
            from scipy import sparse

            if X.ndim != 2 or X.shape[1] != self.n_features:
                raise ValueError(f"X must have shape (n, {self.n_features}) for {self!r}. Got {X.shape} "
                                 "instead.")
            X = X.tocsr()
            return sparse.csr_array((X.data.astype(np.float64, copy=False), X.indices, X.indptr),
                                    shape=X.shape)
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n, {self.n_features}) for {self!r}. Got {X.shape} instead.")
        return X.astype(np.float64, copy=False)


def _row_blocks(n, k):
    """Row ranges of at most :data:`BLOCK_CELLS` / k rows."""
    step = max(1, BLOCK_CELLS // max(k, 1))
    return [(start, min(start + step, n)) for start in range(0, n, step)]


def _row_norms(X):
    """``‖x‖²`` of every row, (n,)."""
    if is_sparse(X):
        squares = X.multiply(X)
        return np.asarray(squares.sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", X, X)


def squared_distances(X, centers):
    """``‖x − c‖²`` for every row and centre, (n, k), by ``‖x‖² − 2x·c + ‖c‖²`` (may be slightly negative)."""
    scores = -2.0 * np.asarray(X @ centers.T)
    scores += np.einsum("ij,ij->i", centers, centers)
    scores += _row_norms(X)[:, None]
    return scores


def nearest_centers(X, centers):
    """Index of the nearest centre of every row and the squared distance to it.

    The index minimises ``‖c‖² − 2x·c`` (scikit-learn's Lloyd step), ties going to the lowest index. The
    distance of a dense row is computed directly, ``Σ (x − c)²``; that of a sparse row as
    ``‖x‖² − 2x·c + ‖c‖²``, clipped at 0.

    Parameters
    ----------
    X : ndarray or scipy.sparse CSR matrix of shape (n, d), float64
    centers : ndarray of shape (k, d)

    Returns
    -------
    labels : ndarray of shape (n,), int64
    distances : ndarray of shape (n,), float64
    """
    n = X.shape[0]
    labels = np.empty(n, dtype=np.int64)
    distances = np.empty(n)
    center_norms = np.einsum("ij,ij->i", centers, centers)
    for start, stop in _row_blocks(n, len(centers)):
        block = X[start:stop]
        scores = -2.0 * np.asarray(block @ centers.T)
        scores += center_norms
        nearest = np.argmin(scores, axis=1)
        labels[start:stop] = nearest
        if is_sparse(block):
            best = scores[np.arange(stop - start), nearest] + _row_norms(block)
            distances[start:stop] = np.maximum(best, 0.0)
        else:
            difference = block - centers[nearest]
            distances[start:stop] = np.einsum("ij,ij->i", difference, difference)
    return labels, distances


def statistics_length(k, d):
    """Length of the vector :func:`cluster_statistics` returns for ``k`` centres and ``d`` features."""
    return 3 * k + k * d + 1


def cluster_statistics(X, w, centers):
    """Sums of one block of rows assigned to their nearest centres (see the module docstring for the layout).

    Parameters
    ----------
    X : ndarray or scipy.sparse CSR matrix of shape (n, d), float64
    w : ndarray of shape (n,) or None
        Non-negative sample weights; None means all ones.
    centers : ndarray of shape (k, d)

    Returns
    -------
    ndarray of shape (statistics_length(k, d),), float64
    """
    k, d = centers.shape
    n = X.shape[0]
    s = sample_weights(w, n)
    labels, distances = nearest_centers(X, centers)
    rows = np.bincount(labels, minlength=k).astype(np.float64)
    weight = np.bincount(labels, weights=s, minlength=k)
    inertia = np.bincount(labels, weights=s * distances, minlength=k)
    sums = np.zeros((k, d))
    for start, stop in _row_blocks(n, k):
        onehot = np.zeros((stop - start, k))
        onehot[np.arange(stop - start), labels[start:stop]] = s[start:stop]
        sums += np.asarray(X[start:stop].T @ onehot).T
    return np.concatenate([rows, weight, inertia, sums.ravel(), [s @ _row_norms(X)]])


class ClusterStatistics:
    """The merged statistics of a pass, split into named parts.

    Attributes
    ----------
    rows : ndarray of shape (k,)
        Rows assigned to each centre.
    weight : ndarray of shape (k,)
        Their total sample weight.
    inertia : ndarray of shape (k,)
        Their weighted sum of squared distances to the centre.
    sums : ndarray of shape (k, d)
        Their weighted sum of features.
    square_sum : float
        ``Σ s·‖x‖²`` over all rows.
    """

    def __init__(self, vector, k, d):
        vector = np.asarray(vector, dtype=np.float64)
        if vector.shape != (statistics_length(k, d),):
            raise ValueError(f"The k-means statistics of k={k}, d={d} must have shape "
                             f"({statistics_length(k, d)},). Got {vector.shape} instead.")
        self.rows, self.weight, self.inertia = vector[:k], vector[k : 2 * k], vector[2 * k : 3 * k]
        self.sums = vector[3 * k : 3 * k + k * d].reshape(k, d)
        self.square_sum = float(vector[-1])

    def mean_variance(self):
        """The weighted variance of the features averaged over features (scikit-learn's scale of ``tol``)."""
        total = self.weight.sum()
        if not total > 0:
            return 0.0
        mean = self.sums.sum(axis=0) / total
        return max(self.square_sum / total - float(mean @ mean), 0.0) / self.sums.shape[1]


def update_centers(statistics, centers):
    """Lloyd's update: each cluster's weighted mean; a cluster of weight 0 keeps its centre.

    Returns
    -------
    new_centers : ndarray of shape (k, d)
    shift : float
        The largest squared move of a centre.
    """
    weight = statistics.weight[:, None]
    new = np.where(weight > 0, statistics.sums / np.where(weight > 0, weight, 1.0), centers)
    moves = np.einsum("ij,ij->i", new - centers, new - centers)
    return new, float(moves.max(initial=0.0))


def partition_stream(seed, step, partition_id):
    """The random generator of the k-means|| sampling step ``step`` on partition ``partition_id``: the same on
    every runner and node, whichever task reads the partition."""
    return np.random.default_rng([seed, SAMPLING, step, partition_id])


def sample_rows(X, w, candidates, phi, oversampling, rng):
    """The rows a k-means|| step keeps: each with probability ``min(1, l·s·d²/φ)``, as dense rows.

    Parameters
    ----------
    X : ndarray or scipy.sparse CSR matrix of shape (n, d), float64
    w : ndarray of shape (n,) or None
    candidates : ndarray of shape (c, d)
        The candidate centres so far.
    phi : float
        ``Σ s·d²`` over the whole dataset at ``candidates``; with ``φ = 0`` no row is kept.
    oversampling : float
        ``l``.
    rng : numpy.random.Generator
        :func:`partition_stream`; one uniform draw per row, in row order.

    Returns
    -------
    ndarray of shape (m, d)
    """
    n = X.shape[0]
    s = sample_weights(w, n)
    draws = rng.random(n)
    if not phi > 0:
        return np.zeros((0, X.shape[1]))
    _, distances = nearest_centers(X, candidates)
    keep = np.flatnonzero(draws < np.minimum(1.0, oversampling * s * distances / phi))
    rows = X[keep]
    return rows.toarray() if is_sparse(rows) else np.array(rows, dtype=np.float64)


def first_center_row(seed, partition_rows):
    """``(partition index, row)`` of k-means||'s first centre: a uniform draw over all rows.

    Parameters
    ----------
    seed : int >= 0
    partition_rows : sequence of int
        Rows of each partition, in partition order.
    """
    total = int(sum(partition_rows))
    index = int(np.random.default_rng([seed, FIRST_CENTER, 0, 0]).integers(total))
    ends = np.cumsum(partition_rows)
    partition = int(np.searchsorted(ends, index, side="right"))
    return partition, index - int(ends[partition] - partition_rows[partition])


def kmeans_plus_plus(points, weights, k, rng):
    """Weighted k-means++: the first centre drawn with probability ∝ weight, each next one ∝ weight·d².

    When every point of positive weight is a centre already (fewer distinct points than ``k``), the next
    centre is the first point not chosen yet, or a repeat of the last centre.

    Returns
    -------
    ndarray of shape (k, d)
    """
    weights = np.asarray(weights, dtype=np.float64)
    chosen = [_draw(weights, rng) if weights.sum() > 0 else 0]
    closest = np.einsum("ij,ij->i", points - points[chosen[0]], points - points[chosen[0]])
    for _ in range(1, k):
        mass = weights * closest
        if mass.sum() > 0:
            index = _draw(mass, rng)
        else:
            free = np.setdiff1d(np.arange(len(points)), chosen)
            index = int(free[0]) if free.size else chosen[-1]
        chosen.append(index)
        difference = points - points[index]
        closest = np.minimum(closest, np.einsum("ij,ij->i", difference, difference))
    return points[chosen].copy()


def _draw(mass, rng):
    """An index drawn with probability ∝ ``mass`` (>= 0, positive sum)."""
    cumulative = np.cumsum(mass)
    return int(min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"), len(mass) - 1))


def local_lloyd(points, weights, centers, max_iter=LOCAL_LLOYD_ITERATIONS):
    """Weighted Lloyd iterations on in-memory points until the assignment stops changing or ``max_iter``.

    Returns
    -------
    ndarray of shape (k, d)
    """
    labels = None
    for _ in range(max_iter):
        new_labels, _ = nearest_centers(points, centers)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        statistics = ClusterStatistics(cluster_statistics(points, weights, centers), *centers.shape)
        centers, _ = update_centers(statistics, centers)
    return centers


def reduce_candidates(candidates, weights, k, seed):
    """The ``k`` initial centres from k-means||'s weighted candidates: all of them when there are at most
    ``k`` (padded by repeating the last), else weighted k-means++ then :func:`local_lloyd`.

    Parameters
    ----------
    candidates : ndarray of shape (c, d)
        Distinct candidate centres.
    weights : ndarray of shape (c,)
        Total sample weight of the rows nearest each candidate.
    k : int
    seed : int

    Returns
    -------
    ndarray of shape (k, d)
    """
    if len(candidates) <= k:
        if len(candidates) < k:
            log.warning("k-means|| found %d distinct candidate centres for k=%d: some clusters start on the "
                        "same centre and stay empty", len(candidates), k)
        padding = np.repeat(candidates[-1:], k - len(candidates), axis=0)
        return np.concatenate([candidates, padding])
    rng = np.random.default_rng([seed, PLUS_PLUS, 0, 0])
    return local_lloyd(candidates, weights, kmeans_plus_plus(candidates, weights, k, rng))


def kmeans_metrics(statistics):
    """``evaluate``'s metrics from the statistics of the final centres.

    Returns
    -------
    dict
        ``n`` (rows, or the weight sum for weighted data), ``inertia`` (weighted within-cluster sum of
        squares), ``cluster_sizes`` (rows nearest each centre, ints) and ``cluster_weights`` (their weight).
    """
    total = float(statistics.weight.sum())
    return {
        "n": int(total) if total.is_integer() and total < 2**53 else total,
        "inertia": float(statistics.inertia.sum()),
        "cluster_sizes": [int(count) for count in statistics.rows],
        "cluster_weights": [float(value) for value in statistics.weight],
    }
