"""The coefficient table of a fitted GLM at its exact optimum, and its file next to the checkpoints.

:func:`coefficient_inference` (``mrtrain train --inference``) finishes the fit with Newton steps
(:func:`mrtrain.engine.inference.newton_finish`): one gradient job with a Hessian per step, from the
fitted coefficients, until the remaining Newton step is at most :data:`INFERENCE_TOL` standard errors.
The last pass's sums give the table of standard errors, statistics and p-values
(:func:`mrtrain.engine.inference.inference_table`, where the math and the refusals are described). A fit
stopped by L-BFGS's tolerances on unscaled data can be a few thousandths of a standard error from the
optimum, which moves p-values by ~1e-4; the table must be the one statsmodels gives, whatever the
optimizer, so it is taken at the optimum, which usually costs two or three passes (one from a Newton fit).

The table is kept next to the checkpoints as ``_inference.json`` (exact floats in JSON), tagged with the
checkpoint iteration it belongs to; ``inspect`` shows it while that checkpoint is the newest.
"""

import json
import logging

from mrtrain.engine.inference import INFERENCE_TOL, MAX_NEWTON_STEPS, check_inference, newton_finish
from mrtrain.engine.models import PartialSums
from mrtrain.launcher import JobLauncher
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.storage.filesystem import get_filesystem, join

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
    :func:`mrtrain.engine.inference.inference_table` at the optimum, with ``newton_steps`` and
    ``remaining_step`` (:func:`mrtrain.engine.inference.newton_finish`).

    Parameters
    ----------
    fitted : mrtrain.fitted.FittedModel
    data : str
        The dataset the model was trained on (its checksum is checked against the training settings).
    tol : float
        The remaining Newton step, in standard errors, at which the coefficients count as the optimum.
        Default: :data:`~mrtrain.engine.inference.INFERENCE_TOL`.
    max_steps : int
        Most Newton steps (each one pass). Default: :data:`~mrtrain.engine.inference.MAX_NEWTON_STEPS`.
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

        table = newton_finish(model, hessian_pass, fitted.theta_, l2=fitted.l2, tol=tol, max_steps=max_steps)
    if table["remaining_step"] > WARN_STEP:
        log.warning("The coefficient table is %.3g standard errors from the optimum after %d Newton steps: "
                    "its statistics and p-values are off by about that much; train to convergence first.",
                    table["remaining_step"], table["newton_steps"])
    return table


def save_inference(checkpoint_dir, iteration, table):
    """Write ``table`` for the checkpoint of ``iteration`` as ``_inference.json`` (atomically)."""
    record = {"format": FORMAT, "version": 1, "iteration": int(iteration), "table": table}
    get_filesystem(checkpoint_dir).write_bytes(join(checkpoint_dir, INFERENCE_NAME),
                                               json.dumps(record).encode())


def load_inference(checkpoint_dir, iteration):
    """The table saved for the checkpoint of ``iteration``, or None (none saved, or for another one)."""
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
