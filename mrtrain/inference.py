"""The coefficient table of a fitted GLM from one data pass, and its file next to the checkpoints.

:func:`coefficient_inference` (``mrtrain train --inference``) runs one gradient job with a Hessian at the
fitted coefficients and turns its sums into the table of standard errors, statistics and p-values
(:func:`mrtrain.engine.inference.inference_table`, where the math and the refusals are described).

The table is kept next to the checkpoints as ``_inference.json`` (exact floats in JSON), tagged with the
checkpoint iteration it belongs to; ``inspect`` shows it while that checkpoint is the newest.
"""

import json

from mrtrain.engine.inference import check_inference, inference_table
from mrtrain.engine.models import PartialSums
from mrtrain.launcher import JobLauncher
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.storage.filesystem import get_filesystem, join

#: File of the table in a checkpoint directory.
INFERENCE_NAME = "_inference.json"
FORMAT = "mrtrain-inference"
#: Largest ``_inference.json`` read.
MAX_INFERENCE_BYTES = 64 * 2**20


def coefficient_inference(fitted, data, *, runner="inline", conf_path=None, partition_cache=True):
    """Run one pass over ``data`` (the training dataset) at ``fitted``'s coefficients and return
    :func:`mrtrain.engine.inference.inference_table`.

    Parameters
    ----------
    fitted : mrtrain.fitted.FittedModel
    data : str
        The dataset the model was trained on (its checksum is checked against the training settings).
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
        vector = launcher.sum_vector(MRGradient, fitted.theta_[None, :], {"hessian": 1})
    sums = PartialSums.from_vector(vector, 1, model.n_params, 1)
    return inference_table(model, sums, fitted.theta_, l2=fitted.l2)


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
