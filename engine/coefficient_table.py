"""Standard errors, z or t statistics and p-values of a fitted GLM's coefficients, from its Hessian.

For a GLM fitted by maximum likelihood (the mean loss is the mean negative log-likelihood up to a
constant), the covariance of the estimates is the inverse of the Fisher information, which at the optimum
is the Hessian of the *summed* weighted loss, ``W H`` with ``W = Σ sᵢ`` and ``H`` the Hessian of the mean
loss that the passes compute (sample weights are frequency weights). With a ridge penalty the Hessian of
the penalized objective is used, ``W (H + l2 · diag(mask))`` (the intercept unpenalized), as Spark's
``GeneralizedLinearRegressionSummary`` and H2O do; these are then standard errors of the ridge estimator
around its own expectation, not of the unpenalized one:

    Cov(θ) = φ · (W (H + l2 · diag(mask)))⁻¹

- logistic and poisson: dispersion φ = 1 and Wald z statistics, two-sided p-values from the normal
  distribution;
- linear (squared loss ½(y − η)²): φ = RSS / (W − p), estimated from the residuals
  (``RSS = 2 Σ sᵢ lᵢ``), and t statistics with ``W − p`` degrees of freedom (the classical OLS table).

The table is taken at the optimum, not wherever the optimizer stopped: :func:`newton_finish` takes Newton
steps ``δ = -(H + l2·diag(mask))⁻¹ g`` (one data pass with the Hessian each) from the fitted coefficients
until the remaining step is at most ``tol`` standard errors in the covariance's own norm,
``sqrt(δᵀ Cov⁻¹ δ) = sqrt(W δᵀ (H + l2·diag(mask)) δ / φ)``, which bounds every coefficient's distance from
the optimum in its standard errors and so every statistic's error (a p-value moves by at most
``0.8`` times that). :mod:`mrtrain.inference` runs the passes and keeps the table next to the
checkpoints. Refused, in one line, where the table would not mean what it says: an l1
penalty (no smooth optimum: the covariance of a lasso estimate is not the inverse Hessian), standardized
training (the table would be of the standardized coefficients), models other than linear, logistic and
poisson, more than :data:`MAX_PARAMS` parameters, ``W <= p`` for linear, or a singular Hessian (collinear
features, or a separable logistic fit), which names the smallest eigenvalue.

Quasi-separation (:func:`separation_probe`, :func:`check_identified`). When the classes of a logistic fit
can be split by a hyperplane, completely or with ties on it (for a Poisson fit: when the zero counts can), the
maximum-likelihood estimate does not exist: the objective keeps decreasing as some coefficients grow without
bound, the optimizer stops wherever its tolerance says, and the Wald table shows a huge coefficient with a
huger standard error and a meaningless p-value (the Hauck–Donner effect). The Hessian there is nearly, not
numerically, singular, so one more pass tests the fit itself: it evaluates the objective at ``θ + k·s``,
``k = 1, 2, 4, 8``, with ``s = -H⁻¹g`` the Newton step at the fit. Near a finite optimum the objective is
quadratic along ``s`` and lowest at ``k = 1`` (``k = 2`` is back at the fit's value); with separation the
curvature vanishes as the coefficients grow and the objective keeps falling all along the ladder. Such a fit
is refused in one line naming quasi-separation and the coefficients that move along ``s``. statsmodels'
``Logit`` fits such data and notes "Complete Separation" or "Possibly complete quasi-separation" under its
summary; mrtrain refuses instead of printing a table whose p-values are wrong.
"""

import math
from typing import NamedTuple

import numpy as np

from mrtrain.engine.models import GLM_LOSSES

#: Models whose coefficients get a table: those whose loss has a Wald table.
INFERENCE_MODELS = tuple(kind for kind, loss in GLM_LOSSES.items() if loss.wald_table)
#: Largest parameter count (the p x p Hessian is summed by the passes and inverted on the driver).
MAX_PARAMS = 4096
#: Models whose maximum-likelihood estimate can fail to exist by (quasi-)separation: checked by a probe pass.
SEPARABLE_MODELS = tuple(kind for kind in INFERENCE_MODELS if GLM_LOSSES[kind].separable)
#: A coefficient is named as affected by separation when its part of the Newton step is at least this
#: fraction of the largest part.
AFFECTED_SHARE = 0.1
#: The remaining Newton step, in standard errors (:func:`newton_finish`), at which the table is taken:
#: statistics within 1e-9 of those at the exact optimum, p-values within 1e-9 absolute.
INFERENCE_TOL = 1e-9
#: Most Newton steps :func:`newton_finish` takes (Newton converges quadratically from a fitted point: 1 to
#: 3 steps; rounding stops it earlier, see there).
MAX_NEWTON_STEPS = 20


