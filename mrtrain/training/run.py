"""One training run: the scaffolding every model family's fit loop runs inside.

:class:`TrainingRun` is made by :meth:`mrtrain.trainer.Trainer.fit` with the run's options
(:class:`RunOptions`: runner, checkpoint directory, reducers, AllReduce, ...) and handed, not yet open, to
the family's ``fit``. The family checks what it can before anything is written or launched, then opens it
with :meth:`TrainingRun.open` (the model's job spec and the reducers its summed vector allows). Open, the run
holds:

- the checkpoint directory's lock (:class:`~mrtrain.storage.lock.DirectoryLock`), when there is a directory;
- the background checkpoint writer (:class:`~mrtrain.storage.checkpoint_writer.CheckpointWriter`): every
  checkpoint :meth:`TrainingRun.save` starts is on disk before the lock is released;
- the job launcher (:attr:`TrainingRun.launcher`, made on first use, so a run that needs no pass starts no
  job), and, inside :meth:`TrainingRun.allreduce`, the AllReduce session serving the passes
  (:attr:`TrainingRun.passes`: the session when one is open, else the launcher);
- :meth:`TrainingRun.resume`: the newest valid checkpoint and whether this run continues it, with the
  settings check (:class:`~mrtrain.training.resume.SettingsMismatchError` when it may not).

Leaving the ``with`` block waits for the last checkpoint write, closes the launcher (its staging
directories) and releases the lock, in that order, whether the block ends normally or by an exception.
"""

import contextlib
import logging
from dataclasses import dataclass

