"""Naive Bayes classifiers: class-wise feature statistics of a block, their merge, and the fitted model.

Three event models, each scikit-learn's estimator of the same name with the same smoothing (``alpha``,
or ``var_smoothing`` for the Gaussian one), ``fit_prior=True``, and Bernoulli's ``binarize=0.0``:

- ``multinomial-nb`` (:class:`sklearn.naive_bayes.MultinomialNB`): features are counts (>= 0, dense or
  sparse). With ``N_cj = Σ_{i in c} s_i x_ij`` and smoothing ``α``,
  ``log P(x_j | c) = log(N_cj + α) - log(Σ_j N_cj + d α)``;
- ``bernoulli-nb`` (:class:`sklearn.naive_bayes.BernoulliNB`): features are binarized, ``x > 0``
  (dense or sparse). With ``N_cj`` the weighted count of rows of class ``c`` whose feature ``j`` is
  positive and ``N_c`` the class weight, ``P(x_j = 1 | c) = (N_cj + α) / (N_c + 2α)``;
- ``gaussian-nb`` (:class:`sklearn.naive_bayes.GaussianNB`): dense features; per class the weighted
  mean ``θ_cj`` and variance ``σ²_cj``, plus ``ε = var_smoothing · max_j Var(x_j)`` (the unweighted
  variance over all rows, as scikit-learn) added to every variance.

The class log prior is ``log(N_c / Σ_c N_c)`` with ``N_c = Σ_{i in c} s_i``.

Fitting takes one pass: :func:`class_statistics` turns one block (a partition) into a vector, and
:func:`merge_statistics` merges the partitions' vectors in partition order. The discrete models' vectors
are sums, ``[N_c (K), N_cj (K * d)]``. The Gaussian one holds ``(count, mean, M2)`` per class and one more
group of all rows with unit weights (for ``ε``), ``M2 = Σ s (x - mean)²``; blocks are merged with Chan et
al.'s pairwise update ``M2 = M2_a + M2_b + δ² n_a n_b / n``, which does not lose the precision that
``Σx² - (Σx)²/n`` loses when the mean dwarfs the spread. :func:`naive_bayes_parameters` turns the merged
statistics into the parameter vector.

Parameter layout: ``theta`` is the row-major ravel of a ``(K, q)`` matrix; for the discrete models row
``c`` is ``[log P(x_1 | c), ..., log P(x_d | c), log P(c)]`` (scikit-learn's ``feature_log_prob_`` and
``class_log_prior_``, ``q = d + 1``); for ``gaussian-nb`` it is ``[θ_c1..θ_cd, σ²_c1..σ²_cd, log P(c)]``
(``theta_``, ``var_``, ``q = 2d + 1``). The decision function is the joint log-likelihood
``log P(c) + log P(x | c)`` of every class and the probabilities are its softmax, computed as
scikit-learn does.
"""


import numpy as np

from mrtrain.engine.losses import MultinomialLoss
from mrtrain.engine.models import Model, is_sparse, sample_weights
from mrtrain.engine.params import check_number
from mrtrain.storage.errors import DataError


