"""Data passes OWL-QN needs with an l1 penalty against L-BFGS with the same strength as l2 only.

Run ``python3 -m benchmarks.l1_passes``: prints a Markdown table. For each problem scikit-learn solves both
penalized problems to high precision (``Lasso`` / ``ElasticNet`` / saga ``LogisticRegression`` for the
l1 side, ``Ridge`` / lbfgs ``LogisticRegression`` for the l2 side); mrtrain trains on the inline runner
with ``tol = 0`` and counts the data passes until its objective is within 1e-6 relative of scikit-learn's
(both scored by mrtrain's :class:`mrtrain.engine.objective.Objective` on all rows). The l2 twin is trained
twice: by L-BFGS (the comparison the ratio makes) and by OWL-QN without l1, which takes L-BFGS's
directions with OWL-QN's line search, to show how much of OWL-QN's count comes from its line search alone.
The last column is what the l1 problem costs once its zero pattern is known: L-BFGS, in memory, on the
smooth problem left when the coefficients that are 0 in scikit-learn's solution are held at 0 and the l1
term is the linear function it is inside that solution's orthant (:func:`passes_on_known_support`).
"""

import logging
import os
import tempfile
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, Lasso, LogisticRegression, Ridge

from mrtrain.engine.loop import initial_status, optimize
from mrtrain.engine.objective import Objective
from mrtrain.engine.optimizers import LBFGS
from mrtrain.engine.optimizers.base import Evaluation
from mrtrain.engine.registry import make_model
from mrtrain.storage.dataset import write_dataset
from mrtrain.trainer import Trainer

log = logging.getLogger(__name__)

#: Relative distance to scikit-learn's objective that counts as reached.
TARGET_RTOL = 1e-6
#: Passes allowed to each mrtrain run.
MAX_PASSES = 400


def _standardized(X):
    return (X - X.mean(axis=0)) / X.std(axis=0)


