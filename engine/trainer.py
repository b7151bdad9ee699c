"""Training from Python: ``Trainer(...).fit(dataset_uri)`` runs the iterative MapReduce loop.

The trainer opens the dataset, builds the model, the objective and the optimizer, resumes from the newest
valid checkpoint when ``checkpoint_dir`` holds one made with the same data and settings, and runs
:func:`engine.driver.optimize` with one gradient MapReduce job per iteration, writing a checkpoint after
every pass.
"""

import logging

import numpy as np

from engine.driver import LoopStatus, initial_status, optimize, stop_reason
from engine.fitted import FittedModel
from engine.mapreduce import RUNNERS, JobLauncher
from engine.models import MODELS, PartialSums, make_model
from engine.objective import Objective
from engine.optimizers import OPTIMIZERS, make_optimizer
from engine.optimizers.base import state_from_record, state_to_record
from engine.params import check_choice, check_int, check_number
from mr_jobs.gradient import MRGradient
from storage.checkpoint import latest_checkpoint, save_checkpoint
from storage.dataset import Dataset
from storage.errors import DataError

log = logging.getLogger(__name__)

#: Settings that must match for a checkpoint to be resumed.
RESUME_KEYS = ("model", "optimizer", "l2", "fit_intercept", "n_features", "classes", "data_checksum")


class SettingsMismatchError(ValueError):
    """The checkpoint directory holds a run made with other data or settings."""


class Trainer:
    """Train a linear model over a dataset with iterative MapReduce jobs.

    Parameters
    ----------
    model : {"linear", "logistic", "softmax", "poisson"}
    optimizer : {"gd", "lbfgs", "newton"}
        Default: ``"lbfgs"``.
    l2 : float >= 0
        Strength of ``(l2/2)‖w‖²``; intercepts are not penalized. Default: 0.
    fit_intercept : bool
        Default: True.
    max_iter : int >= 1
        Optimizer iterations (each one data pass). Default: 100.
    tol : float >= 0
        Stop when the relative objective change of an iteration is at most ``tol``. Default: 1e-8.
    gtol : float >= 0
        Stop when the gradient's max-norm is at most ``gtol``. Default: 1e-6.
    runner : {"inline", "local", "hadoop"}
        The mrjob runner. Default: ``"inline"``.
    conf_path : str, optional
        mrjob config file (otherwise mrjob's own lookup applies).
    checkpoint_dir : str, optional
        Directory (local or ``hdfs://``) for one checkpoint per pass; a rerun resumes from it.
    keep_checkpoints : int, optional
        Keep only the newest N checkpoints.
    callback : callable, optional
        Called with an :class:`engine.driver.Progress` after every pass.
    """

    def __init__(self, model, *, optimizer="lbfgs", l2=0.0, fit_intercept=True, max_iter=100, tol=1e-8,
                 gtol=1e-6, runner="inline", conf_path=None, checkpoint_dir=None, keep_checkpoints=None,
                 callback=None):
        self.model = model
        self.optimizer = optimizer
        self.l2 = l2
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.gtol = gtol
        self.runner = runner
        self.conf_path = conf_path
        self.checkpoint_dir = checkpoint_dir
        self.keep_checkpoints = keep_checkpoints
        self.callback = callback

    def _validate(self):
        check_choice("model", self.model, MODELS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("runner", self.runner, RUNNERS)
        check_number("l2", self.l2, minimum=0)
        check_int("max_iter", self.max_iter, minimum=1)
        check_number("tol", self.tol, minimum=0)
        check_number("gtol", self.gtol, minimum=0)
        if self.keep_checkpoints is not None:
            check_int("keep_checkpoints", self.keep_checkpoints, minimum=1)

    def fit(self, data):
        """Train on the dataset at ``data`` (a directory made by ``mrtrain ingest``).

        Returns
        -------
        FittedModel
        """
        self._validate()
        dataset = Dataset.open(data)
        classes = None
        if self.model in ("logistic", "softmax"):
            if dataset.classes is None:
                raise DataError(
                    f"{dataset.uri}: field '{dataset.label_name}': expected class labels for "
                    f"{self.model}, found non-integer or more than 1000 distinct label values"
                )
            classes = dataset.classes
        model = make_model(self.model, dataset.n_features, classes=classes, fit_intercept=self.fit_intercept)
        settings = {
            "model": self.model, "optimizer": self.optimizer, "l2": float(self.l2),
            "fit_intercept": bool(self.fit_intercept), "n_features": dataset.n_features,
            "classes": classes, "data": dataset.uri, "data_checksum": dataset.checksum,
        }
        optimizer = make_optimizer(self.optimizer)
        objective = Objective(model, self.l2)
        status = self._resume(optimizer, settings) or initial_status(optimizer, np.zeros(model.n_params))
        spec = {"kind": model.kind, "n_features": model.n_features, "classes": classes,
                "fit_intercept": model.fit_intercept}
        limits = {"max_iter": self.max_iter, "tol": self.tol, "gtol": self.gtol}

        with JobLauncher(dataset, spec, runner=self.runner, conf_path=self.conf_path) as launcher:

            def evaluate(points, hessian):
                vector = launcher.sum_vector(MRGradient, points, {"hessian": hessian})
                sums = PartialSums.from_vector(vector, len(points), model.n_params, hessian)
                return objective.evaluations(sums, points)

            def save(status):
                self._save(status, settings, stop_reason(status, **limits))

            status, reason, converged = optimize(
                optimizer, evaluate, status, on_iteration=save if self.checkpoint_dir else None,
                callback=self.callback, **limits,
            )
        if not converged:
            log.warning(
                "Training stopped before converging (%s) after %d iterations; raise max_iter or loosen "
                "tol/gtol.", reason, status.iteration,
            )
        return FittedModel(
            model, status.state.x, l2=self.l2, iterations=status.iteration, passes=status.passes,
            history=status.history, converged=converged, stop_reason=reason, settings=settings,
        )

    def _save(self, status, settings, verdict):
        arrays, scalars = state_to_record(status.state)
        meta = {
            "settings": settings, "iteration": status.iteration, "passes": status.passes,
            "history": list(status.history), "rejected": status.rejected, "state_scalars": scalars,
            "stop_reason": verdict[0] if verdict else None, "converged": bool(verdict and verdict[1]),
        }
        save_checkpoint(
            self.checkpoint_dir, status.iteration, {f"state.{k}": v for k, v in arrays.items()}, meta,
            keep=self.keep_checkpoints,
        )

    def _resume(self, optimizer, settings):
        if not self.checkpoint_dir:
            return None
        checkpoint = latest_checkpoint(self.checkpoint_dir)
        if checkpoint is None:
            return None
        meta = checkpoint.meta
        previous = meta["settings"]
        differences = [
            f"{key}: checkpoint has {previous.get(key)!r}, this run has {settings[key]!r}"
            for key in RESUME_KEYS
            if previous.get(key) != settings[key]
        ]
        if differences:
            raise SettingsMismatchError(
                f"{checkpoint.uri}: cannot resume, the checkpoint was made with other settings ("
                + "; ".join(differences) + "); use another --checkpoint-dir"
            )
        arrays = {k.removeprefix("state."): v for k, v in checkpoint.arrays.items() if k.startswith("state.")}
        state = state_from_record(optimizer.State, arrays, meta["state_scalars"])
        log.info("resuming from %s (iteration %d)", checkpoint.uri, meta["iteration"])
        return LoopStatus(state, meta["iteration"], meta["passes"], tuple(meta["history"]), meta["rejected"])
