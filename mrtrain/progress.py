"""Progress on stderr, as the ``mrtrain`` command shows it.

Training (:class:`TrainingProgress`): on a terminal one tqdm progress bar over the iterations
(``--max-iter`` is its length, so the ETA is an upper bound) showing the objective, the gradient's
max-norm and the seconds of the last pass; anywhere else (a log file, a pipe, CI) one plain line per pass,
which ``grep`` and log collectors can read.

Ingest, evaluate and predict (:class:`StageProgress`): a tqdm bar per stage on a terminal (ingest: the
bytes read and the rows parsed once the source is checked, then the rows written partition by partition;
evaluate and predict: their MapReduce job), one plain line per update that reports some work done
anywhere else, so that bad input still gets one line on stderr, its error. A job's percentage comes from
Hadoop's ``map X% reduce Y%`` lines, which mrjob's hadoop runner logs while the job runs
(:func:`hadoop_job_progress`); the inline and local runners report none, so their bar moves when the job
is done. The CLI's ``--quiet`` shows nothing.
"""

import contextlib
import logging
import re
import sys
import time

from tqdm import tqdm


class TrainingProgress:
    """Callback for :class:`mrtrain.trainer.Trainer` that reports every pass.

    Parameters
    ----------
    max_iter : int
        The run's ``max_iter``: the bar's length.
    stream : file, optional
        Where to write. Default: ``sys.stderr``.
    bar : bool, optional
        A progress bar (True) or plain lines (False). Default: whether ``stream`` is a terminal.
    """

    def __init__(self, max_iter, stream=None, bar=None):
        self.stream = stream or sys.stderr
        self.bar = None
        if bar if bar is not None else self.stream.isatty():
            self.bar = tqdm(total=max_iter, file=self.stream, unit="iter", dynamic_ncols=True,
                            desc="train", leave=True)

    def __call__(self, progress):
        """Report one :class:`mrtrain.engine.loop.Progress`."""
        if self.bar is None:
            print(plain_line(progress), file=self.stream, flush=True)
            return
        self.bar.n = progress.iteration
        if progress.model:
            self.bar.set_description_str(f"train {progress.model}", refresh=False)
        objective, grad, _ = progress.labels
        self.bar.set_postfix_str(
            f"{objective} {progress.objective:.10g}, {grad} {progress.grad_norm:.2e}, "
            f"{progress.seconds:.2f} s/pass, pass {progress.passes}"
            + ("" if progress.accepted else ", no decrease"),
            refresh=True,
        )

    def close(self):
        """End the bar's line (no-op for plain lines)."""
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def plain_line(progress):
    """The one-line form of a :class:`mrtrain.engine.loop.Progress`, led by the model it is about when a
    run trains several (a grid: ``model 4 of 8 (l1 0, l2 0.01; fold 2 of 3)  iter ...``)."""
    mark = "" if progress.accepted else "  (no decrease; smaller step next)"
    objective, grad, step = progress.labels
    return (
        (f"{progress.model}  " if progress.model else "")
        + f"iter {progress.iteration:4d}  {objective} {progress.objective:.12g}  "
        f"{grad} {progress.grad_norm:.3e}  " + (f"{step} {progress.step:.3e}  " if step else "")
        + f"{progress.seconds:6.2f}s{mark}"
    )


class StageProgress:
    """Callback ``(stage, done, total, unit)`` that shows a command's stages on ``stream``.

    Parameters
    ----------
    command : str
        The command's name, the first word of every bar and line.
    stream : file, optional
        Where to write. Default: ``sys.stderr``.
    bar : bool, optional
        Progress bars (True) or plain lines (False). Default: whether ``stream`` is a terminal. Plain lines
        leave out updates with nothing done and repeats of the previous update.
    """

    def __init__(self, command, stream=None, bar=None):
        self.command = command
        self.stream = stream or sys.stderr
        self.bars = bar if bar is not None else self.stream.isatty()
        self.stage = None
        self.bar = None
        self.last_line = None
        self.started = time.perf_counter()

    def __call__(self, stage, done, total, unit):
        """Report that ``done`` of ``total`` ``unit`` (``"B"``, ``"rows"``, ``"%"``) of ``stage`` are done."""
        if not self.bars:
            if done and (stage, done) != self.last_line:
                print(stage_line(self.command, stage, done, total, unit, time.perf_counter() - self.started),
                      file=self.stream, flush=True)
                self.last_line = stage, done
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, file=self.stream, desc=f"{self.command} {stage}", dynamic_ncols=True,
                            unit=unit, unit_scale=unit == "B", leave=True)
        self.bar.n = done
        self.bar.refresh()

    def close(self):
        """End the current bar's line (no-op for plain lines)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def stage_line(command, stage, done, total, unit, seconds):
    """The one-line form of a stage update: ``ingest write: 1,000 of 5,000 rows (20%)  0.52s``."""
    if unit == "B":
        amount = f"{tqdm.format_sizeof(done, 'B', 1024)} of {tqdm.format_sizeof(total, 'B', 1024)}"
    elif unit == "%":
        amount = f"{done:g}%"
    else:
        amount = f"{done:,} of {total:,} {unit}"
    share = f" ({100 * done / total:.0f}%)" if unit != "%" and total else ""
    return f"{command} {stage}: {amount}{share}  {seconds:6.2f}s"


#: A Hadoop job's progress line as mrjob's hadoop runner logs it.
HADOOP_PROGRESS = re.compile(r"^\s*map\s+(?P<map>\d+)%\s+reduce\s+(?P<reduce>\d+)%\s*$")
#: The logger that mrjob's hadoop runner logs the job's output lines to.
MRJOB_STEP_LOGGER = "mrjob.logs.step"


class _HadoopProgressHandler(logging.Handler):
    def __init__(self, report):
        super().__init__(logging.INFO)
        self.report = report

    def emit(self, record):
        match = HADOOP_PROGRESS.match(record.getMessage())
        if match:
            self.report(int(match["map"]), int(match["reduce"]))


@contextlib.contextmanager
def hadoop_job_progress(progress, stage="job"):
    """Within the block, report the ``map X% reduce Y%`` lines of Hadoop jobs to ``progress``.

    ``progress`` (a :class:`StageProgress`) gets ``(stage, percent, 100, "%")`` with the mean of the map
    and reduce percentages (a map-only job's reduce stays at 0 until it ends), and ``100`` when the block
    ends without an error.
    """
    progress(stage, 0, 100, "%")

    def report(map_percent, reduce_percent):
        progress(stage, (map_percent + reduce_percent) / 2, 100, "%")

    handler = _HadoopProgressHandler(report)
    logger = logging.getLogger(MRJOB_STEP_LOGGER)
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    progress(stage, 100, 100, "%")


@contextlib.contextmanager
def job_progress(command, enabled=True):
    """Within the block, show the progress of ``command``'s MapReduce job on stderr (nothing if not
    ``enabled``): a :class:`StageProgress` fed by :func:`hadoop_job_progress`."""
    if not enabled:
        yield
        return
    with StageProgress(command) as progress, hadoop_job_progress(progress):
        yield
