"""The coefficient table of a fitted GLM at its exact optimum, and its file next to the checkpoints.

:func:`coefficient_inference` (``mrtrain train --inference``) finishes the fit with Newton steps
(:func:`mrtrain.engine.coefficient_table.newton_finish`): one gradient job with a Hessian per step, from
the fitted coefficients, until the remaining Newton step is at most :data:`INFERENCE_TOL` standard
errors. The last pass's sums give the table of standard errors, statistics and p-values
(:func:`mrtrain.engine.coefficient_table.inference_table`, where the math and the refusals are
described). A fit stopped by L-BFGS's tolerances on unscaled data can be a few thousandths of a standard
error from the optimum, which moves p-values by ~1e-4; the table must be the one statsmodels gives,
whatever the optimizer, so it is taken at the optimum, which usually costs two or three passes (one from
a Newton fit).

:func:`check_identifiable` refuses, before any training, a design whose coefficients are not
identifiable: first from the dataset's encoding alone (one-hot columns that keep every slot add up to the
intercept, or to each other: ingest with ``--drop first``), then from one pass summing the Hessian at zero
coefficients, where every model's weights ``h(0)`` are positive, so that it has the rank of the weighted
design ``[X 1]ᵀ S [X 1]``; a null direction names the columns involved.

The table is kept next to the checkpoints as ``_inference.json`` (exact floats in JSON), tagged with the
checkpoint iteration it belongs to; ``inspect`` shows it while that checkpoint is the newest.
"""

import json
import logging

import numpy as np

from mrtrain.engine.coefficient_table import (
    INFERENCE_TOL,
    MAX_NEWTON_STEPS,
    check_identified,
    check_inference,
    inference_table,
    newton_finish,
    parameter_names,
    separation_probe,
    singular,
)
from mrtrain.engine.models import GLM_LOSSES, PartialSums
from mrtrain.engine.objective import Objective
from mrtrain.engine.registry import make_model
from mrtrain.families.checks import check_trainable
from mrtrain.launcher import JobLauncher
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.names import dataset_names, feature_names
from mrtrain.storage.dataset import Dataset
from mrtrain.storage.encoding import column_levels, full_rank_columns
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import absolute, get_filesystem, join

log = logging.getLogger(__name__)

#: A table further than this from the optimum (in standard errors) is reported with a warning.
WARN_STEP = 1e-6
#: File of the table in a checkpoint directory.
INFERENCE_NAME = "_inference.json"
FORMAT = "mrtrain-inference"
#: Largest ``_inference.json`` read.
MAX_INFERENCE_BYTES = 64 * 2**20


def coefficient_inference(fitted, data, *, runner="inline", conf_path=None, partition_cache=True,
                          tol=INFERENCE_TOL, max_steps=MAX_NEWTON_STEPS):
    """Finish ``fitted``'s optimization with Newton steps over ``data`` (the training dataset) and return
    :func:`mrtrain.engine.coefficient_table.inference_table` at the optimum, with ``newton_steps`` and
    ``remaining_step`` (:func:`mrtrain.engine.coefficient_table.newton_finish`).

    Parameters
    ----------
    fitted : mrtrain.fitted.FittedModel
    data : str
        The dataset the model was trained on (its checksum is checked against the training settings).
    tol : float
        The remaining Newton step, in standard errors, at which the coefficients count as the optimum.
        Default: :data:`~mrtrain.engine.coefficient_table.INFERENCE_TOL`.
    max_steps : int
        Most Newton steps (each one pass).
        Default: :data:`~mrtrain.engine.coefficient_table.MAX_NEWTON_STEPS`.
    """
    model = fitted.model
    check_inference(model.kind, l1=fitted.l1, standardize=fitted.standardization is not None,
                    n_params=model.n_params)
    dataset = fitted._open_matching(data)
    expected = fitted.settings.get("data_checksum")
    if expected is not None and dataset.checksum != expected:
        raise ValueError(f"{dataset.uri}: standard errors need the training data (checksum {expected[:12]}); "
                         f"found checksum {dataset.checksum[:12]}")
    with JobLauncher(dataset, fitted._model_spec(), runner=runner, conf_path=conf_path,
                     partition_cache=partition_cache) as launcher:

        def hessian_pass(theta):
            vector = launcher.sum_vector(MRGradient, theta[None, :], {"hessian": 1})
            return PartialSums.from_vector(vector, 1, model.n_params, 1)

        check_not_separated(model, launcher, hessian_pass, fitted, dataset)
        table = newton_finish(model, hessian_pass, fitted.theta_, l2=fitted.l2, tol=tol, max_steps=max_steps)
    table["names"] = parameter_names(model, fitted.feature_names_)
    if table["remaining_step"] > WARN_STEP:
        log.warning("The coefficient table is %.3g standard errors from the optimum after %d Newton steps: "
                    "its statistics and p-values are off by about that much; train to convergence first.",
                    table["remaining_step"], table["newton_steps"])
    return table


