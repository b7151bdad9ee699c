"""Checkpoints written in the background while the next pass runs.

Encoding and writing a checkpoint of a wide model is as slow as a pass: at 2^20 parameters an L-BFGS
state (the point, the gradient and ten pairs of history vectors) is 210 MB of float64 to checksum,
compress and fsync, about a second on one core. The driver spends the pass waiting for its job, so
:class:`CheckpointWriter` writes checkpoint ``k`` in a thread while pass ``k + 1`` runs.

What stays true:

- :meth:`CheckpointWriter.save` takes a snapshot (copies) of the arrays before it returns, so the caller's
  optimizer may change them at once.
- One write at a time, in order: ``save`` first waits for the previous write, so checkpoint ``k`` is on
  disk before checkpoint ``k + 1`` starts, and ``keep`` prunes as :func:`save_checkpoint` does.
- Leaving the ``with`` block, normally or by an exception (an error, Ctrl-C), waits for the last write,
  through further Ctrl-Cs: a finished or failed run has every checkpoint it saved on disk. Only a process
  killed outright (SIGKILL, power loss) can lose the checkpoint being written, and each write is atomic,
  so it then resumes from the one before (one pass more to redo than with writes in the foreground).
- A checkpoint that its readers would skip (``validate``) is never written: ``save`` raises at once.
- A failed write is raised by the next ``save`` or when leaving the block (when the block is left by
  another exception, that exception wins and the write's error is logged).
"""

import logging
import threading

from mrtrain.storage.checkpoint import check_loadable, validate_inputs, write_validated
from mrtrain.storage.filesystem import absolute

logger = logging.getLogger(__name__)

__all__ = ["CheckpointWriter"]


class CheckpointWriter:
    """Write ``ckpt-<iteration>.parquet`` files of ``directory`` one after another in a thread.

    Parameters
    ----------
    directory : str
        Checkpoint directory (local or ``hdfs://``); created if missing. A relative path is made absolute
        here (:func:`~mrtrain.storage.filesystem.absolute`): the writing thread must not depend on the
        working directory, which mrjob's inline runner changes while a pass runs.
    keep, validate : optional
        As :func:`~mrtrain.storage.checkpoint.save_checkpoint`'s: a checkpoint ``validate`` rejects is
        refused by :meth:`save` itself, before any write starts.
    """

    def __init__(self, directory, *, keep=None, validate=None):
        # Absolute: the writes run in a thread while the inline runner changes the working directory.
        self.directory = absolute(str(directory))
        self.keep = keep
        self.validate = validate
        self._thread = None
        self._error = None

    def save(self, iteration, arrays, meta):
        """Wait for the previous write, then snapshot ``arrays`` and ``meta`` and start writing them; returns
        once this write has started. Raises the previous write's error, if it failed."""
        self.wait()  # first: the snapshot is not held beside the previous write's
        iteration, arrays, meta_json = validate_inputs(iteration, arrays, meta, self.keep)
        check_loadable(self.directory, iteration, arrays, meta_json, self.validate)
        self._thread = threading.Thread(target=self._write, args=(iteration, arrays, meta_json),
                                         name=f"checkpoint-{iteration}")
        self._thread.start()

    def _write(self, iteration, arrays, meta_json):
        try:
            write_validated(self.directory, iteration, arrays, meta_json, self.keep)
        except BaseException as error:  # handed to the caller's thread by wait()
            self._error = error

    def wait(self):
        """Block until the write under way (if any) is on disk; raise its error if it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # Uninterruptible: a second Ctrl-C must not let the caller release the directory's lock while the
        # last write (and its pruning) is still under way.
        while self._thread is not None:
            try:
                self._thread.join()
                self._thread = None
            except KeyboardInterrupt:
                logger.warning("still writing the last checkpoint; waiting for it to finish")
        error, self._error = self._error, None
        if error is not None:
            if exc_type is None:
                raise error
            logger.error("checkpoint write failed while the run stopped on another error: %s", error)
        return False
