"""Scoring: mrtrain's objective and accuracy of any system's coefficients on the in-memory rows, and the
scikit-learn optimum that defines the common target."""

import time

import numpy as np

from mrtrain.engine.objective import Objective
from mrtrain.engine.registry import make_model

#: A system reaches the target when its objective is within this relative distance of the optimum.
TARGET_RTOL = 1e-6


class Scorer:
    """Objective, accuracy and target of one problem, computed on all its rows in memory.

    Parameters
    ----------
    problem : benchmarks.data.Problem
    X : ndarray, shape (n, d)
    y : ndarray, shape (n,)
    classes : list of float or None
    """

    def __init__(self, problem, X, y, classes):
        self.problem = problem
        self.X = X
        self.y = y
        self.model = make_model(problem.model, X.shape[1], classes=classes)
        self.objective = Objective(self.model, problem.l2)
        self.encoded = self.model.encode_labels(y)
        self.optimum = None
        self.target = None

    def value(self, theta):
        """mrtrain's objective ``mean loss + (l2/2)||w||^2`` at ``theta`` (shape (d + 1,))."""
        theta = np.asarray(theta, dtype=np.float64)
        sums = self.model.partial_sums(self.X, self.encoded, None, theta[None, :])
        return self.objective.evaluations(sums, theta[None, :])[0].value

    def accuracy(self, theta):
        """Training accuracy for classifiers, R^2 for linear regression."""
        prediction = self.model.predict(self.X, theta)["prediction"]
        if self.problem.model == "linear":
            return 1.0 - np.sum((self.y - prediction) ** 2) / np.sum((self.y - self.y.mean()) ** 2)
        return float(np.mean(prediction == self.y))

    def reached(self, value):
        """Whether an objective value is within :data:`TARGET_RTOL` of the optimum."""
        return bool(value <= self.target)

    def set_optimum(self, value):
        """Fix the optimum and the target ``optimum + TARGET_RTOL * |optimum|``."""
        self.optimum = float(value)
        self.target = self.optimum + TARGET_RTOL * abs(self.optimum)


def sklearn_reference(scorer):
    """Solve the problem with scikit-learn to high precision; fix the scorer's optimum from it.

    ``LogisticRegression(newton-cholesky, C = 1/(n l2))`` or ``Ridge(cholesky, alpha = n l2)``, both at
    tol 1e-12, minimise ``n l2`` times mrtrain's objective.

    Returns
    -------
    dict
        The reference row for the table.
    """
    from sklearn.linear_model import LogisticRegression, Ridge

    problem, X, y = scorer.problem, scorer.X, scorer.y
    n = len(y)
    started = time.perf_counter()
    if problem.model == "logistic":
        name = "scikit-learn newton-cholesky (reference)"
        fitted = LogisticRegression(C=1.0 / (n * problem.l2), solver="newton-cholesky", tol=1e-12,
                                    max_iter=100).fit(X, y)
        theta = np.append(fitted.coef_[0], fitted.intercept_[0])
        iterations = int(fitted.n_iter_[0])
    else:
        name = "scikit-learn Ridge cholesky (reference)"
        fitted = Ridge(alpha=n * problem.l2, solver="cholesky").fit(X, y)
        theta = np.append(fitted.coef_, fitted.intercept_)
        iterations = 1
    seconds = time.perf_counter() - started
    value = scorer.value(theta)
    scorer.set_optimum(value)
    return {"system": name, "fit_s": seconds, "to_target_s": seconds, "iterations": iterations,
            "passes": None, "objective": value, "accuracy": scorer.accuracy(theta), "reached": True}