#: A null direction's entries at least this share of its largest name the columns involved.
NULL_SHARE = 1e-3


def check_identifiable(data, kind, *, fit_intercept=True, runner="inline", conf_path=None,
                       partition_cache=True):
    """Refuse (DataError, one line naming the columns) a design whose coefficients are not identifiable.

    Parameters
    ----------
    data : str
        The training dataset.
    kind : str
        The model, one of :data:`mrtrain.engine.coefficient_table.INFERENCE_MODELS`.
    fit_intercept : bool

    Raises
    ------
    DataError
        One-hot columns keeping every slot with an intercept (or two of them): the fix is ``--drop
        first``; else a singular Hessian at zero coefficients: the columns of its null direction.
    """
    dataset = Dataset.open(data)
    full = full_rank_columns(dataset.encoding)
    if len(full) + bool(fit_intercept) > 1:
        column = full[0]
        slots = [f"{column}={level}" for level in column_levels(dataset.encoding, column)]
        against = "the intercept" if fit_intercept else f"the slots of column {full[1]!r}"
        listed = ", ".join(slots[:4]) + (", ..." if len(slots) > 4 else "")
        raise DataError(f"{dataset.uri}: expected identifiable coefficients for --inference, found the "
                        f"one-hot slots of column {column!r} ({listed}) adding up to {against} in every row: "
                        "ingest with --drop first (a reference level)")
    classifier = GLM_LOSSES[kind].is_classifier
    check_trainable(dataset, kind, classifier=classifier)
    model = make_model(kind, dataset.n_features, classes=dataset.classes if classifier else None,
                       fit_intercept=fit_intercept)
    with JobLauncher(dataset, model.spec(), runner=runner, conf_path=conf_path,
                     partition_cache=partition_cache) as launcher:
        vector = launcher.sum_vector(MRGradient, np.zeros((1, model.n_params)), {"hessian": 1})
    hessian = PartialSums.from_vector(vector, 1, model.n_params, 1).hess[0]
    eigenvalues, vectors = np.linalg.eigh(hessian)
    if not singular(eigenvalues):
        return
    null = np.abs(vectors[:, 0])
    names = parameter_names(model, feature_names(dataset_names(dataset), dataset.n_features))
    involved = [names[j] for j in np.flatnonzero(null >= NULL_SHARE * null.max())]
    listed = ", ".join(involved[:8]) + (", ..." if len(involved) > 8 else "")
    raise DataError(f"{dataset.uri}: expected identifiable coefficients for --inference, found the columns "
                    f"{listed} linearly dependent (the design's smallest eigenvalue {eigenvalues[0]:.3g}, "
                    f"largest {eigenvalues[-1]:.3g}): drop one of them")


def check_not_separated(model, launcher, hessian_pass, fitted, dataset):
    """Refuse a (quasi-)separated fit in one line
    (:func:`mrtrain.engine.coefficient_table.check_identified`): a pass with the Hessian at the fitted
    coefficients, then one at the Newton-step ladder
    (:func:`mrtrain.engine.coefficient_table.separation_probe`); nothing for a linear model."""
    if not model.loss.separable:
        return
    theta = fitted.theta_
    objective = Objective(model, fitted.l2)
    sums = hessian_pass(theta)
    inference_table(model, sums, theta, l2=fitted.l2)  # refuses a singular Hessian first
    (at_fit,) = objective.evaluations(sums, theta[None, :])
    probe = separation_probe(model, theta, at_fit)
    vector = launcher.sum_vector(MRGradient, probe.points, {"hessian": 0})
    along = objective.evaluations(PartialSums.from_vector(vector, len(probe.points), model.n_params, 0),
                                  probe.points)
    try:
        check_identified(model, theta, probe, [evaluation.value for evaluation in along])
    except ValueError as error:
        raise ValueError(f"{dataset.uri}: {error}") from None


def save_inference(checkpoint_dir, iteration, table):
    """Write ``table`` for the checkpoint of ``iteration`` as ``_inference.json`` (atomically)."""
    record = {"format": FORMAT, "version": 1, "iteration": int(iteration), "table": table}
    checkpoint_dir = absolute(checkpoint_dir)
    get_filesystem(checkpoint_dir).write_bytes(join(checkpoint_dir, INFERENCE_NAME),
                                               json.dumps(record).encode())


def load_inference(checkpoint_dir, iteration):
    """The table saved for the checkpoint of ``iteration``, or None (none saved, or for another one)."""
    checkpoint_dir = absolute(checkpoint_dir)
    fs = get_filesystem(checkpoint_dir)
    uri = join(checkpoint_dir, INFERENCE_NAME)
    try:
        record = json.loads(fs.read_bytes(uri, max_bytes=MAX_INFERENCE_BYTES))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ValueError(f"{uri}: expected the JSON of a coefficient table: {exc}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("table"),
                                                                                       dict):
        raise ValueError(f"{uri}: expected a JSON object with \"format\": {FORMAT!r} and a \"table\"")
    return record["table"] if record.get("iteration") == int(iteration) else None