class NaiveBayesModel(Model):
    """A naive Bayes classifier over ``d`` features and ``K`` classes; see the module docstring.

    Build it with :func:`mrtrain.engine.registry.make_model`. It shares :class:`Model`'s label encoding
    (class indices), predictions (class and ``probabilities``, the softmax of the joint log-likelihoods) and
    metrics (``loss`` is the multinomial cross-entropy of the joint log-likelihoods, i.e. the log loss), but
    it is fitted from statistics in one pass, not by an optimizer: :meth:`class_statistics` of every block,
    :meth:`merge` of the blocks' vectors in partition order, :meth:`parameters` of the total. It has no
    penalty. A subclass is one event model: :class:`MultinomialNaiveBayes`, :class:`BernoulliNaiveBayes`,
    :class:`GaussianNaiveBayes`.

    Attributes
    ----------
    kind : str
        The event model's name (a class attribute).
    default_smoothing : float
        scikit-learn's ``alpha`` or ``var_smoothing`` default (a class attribute).
    width : int
        Parameters per class: ``d + 1``, or ``2d + 1`` for the Gaussian model.
    """

    kind = None
    default_smoothing = None
    statistics_only = True
    #: Parameters per feature and class: 1, or 2 (mean and variance) for the Gaussian model.
    per_feature = 1

    def __init__(self, n_features, classes):
        super().__init__(self.kind, n_features, MultinomialLoss(len(classes)), classes, True)
        self.width = self.per_feature * n_features + 1
        self.n_params = self.n_outputs * self.width

    def penalty_mask(self):
        """All zeros, shape (p,): nothing is penalized."""
        return np.zeros(self.n_params)

    def coefficients(self, theta):
        """``(coef, intercept)``: ``feature_log_prob_`` (K, d) or ``[theta_ | var_]`` (K, 2d), and
        ``class_log_prior_`` (K,)."""
        rows = np.asarray(theta, dtype=np.float64).reshape(self.n_outputs, self.width)
        return rows[:, :-1].copy(), rows[:, -1].copy()

    def decision_function(self, X, theta):
        """Joint log-likelihoods ``log P(c) + log P(x | c)``, shape (n, K) (:meth:`Model.decision_function`;
        ``X`` dense only for ``gaussian-nb``)."""
        return self._joint_log_likelihood(X, self._check_theta(theta).reshape(self.n_outputs, self.width))

    def statistics_length(self):
        """Length of the vector :meth:`class_statistics` returns."""
        raise NotImplementedError

    def class_statistics(self, X, y, w):
        """Class-wise statistics of one block of rows: see :func:`class_statistics`.

        Checks the block (dense features for a :attr:`dense_only` model; sample weights, all ones for
        None; class indices as ``intp``) and hands it to the event model's :meth:`_block_statistics`.
        """
        X = self._dense_features(X) if self.dense_only else self._features(X)
        s = sample_weights(w, X.shape[0])
        return self._block_statistics(X, np.asarray(y, dtype=np.intp), s)

    def _block_statistics(self, X, y, s):
        """The statistics vector of a checked block: features ``X`` (n, d), class indices ``y`` (n,),
        sample weights ``s`` (n,)."""
        raise NotImplementedError

    def merge(self, total, vector):
        """``total`` (a float64 copy, which may be updated in place) merged with the next block's
        ``vector``: the sum for the discrete models."""
        total += vector
        return total

    def parameters(self, statistics, smoothing):
        """The parameter vector from merged statistics: see :func:`naive_bayes_parameters`."""
        class_count = self._class_count(statistics)
        empty = np.flatnonzero(~(class_count > 0))
        if empty.size:
            raise DataError(f"column 'label': expected every class to have a total sample weight > 0, found "
                            f"0 for class {self.classes[empty[0]]!r}")
        log_prior = np.log(class_count) - np.log(class_count.sum())
        return self._parameters(statistics, class_count, log_prior, smoothing)

    def _dense_features(self, X):
        if is_sparse(X):
            raise ValueError(f"Model {self.kind!r} needs dense features. Got a sparse matrix instead.")
        return self._features(X)


class _DiscreteNaiveBayes(NaiveBayesModel):
    """The event models of counts: statistics ``[N_c (K), N_cj (K * d)]``, summed across blocks."""

    default_smoothing = 1.0

    def statistics_length(self):
        return self.n_outputs * (1 + self.n_features)

    def _block_statistics(self, X, y, s):
        k = self.n_outputs
        n = X.shape[0]
        X = self._events(X)
        onehot = np.zeros((n, k))
        onehot[np.arange(n), y] = s
        feature_count = np.asarray(X.T @ onehot).T
        return np.concatenate([onehot.sum(axis=0), feature_count.ravel()])

    def _class_count(self, statistics):
        return statistics[: self.n_outputs]

    def _parameters(self, statistics, class_count, log_prior, smoothing):
        k, d = self.n_outputs, self.n_features
        feature_count = statistics[k:].reshape(k, d)
        smoothed = feature_count + smoothing
        denominator = self._denominator(smoothed, class_count, smoothing)
        feature_log_prob = np.log(smoothed) - np.log(denominator.reshape(-1, 1))
        return np.column_stack([feature_log_prob, log_prior]).ravel()


class MultinomialNaiveBayes(_DiscreteNaiveBayes):
    """``multinomial-nb``: features are counts (>= 0, dense or sparse)."""

    kind = "multinomial-nb"

    def _events(self, X):
        _check_counts(X)
        return X

    def _denominator(self, smoothed, class_count, smoothing):
        return smoothed.sum(axis=1)

    def _joint_log_likelihood(self, X, rows):
        X = self._features(X)
        return np.asarray(X @ rows[:, : self.n_features].T) + rows[:, -1]