def check_inference(kind, *, l1, standardize, n_params):
    """Raise ValueError (one line) if a coefficient table of this training would be meaningless."""
    loss = GLM_LOSSES.get(kind)
    if loss is None or not loss.wald_table:
        raise ValueError(f"The 'inference' parameter needs a model among {list(INFERENCE_MODELS)}. Got model "
                         f"{kind!r} instead.")
    if l1 > 0:
        raise ValueError(f"The 'inference' parameter needs a smooth objective: standard errors of an l1 "
                         f"(lasso) estimate are not given by its Hessian. Got l1={l1!r} instead.")
    if standardize:
        raise ValueError("The 'inference' parameter cannot be combined with 'standardize': the table would "
                         "be of the standardized coefficients. Got standardize=True instead.")
    if n_params > MAX_PARAMS:
        raise ValueError(f"The 'inference' parameter needs at most {MAX_PARAMS} parameters (a p x p Hessian "
                         f"is summed and inverted). Got {n_params} instead.")


def singular(eigenvalues):
    """True if a symmetric p x p matrix of ascending ``eigenvalues`` is singular to working precision: its
    smallest eigenvalue is not above ``p * eps`` times its largest."""
    return not eigenvalues[0] > eigenvalues[-1] * len(eigenvalues) * np.finfo(np.float64).eps


def parameter_names(model, feature_names=None):
    """``feature_names`` (default ``feature 0 .. feature d-1``) and ``intercept``, in ``theta``'s order."""
    names = (list(feature_names) if feature_names is not None
             else [f"feature {j}" for j in range(model.n_features)])
    return names + ["intercept"] if model.fit_intercept else names


class SeparationProbe(NamedTuple):
    """The points of the pass that tests a fit for (quasi-)separation (see the module docstring).

    Attributes
    ----------
    step : ndarray of shape (p,)
        The Newton step ``s = -H⁻¹g`` at the fit.
    points : ndarray of shape (len(LADDER), p)
        ``θ + k·s`` for ``k`` in :data:`LADDER`.
    value : float
        The objective at ``θ``.
    """

    step: np.ndarray
    points: np.ndarray
    value: float


#: Multiples of the Newton step at which the separation probe evaluates the objective.
LADDER = (1.0, 2.0, 4.0, 8.0)


def separation_probe(model, theta, evaluation):
    """The :class:`SeparationProbe` of a fit of ``model`` at ``theta`` from the objective's
    :class:`~mrtrain.engine.optimizers.base.Evaluation` there (with its Hessian), or None for a model whose
    objective is quadratic (linear: the estimate always exists)."""
    if not model.loss.separable:
        return None
    theta = np.asarray(theta, dtype=np.float64)
    step = -np.linalg.solve(evaluation.hess, evaluation.grad)
    return SeparationProbe(step, np.stack([theta + k * step for k in LADDER]), float(evaluation.value))


def check_identified(model, theta, probe, values):
    """Raise ValueError (one line naming quasi-separation and the affected coefficients) if the objective
    ``values`` at ``probe.points`` keep falling along the whole ladder (see the module docstring)."""
    values = [float(v) for v in values]
    falling = values[0] < probe.value and all(b <= a for a, b in zip(values, values[1:], strict=False))
    if not falling or not values[-1] < values[0]:
        return
    names = parameter_names(model)
    share = np.abs(probe.step)
    affected = [j for j in np.argsort(-share, kind="stable") if share[j] >= AFFECTED_SHARE * share.max()]
    shown = ", ".join(f"{names[j]} ({theta[j]:+.4g})" for j in affected[:5])
    more = f" and {len(affected) - 5} more" if len(affected) > 5 else ""
    labels = "classes" if model.loss.is_classifier else "zero counts from the others"
    raise ValueError(
        f"The maximum-likelihood estimate does not exist: the data are quasi-separated (a hyperplane "
        f"splits the {labels}, ties allowed on it): the objective keeps falling, from {probe.value:.10g} "
        f"at the fit to {values[-1]:.10g} {LADDER[-1]:g} Newton steps further, as the coefficients "
        f"{shown}{more} grow without bound, so their standard errors and p-values would mean nothing. Drop "
        "or merge the separating features, or add an l2 penalty."
    )


