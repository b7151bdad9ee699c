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

One data pass at the final parameters sums the Hessian (:mod:`mrtrain.inference` runs it and keeps the
table next to the checkpoints). Refused, in one line, where the table would not mean what it says: an l1
penalty (no smooth optimum: the covariance of a lasso estimate is not the inverse Hessian), standardized
training (the table would be of the standardized coefficients), models other than linear, logistic and
poisson, more than :data:`MAX_PARAMS` parameters, ``W <= p`` for linear, or a singular Hessian (collinear
features, or a separable logistic fit), which names the smallest eigenvalue.
"""

import math

import numpy as np

#: Models whose coefficients get a table.
INFERENCE_MODELS = ("linear", "logistic", "poisson")
#: Largest parameter count (the p x p Hessian is summed by the passes and inverted on the driver).
MAX_PARAMS = 4096


def check_inference(kind, *, l1, standardize, n_params):
    """Raise ValueError (one line) if a coefficient table of this training would be meaningless."""
    if kind not in INFERENCE_MODELS:
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


def parameter_names(model):
    """``feature 0 .. feature d-1`` (as ``inspect`` names them) and ``intercept``, in ``theta``'s order."""
    names = [f"feature {j}" for j in range(model.n_features)]
    return names + ["intercept"] if model.fit_intercept else names


def inference_table(model, sums, theta, *, l2):
    """The coefficient table from the sums of one pass at ``theta`` with a Hessian.

    Parameters
    ----------
    model : mrtrain.engine.models.Model
    sums : PartialSums
        Totals over the dataset at the single point ``theta``, with ``hess`` of shape (1, p, p).
    theta : ndarray, shape (p,)
    l2 : float

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
    if model.kind == "linear":
        df = weight - p
        if not df > 0:
            raise ValueError(f"Standard errors of a linear model need more total sample weight than "
                             f"parameters ({p}). Got {weight!r} instead.")
        dispersion = 2.0 * float(sums.loss[0]) / df
    else:
        df, dispersion = None, 1.0
    eigenvalues = np.linalg.eigvalsh(hessian)
    if not eigenvalues[0] > eigenvalues[-1] * p * np.finfo(np.float64).eps:
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
        "names": parameter_names(model), "estimate": theta.tolist(), "std_error": std_error.tolist(),
        "statistic": statistic.tolist(), "p_value": [float(v) for v in p_value],
        "statistic_name": "z" if df is None else "t", "dispersion": dispersion, "df": df,
    }