class BernoulliNaiveBayes(_DiscreteNaiveBayes):
    """``bernoulli-nb``: features binarized, ``x > 0`` (dense or sparse)."""

    kind = "bernoulli-nb"

    def _events(self, X):
        return binarized(X)

    def _denominator(self, smoothed, class_count, smoothing):
        return class_count + 2.0 * smoothing

    def _joint_log_likelihood(self, X, rows):
        X = self._features(X)
        feature_log_prob = rows[:, : self.n_features]
        neg_prob = np.log(1.0 - np.exp(feature_log_prob))
        jll = np.asarray(binarized(X) @ (feature_log_prob - neg_prob).T)
        jll += rows[:, -1] + neg_prob.sum(axis=1)
        return jll


class GaussianNaiveBayes(NaiveBayesModel):
    """``gaussian-nb``: dense features; per class ``(count, mean, M2)``, and the same for all rows with unit
    weights, merged by Chan et al.'s pairwise update."""

    kind = "gaussian-nb"
    default_smoothing = 1e-9
    per_feature = 2
    dense_only = True

    def statistics_length(self):
        return (self.n_outputs + 1) * (1 + 2 * self.n_features)

    def _block_statistics(self, X, y, s):
        k = self.n_outputs
        n = X.shape[0]
        groups = [(y == c, s) for c in range(k)] + [(np.ones(n, dtype=bool), np.ones(n))]
        return np.concatenate([_moments(X[rows], weights[rows]) for rows, weights in groups])

    def merge(self, total, vector):
        return _merge_moments(total, vector, self.n_outputs + 1, self.n_features)

    def _class_count(self, statistics):
        k, d = self.n_outputs, self.n_features
        return statistics.reshape(k + 1, 1 + 2 * d)[:k, 0]

    def _parameters(self, statistics, class_count, log_prior, smoothing):
        k, d = self.n_outputs, self.n_features
        groups = statistics.reshape(k + 1, 1 + 2 * d)
        mean = groups[:k, 1 : 1 + d]
        epsilon = smoothing * np.max(groups[k, 1 + d :] / groups[k, 0])
        with np.errstate(invalid="ignore", divide="ignore"):
            var = groups[:k, 1 + d :] / class_count[:, None] + epsilon
        return np.column_stack([mean, var, log_prior]).ravel()

    def _joint_log_likelihood(self, X, rows):
        X = self._dense_features(X)
        d = self.n_features
        mean, var = rows[:, :d], rows[:, d : 2 * d]
        log_prior = rows[:, -1]
        jll = np.empty((X.shape[0], self.n_outputs))
        for c in range(self.n_outputs):
            n_ij = -0.5 * np.sum(np.log(2.0 * np.pi * var[c]))
            n_ij -= 0.5 * np.sum((X - mean[c]) ** 2 / var[c], axis=1)
            jll[:, c] = log_prior[c] + n_ij
        return jll


#: The event models by name, in :data:`mrtrain.engine.models.NAIVE_BAYES_MODELS`' order.
NAIVE_BAYES_CLASSES = {cls.kind: cls
                       for cls in (MultinomialNaiveBayes, BernoulliNaiveBayes, GaussianNaiveBayes)}
#: Smoothing when none is given: scikit-learn's ``alpha`` and ``var_smoothing`` defaults.
DEFAULT_SMOOTHING = {kind: cls.default_smoothing for kind, cls in NAIVE_BAYES_CLASSES.items()}


def make_naive_bayes(kind, n_features, *, classes, fit_intercept=True):
    """Build the :class:`NaiveBayesModel` of ``kind`` (called by :func:`mrtrain.engine.registry.make_model`).

    ``fit_intercept`` must be True: the class log priors take the intercepts' place.
    """
    if kind not in NAIVE_BAYES_CLASSES:
        raise ValueError(f"The 'kind' parameter must be one of {tuple(NAIVE_BAYES_CLASSES)}. Got {kind!r} "
                         "instead.")
    if not fit_intercept:
        raise ValueError(f"The 'fit_intercept' parameter of model {kind!r} must be True (the class log "
                         f"priors are its intercepts). Got {fit_intercept!r} instead.")
    return NAIVE_BAYES_CLASSES[kind](n_features, classes)


def check_smoothing(kind, smoothing):
    """The smoothing of ``kind`` (its :data:`DEFAULT_SMOOTHING` when None) as a float > 0, else ValueError.

    Zero is refused: a feature never seen with a class would get ``log 0``, a constant feature a zero
    variance.
    """
    if smoothing is None:
        return DEFAULT_SMOOTHING[kind]
    return check_number("smoothing", smoothing, minimum=0, strictly=True)