from mrtrain.allreduce import DEFAULT_TIMEOUT, AllReduceSession
from mrtrain.launcher import JobLauncher, effective_reducers
from mrtrain.storage.checkpoint import latest_checkpoint, remove_temporaries
from mrtrain.storage.checkpoint_writer import CheckpointWriter
from mrtrain.storage.lock import DirectoryLock
from mrtrain.training.checkpoint_schema import validate_checkpoint, validate_new_checkpoint
from mrtrain.training.resume import SettingsMismatchError, settings_differences

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How a training runs, whatever the model: the parameters of :class:`mrtrain.trainer.Trainer` that no
    family owns (their meaning: the trainer's docstring). Validated by the trainer."""

    runner: str = "inline"
    conf_path: str | None = None
    checkpoint_dir: str | None = None
    keep_checkpoints: int | None = None
    break_lock: bool = False
    reducers: int = 1
    partition_cache: bool = True
    callback: object = None
    allreduce: bool = False
    allreduce_address: str | None = None
    allreduce_tasks: int | None = None
    allreduce_timeout: float = DEFAULT_TIMEOUT
    training_metrics: bool = False


@dataclass(frozen=True)
class CheckpointFormat:
    """How a family's checkpoints are checked: ``read(checkpoint)`` refuses
    (:class:`~mrtrain.storage.errors.CheckpointError`) one its resume cannot read, so that it is skipped;
    ``write(checkpoint)`` refuses one about to be written that a reader would skip."""

    read: object
    write: object


#: The checkpoint schema of the optimizer, statistics and Lloyd families
#: (:mod:`mrtrain.training.checkpoint_schema`).
TRAINING_CHECKPOINTS = CheckpointFormat(read=validate_checkpoint, write=validate_new_checkpoint)


class TrainingRun:
    """The lock, checkpoint writer, launcher or AllReduce session, resume and save of one training.

    Parameters
    ----------
    dataset : mrtrain.storage.dataset.Dataset
        The opened dataset the run trains on.
    options : RunOptions
    """

    def __init__(self, dataset, options):
        self.dataset = dataset
        self.options = options
        self.directory = options.checkpoint_dir
        #: The jobs this run launched (:class:`mrtrain.launcher.JobTime`), filled as they end.
        self.job_times = []
        self._spec = None
        self._reducers = None
        self._lock = None
        self._writer = None
        self._launcher = None
        self._session = None
        self._format = TRAINING_CHECKPOINTS

    # --- what the run is ------------------------------------------------------------------------------------

    @property
    def saving(self):
        """Whether the run writes checkpoints (it has a checkpoint directory)."""
        return bool(self.directory)

    @property
    def callback(self):
        """The progress callback (called with a :class:`mrtrain.engine.loop.Progress` per pass), or None."""
        return self.options.callback

    def reducers(self, length, what):
        """The reducers of a run whose smallest summed vector has ``length`` elements (``what`` names it in
        the warning when the asked number is capped): :func:`mrtrain.launcher.effective_reducers`."""
        return effective_reducers(self.options.reducers, length, what)

    # --- opening --------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def open(self, spec, *, reducers, checkpoints=TRAINING_CHECKPOINTS):
        """Take the lock and start the checkpoint writer; the launcher of jobs for the model ``spec`` with
        ``reducers`` reduce tasks is made on first use. ``checkpoints`` (a :class:`CheckpointFormat`): how
        the family's checkpoints are checked when :meth:`resume` reads them and :meth:`save` writes them.
        Yields the run."""
        self._spec, self._reducers, self._format = spec, reducers, checkpoints
        with contextlib.ExitStack() as stack:
            if self.directory:
                self._lock = stack.enter_context(
                    DirectoryLock(self.directory, break_lock=self.options.break_lock)
                )
            stack.callback(self._close_launcher)
            if self.directory:
                # Left before the lock is released: every checkpoint saved is on disk first.
                self._writer = stack.enter_context(CheckpointWriter(
                    self.directory, keep=self.options.keep_checkpoints, validate=checkpoints.write
                ))
            yield self

    @property
    def launcher(self):
        """The :class:`~mrtrain.launcher.JobLauncher` of this run (made on first use)."""
        if self._spec is None:
            raise RuntimeError("TrainingRun.launcher used before TrainingRun.open")
        if self._launcher is None:
            self._launcher = JobLauncher(
                self.dataset, self._spec, runner=self.options.runner, conf_path=self.options.conf_path,
                reducers=self._reducers, partition_cache=self.options.partition_cache,
            )
            self.job_times = self._launcher.job_times
        return self._launcher

    def _close_launcher(self):
        if self._launcher is not None:
            self._launcher.close()

    def allreduce(self, split=None, session=AllReduceSession, **arguments):
        """A context giving the :class:`~mrtrain.allreduce.AllReduceSession` that serves the passes while it
        is open (its job starts at the first pass; ``split``: per-group sums of a grid), or None without
        ``allreduce``: one job per pass. :attr:`passes` is the session while it is open. A family whose
        passes are served by another session passes its class as ``session`` and its own ``arguments``
        (the tree ensembles': :class:`mrtrain.tree_allreduce.TreeAllReduceSession`, ``state=``)."""
        if not self.options.allreduce:
            return contextlib.nullcontext()
        return self._serving(session(
            self.launcher, address=self.options.allreduce_address, tasks=self.options.allreduce_tasks,
            timeout=self.options.allreduce_timeout, split=split, **arguments,
        ))

    @contextlib.contextmanager
    def _serving(self, session):
        with session:
            self._session = session
            try:
                yield session
            finally:
                self._session = None

    @property
    def passes(self):
        """What serves a pass (``sum_vector``, ``run``, ``last_counters``): the open AllReduce session, else
        the launcher."""
        return self._session or self.launcher

    # --- checkpoints ----------------------------------------------------------------------------------------

    def check_held(self):
        """Raise if the directory's lock was broken by another run (a run stops before writing then)."""
        if self._lock is not None:
            self._lock.check_held()

    def latest_checkpoint(self):
        """The newest valid checkpoint of the directory, after removing dead writers' temporaries; None
        without a directory or checkpoint."""
        if not self.directory:
            return None
        remove_temporaries(self.directory)
        return latest_checkpoint(self.directory, validate=self._format.read)

    def resume(self, settings, keys, *, warm_start=None, layout_keys=(), single=False, hint=None):
        """The newest valid checkpoint and whether this run continues it: ``(checkpoint, resumed)``.

        Parameters
        ----------
        settings : dict
            This run's settings.
        keys : sequence of str
            The settings that must match to resume.
        warm_start : bool or None
            None: the family has no warm start (a mismatch is refused). True: a checkpoint of other
            settings (but the same ``layout_keys``) is started from, ``(checkpoint, False)``; a missing one
            is an error.
        layout_keys : sequence of str
            The settings that fix the parameters' layout, for a warm start.
        single : bool
            The run trains one model: a grid's checkpoint is not resumed (a warm start may start from it).
        hint : callable, optional
            ``hint(differences)``: text added to the mismatch error.

        Returns
        -------
        (Checkpoint or None, bool)

        Raises
        ------
        SettingsMismatchError
            Where neither resuming nor warm-starting is allowed.
        FileNotFoundError
            For a warm start without a checkpoint.
        """
        checkpoint = self.latest_checkpoint()
        if checkpoint is None:
            if warm_start:
                raise FileNotFoundError(
                    f"{self.directory}: warm start needs a valid checkpoint to start from; found none"
                )
            return None, False
        differences = settings_differences(checkpoint.meta["settings"], settings, keys)
        if single and checkpoint.meta.get("grid") is not None:
            # Its state is the grid's (all members), its counts the grid's passes.
            if not warm_start:
                raise SettingsMismatchError(
                    f"{checkpoint.uri}: cannot resume, the checkpoint was made by a grid of penalties and a "
                    "single model's training does not continue it; rerun the grid's command to resume the "
                    "grid, use another --checkpoint-dir, or pass --warm-start to start from the grid's "
                    "selected model"
                )
            differences = differences or ["the checkpoint holds a grid's selected model"]
        if not differences:
            return checkpoint, True
        if not warm_start:
            advice = "; use another --checkpoint-dir"
            if warm_start is not None:
                advice += ", or pass --warm-start to start from its parameters with this run's settings"
            raise SettingsMismatchError(
                f"{checkpoint.uri}: cannot resume, the checkpoint was made with other settings ("
                + "; ".join(differences) + ")" + advice + (hint(differences) if hint else "")
            )
        layout = settings_differences(checkpoint.meta["settings"], settings, layout_keys)
        if layout:
            raise SettingsMismatchError(
                f"{checkpoint.uri}: cannot warm-start, the parameters have another layout ("
                + "; ".join(layout) + "); use another --checkpoint-dir"
            )
        log.warning("warm start from %s (iteration %d): %s", checkpoint.uri, checkpoint.meta["iteration"],
                    "; ".join(differences))
        return checkpoint, False

    def save(self, number, arrays, meta):
        """Start writing checkpoint ``number`` (``ckpt-<number>.parquet``) in the background, after checking
        that the lock is still held; nothing without a directory."""
        if self._writer is None:
            return
        self.check_held()
        self._writer.save(number, arrays, meta)