def inference_table(model, sums, theta, *, l2, feature_names=None):
    """The coefficient table from the sums of one pass at ``theta`` with a Hessian.

    Parameters
    ----------
    model : mrtrain.engine.models.Model
    sums : PartialSums
        Totals over the dataset at the single point ``theta``, with ``hess`` of shape (1, p, p).
    theta : ndarray, shape (p,)
    l2 : float
    feature_names : list of str, optional
        The names of the d features, for the table's ``names``; default ``feature 0 .. feature d-1``.

    Returns
    -------
    dict
        ``names``, ``estimate``, ``std_error``, ``statistic``, ``p_value`` (lists in ``theta``'s order),
        ``statistic_name`` (``"z"`` or ``"t"``), ``dispersion`` and ``df`` (None for z).
    """
    theta = np.asarray(theta, dtype=np.float64)
    p = theta.size
    weight = float(sums.weight)
    hessian = sums.hess[0] + weight * l2 * np.diag(model.penalty_mask())
    if model.loss.estimated_dispersion:
        df = weight - p
        if not df > 0:
            raise ValueError(f"Standard errors of a linear model need more total sample weight than "
                             f"parameters ({p}). Got {weight!r} instead.")
        dispersion = 2.0 * float(sums.loss[0]) / df
    else:
        df, dispersion = None, 1.0
    eigenvalues = np.linalg.eigvalsh(hessian)
    if singular(eigenvalues):
        raise ValueError(f"The Hessian at the fitted coefficients is singular (smallest eigenvalue "
                         f"{eigenvalues[0]:.3g}, largest {eigenvalues[-1]:.3g}): collinear or constant "
                         "features, or a separable classification; drop features or add an l2 penalty.")
    covariance = dispersion * np.linalg.inv(hessian)
    std_error = np.sqrt(np.diag(covariance))
    statistic = theta / std_error
    if df is None:
        p_value = [math.erfc(abs(z) / math.sqrt(2.0)) for z in statistic]
    else:
        from scipy.stats import t

        p_value = (2.0 * t.sf(np.abs(statistic), df)).tolist()
    return {
        "names": parameter_names(model, feature_names), "estimate": theta.tolist(),
        "std_error": std_error.tolist(),
        "statistic": statistic.tolist(), "p_value": [float(v) for v in p_value],
        "statistic_name": "z" if df is None else "t", "dispersion": dispersion, "df": df,
    }


def newton_step(model, sums, theta, *, l2):
    """The Newton step of the penalized mean objective at ``theta`` from one pass's ``sums`` (Hessian at
    ``theta``), and its length in standard errors.

    Returns
    -------
    step : ndarray, shape (p,)
        ``-(H + l2·diag(mask))⁻¹ g``, ``H`` and ``g`` of the mean objective.
    length : float
        ``sqrt(W stepᵀ (H + l2·diag(mask)) step / φ)`` (``φ`` the dispersion at ``theta``).
    decrement : float
        The Newton decrement of the mean objective, ``sqrt(stepᵀ (H + l2·diag(mask)) step)``.
    """
    weight = float(sums.weight)
    mask = model.penalty_mask()
    hessian = sums.hess[0] / weight + l2 * np.diag(mask)
    grad = sums.grad[0] / weight + l2 * mask * theta
    step = -np.linalg.solve(hessian, grad)
    dispersion = 1.0
    if model.loss.estimated_dispersion:
        dispersion = 2.0 * float(sums.loss[0]) / max(weight - theta.size, np.finfo(np.float64).tiny)
    quadratic = max(float(step @ hessian @ step), 0.0)
    return step, math.sqrt(weight * quadratic / dispersion) if dispersion > 0 else 0.0, math.sqrt(quadratic)


def newton_finish(model, hessian_pass, theta, *, l2, tol=INFERENCE_TOL, max_steps=MAX_NEWTON_STEPS):
    """The coefficient table at the optimum reached by Newton steps from ``theta``.

    Each step is one ``hessian_pass(theta) -> PartialSums`` (loss, gradient and Hessian sums at one point).
    Near the optimum (Newton decrement ``λ <= 1/4``) the full step is taken, further away the damped one,
    ``1/(1 + λ)`` of it (the step that converges for self-concordant objectives without a line search, so
    without extra passes). The table is taken at the first point whose remaining step
    (:func:`newton_step`) is at most ``tol`` standard errors; also where, already within 1e-6 standard
    errors, a step no longer halves the remaining one (the rounding of the sums, which on a large dataset
    can stay above ``tol``), or after ``max_steps`` steps. ``remaining_step`` records what was left, so
    the table says how far from the optimum it is.

    Returns
    -------
    dict
        :func:`inference_table` at the final point, plus ``newton_steps`` (steps taken from ``theta``) and
        ``remaining_step`` (in standard errors).
    """
    theta = np.asarray(theta, dtype=np.float64)
    steps, previous = 0, math.inf
    while True:
        sums = hessian_pass(theta)
        table = inference_table(model, sums, theta, l2=l2)  # refuses a singular Hessian
        step, length, decrement = newton_step(model, sums, theta, l2=l2)
        if length <= tol or (previous <= 1e-6 and length > previous / 2) or steps == max_steps:
            return {**table, "newton_steps": steps, "remaining_step": length}
        damping = 1.0 if decrement <= 0.25 else 1.0 / (1.0 + decrement)
        theta, previous, steps = theta + damping * step, length, steps + 1
