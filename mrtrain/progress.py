"""Training progress on stderr, as the ``mrtrain`` command shows it.

On a terminal: one tqdm progress bar over the iterations (``--max-iter`` is its length, so the ETA is an
upper bound) showing the objective, the gradient's max-norm and the seconds of the last pass. Anywhere
else (a log file, a pipe, CI): one plain line per pass, which ``grep`` and log collectors can read. The
CLI's ``--quiet`` shows neither.
"""

import sys

from tqdm import tqdm


class TrainingProgress:
    """Callback for :class:`mrtrain.engine.trainer.Trainer` that reports every pass.

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
        """Report one :class:`mrtrain.engine.driver.Progress`."""
        if self.bar is None:
            print(plain_line(progress), file=self.stream, flush=True)
            return
        self.bar.n = progress.iteration
        self.bar.set_postfix_str(
            f"objective {progress.objective:.10g}, |grad| {progress.grad_norm:.2e}, "
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
    """The one-line form of a :class:`mrtrain.engine.driver.Progress`."""
    mark = "" if progress.accepted else "  (no decrease; smaller step next)"
    return (
        f"iter {progress.iteration:4d}  objective {progress.objective:.12g}  "
        f"|grad| {progress.grad_norm:.3e}  step {progress.step:.3e}  {progress.seconds:6.2f}s{mark}"
    )