def _correlated(seed=0, n=2000, d=50):
    """Binary logistic data with correlated features and a sparse true coefficient vector."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) @ (np.eye(d) + 0.3 * rng.normal(size=(d, d)))
    truth = np.where(rng.random(d) < 0.3, rng.normal(size=d), 0.0)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-X @ truth))).astype(float)
    return _standardized(X), y


def problems():
    """``(name, model, X, y, l1, l2)``: the l1 run; its l2-only twin has ``l2 = l1 + l2``."""
    cancer = load_breast_cancer(return_X_y=True)
    diabetes = load_diabetes(return_X_y=True)
    Xc, yc = _standardized(cancer[0]), cancer[1].astype(float)
    Xd, yd = _standardized(diabetes[0]), diabetes[1]
    Xs, ys = _correlated()
    return [
        ("breast_cancer", "logistic", Xc, yc, 0.01, 0.0),
        ("breast_cancer", "logistic", Xc, yc, 0.001, 0.0),
        ("breast_cancer", "logistic", Xc, yc, 0.005, 0.005),
        ("diabetes", "linear", Xd, yd, 1.0, 0.0),
        ("diabetes", "linear", Xd, yd, 0.5, 0.5),
        ("correlated 2000x50", "logistic", Xs, ys, 0.002, 0.0),
    ]


def sklearn_solution(kind, X, y, l1, l2):
    """``(coef, intercept)`` of scikit-learn's solution of mrtrain's objective with these penalties."""
    n = len(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if kind == "linear":
            if l1 == 0:
                fitted = Ridge(alpha=n * l2, tol=1e-14).fit(X, y)
            elif l2 == 0:
                fitted = Lasso(alpha=l1, tol=1e-14, max_iter=100_000).fit(X, y)
            else:
                fitted = ElasticNet(alpha=l1 + l2, l1_ratio=l1 / (l1 + l2), tol=1e-14,
                                    max_iter=100_000).fit(X, y)
            return fitted.coef_, fitted.intercept_
        C = 1.0 / (n * (l1 + l2))
        if l1 == 0:
            fitted = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X, y)
        else:
            fitted = LogisticRegression(C=C, l1_ratio=l1 / (l1 + l2), solver="saga", tol=1e-12,
                                        max_iter=100_000).fit(X, y)
        return fitted.coef_[0], fitted.intercept_[0]


def passes_to_target(data, kind, X, y, l1, l2, optimizer=None):
    """``(passes to scikit-learn's objective + 1e-6 relative or None, optimizer)`` of one mrtrain run
    (``optimizer`` None: the default one)."""
    model = make_model(kind, X.shape[1], classes=[0.0, 1.0] if kind == "logistic" else None)
    objective = Objective(model, l2, l1)
    coef, intercept = sklearn_solution(kind, X, y, l1, l2)
    theta = np.append(coef, intercept)
    sums = model.partial_sums(X, model.encode_labels(y), None, theta[None, :])
    reference = objective.evaluations(sums, theta[None, :])[0].value
    target = reference + TARGET_RTOL * abs(reference)
    reached = []

    def record(progress):
        if progress.objective <= target and not reached:
            reached.append(progress.passes)

    fitted = Trainer(kind, l1=l1, l2=l2, optimizer=optimizer, max_iter=MAX_PASSES, tol=0.0, gtol=1e-12,
                     callback=record).fit(data)
    return (reached[0] if reached else None), fitted.settings["optimizer"]


def passes_on_known_support(kind, X, y, l1, l2):
    """Passes L-BFGS needs to come within 1e-6 relative of scikit-learn's objective when the zero pattern
    and the signs of scikit-learn's solution are given.

    The coefficients that are 0 there stay 0; on the others ``l1‖w‖₁`` is ``l1·sign(w*)·w``, a linear
    term, so the objective is smooth and its minimum is the l1 problem's. Evaluated in memory on all rows
    (the same sums a pass makes, in one block); reaching the target is judged by the true objective.
    """
    model = make_model(kind, X.shape[1], classes=[0.0, 1.0] if kind == "logistic" else None)
    objective = Objective(model, l2, l1)
    labels = model.encode_labels(y)
    coef, intercept = sklearn_solution(kind, X, y, l1, l2)
    theta = np.append(coef, intercept)

    def true_values(points):
        return [ev.value for ev in objective.evaluations(model.partial_sums(X, labels, None, points), points)]

    reference = true_values(theta[None, :])[0]
    target = reference + TARGET_RTOL * abs(reference)
    slope = objective.l1_weights * np.sign(theta)
    kept = (theta != 0) | (objective.l1_weights == 0)

    def evaluate(points, hessian):
        points = points * kept
        smooth = Objective(model, l2).evaluations(model.partial_sums(X, labels, None, points), points)
        return [Evaluation(ev.value + float(slope @ point), (ev.grad + slope) * kept)
                for point, ev in zip(points, smooth, strict=True)]

    reached = []

    def record(status):
        if not reached and true_values(status.state.x[None, :] * kept)[0] <= target:
            reached.append(status.passes)

    optimizer = LBFGS()
    optimize(optimizer, evaluate, initial_status(optimizer, np.zeros(model.n_params)), max_iter=MAX_PASSES,
             tol=0.0, gtol=1e-12, on_iteration=record)
    return reached[0] if reached else None


def main():
    logging.basicConfig(level=logging.ERROR)
    print("| data | model | l1 | l2 | OWL-QN passes | L-BFGS passes, l2 = l1 + l2 only | ratio "
          "| OWL-QN passes, l1 = 0, l2 = l1 + l2 | L-BFGS passes, l1 with its zeros and signs known |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="mrtrain-l1-") as tmp:
        for i, (name, kind, X, y, l1, l2) in enumerate(problems()):
            data = os.path.join(tmp, f"data{i}")
            write_dataset(data, X, y, None, partitions=2)
            with_l1, optimizer = passes_to_target(data, kind, X, y, l1, l2)
            l2_only, _ = passes_to_target(data, kind, X, y, 0.0, l1 + l2)
            same_search, _ = passes_to_target(data, kind, X, y, 0.0, l1 + l2, optimizer="owlqn")
            assert optimizer == "owlqn"
            ratio = f"{with_l1 / l2_only:.2f}" if with_l1 and l2_only else "n/a"
            known = passes_on_known_support(kind, X, y, l1, l2)
            print(f"| {name} | {kind} | {l1:g} | {l2:g} | {with_l1} | {l2_only} | {ratio} | {same_search} "
                  f"| {known} |")


if __name__ == "__main__":
    main()