def binarized(X):
    """``X > 0`` as float64, dense or CSR as given (the sparse structure keeps only positive entries)."""
    if is_sparse(X):
        from scipy import sparse

        positive = sparse.csr_array(X, dtype=np.float64, copy=True)
        positive.data = (positive.data > 0).astype(np.float64)
        positive.eliminate_zeros()
        return positive
    return (X > 0).astype(np.float64)


def statistics_length(model):
    """Length of the vector :func:`class_statistics` returns for ``model``."""
    return model.statistics_length()


def class_statistics(model, X, y, w):
    """Class-wise statistics of one block of rows (see the module docstring for the layout).

    Parameters
    ----------
    model : NaiveBayesModel
    X : ndarray or scipy.sparse CSR matrix of shape (n, d)
        Features (dense for ``gaussian-nb``, counts >= 0 for ``multinomial-nb``).
    y : ndarray of shape (n,), int
        Class indices (``model.encode_labels``).
    w : ndarray of shape (n,) or None
        Non-negative sample weights; None means all ones.

    Returns
    -------
    ndarray of shape (statistics_length(model),), float64

    Raises
    ------
    mrtrain.storage.errors.DataError
        For a negative count (``multinomial-nb``), naming the row (1-based) and the feature (0-based).
    ValueError
        For sparse features of ``gaussian-nb``.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # overflowed sums are refused by the driver
        return model.class_statistics(X, y, w)


def _moments(X, s):
    """``[Σs, weighted mean (d), Σ s (x - mean)² (d)]`` of a block; mean and M2 are 0 for weight 0."""
    total = s.sum()
    if not total > 0:
        return np.zeros(1 + 2 * X.shape[1])
    mean = np.average(X, axis=0, weights=s)
    m2 = s @ (X - mean) ** 2
    return np.concatenate([[total], mean, m2])


def _check_counts(X):
    values = X.data if is_sparse(X) else X
    if values.size and values.min() < 0:
        if is_sparse(X):
            position = int(np.argmax(X.data < 0))
            row = int(np.searchsorted(X.indptr, position, side="right")) - 1
            feature = int(X.indices[position])
        else:
            row, feature = (int(i) for i in np.unravel_index(np.argmax(X < 0), X.shape))
        raise DataError(f"row {row + 1}: feature {feature}: expected a count >= 0 for model "
                        f"'multinomial-nb', found {float(X[row, feature])!r}")


def merge_statistics(model, vectors):
    """Merge the :func:`class_statistics` vectors of several blocks, left to right.

    Parameters
    ----------
    model : NaiveBayesModel
    vectors : sequence of ndarray of shape (statistics_length(model),)
        In partition order: the result's bits depend on the order, never on the runner.

    Returns
    -------
    ndarray of shape (statistics_length(model),)
    """
    total = np.array(vectors[0], dtype=np.float64)
    for vector in vectors[1:]:
        total = model.merge(total, vector)
    return total


def _merge_moments(a, b, groups, d):
    """Chan et al.'s pairwise merge of two ``(count, mean, M2)`` vectors of ``groups`` groups."""
    a, b = a.reshape(groups, 1 + 2 * d), np.asarray(b).reshape(groups, 1 + 2 * d)
    n_a, n_b = a[:, :1], b[:, :1]
    n = n_a + n_b
    share = np.divide(n_b, n, out=np.zeros_like(n), where=n > 0)
    delta = b[:, 1 : 1 + d] - a[:, 1 : 1 + d]
    mean = a[:, 1 : 1 + d] + delta * share
    m2 = a[:, 1 + d :] + b[:, 1 + d :] + delta**2 * n_a * share
    merged = np.concatenate([n, mean, m2], axis=1)
    # A group empty on one side is the other side's, bit for bit.
    merged = np.where(n_b > 0, merged, a)
    merged = np.where(n_a > 0, merged, b)
    return merged.ravel()


def naive_bayes_parameters(model, statistics, smoothing):
    """The parameter vector (see the module docstring) from merged statistics.

    Parameters
    ----------
    model : NaiveBayesModel
    statistics : ndarray of shape (statistics_length(model),)
        The merge of every block's :func:`class_statistics`.
    smoothing : float > 0
        ``alpha`` of the discrete models, ``var_smoothing`` of ``gaussian-nb``.

    Returns
    -------
    ndarray of shape (model.n_params,)

    Raises
    ------
    mrtrain.storage.errors.DataError
        If a class has total sample weight 0 (its prior would be 0).
    """
    return model.parameters(statistics, smoothing)
