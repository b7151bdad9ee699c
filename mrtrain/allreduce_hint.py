"""The one line that points a long job-per-pass run at ``--allreduce``, with what it would have saved.

A job per pass pays the job's own cost at every pass: starting it (on YARN the client, the application
master, the containers and their Pythons; on the local runner mrjob's working directories and task
processes), splitting and sorting, committing. ``--allreduce`` pays it once: one job whose tasks serve every
pass over TCP, to the same bits. The estimate takes each job's wall time (:class:`mrtrain.launcher.JobTime`)
minus its map work (the tasks' own ``map work ms`` counter over the tasks that ran at once) as that job's
own cost; AllReduce would have paid about one of them.
"""

import os
import statistics

#: Jobs a run must have made (more than this) before the hint is shown.
MIN_JOBS = 5


def job_overheads(job_times, slots=None):
    """Each job's seconds beyond its map work: wall time minus the map work spread over
    ``min(map tasks, slots)`` tasks running at once (``slots`` None: all of a job's map tasks)."""
    return [max(0.0, job.seconds - job.map_work_seconds / max(1, min(job.map_tasks, slots or job.map_tasks)))
            for job in job_times]


def allreduce_hint(job_times, slots):
    """The hint line for a run whose jobs took ``job_times``, or None for :data:`MIN_JOBS` jobs or fewer.

    Parameters
    ----------
    job_times : list of mrtrain.launcher.JobTime
    slots : int or None
        Map tasks that can run at once: the local runner's cores; None (YARN): every map task of a job.

    Returns
    -------
    str or None
    """
    if len(job_times) <= MIN_JOBS:
        return None
    overheads = job_overheads(job_times, slots)
    saved = sum(overheads) - statistics.median(overheads)
    return (f"note: {len(job_times)} jobs, one per pass, spent about {sum(overheads):.1f} s "
            f"({statistics.median(overheads):.2f} s each) beyond their map work; --allreduce runs one job "
            f"for all passes (the same model, bitwise) and would have saved about {saved:.1f} s")


def command_hint(args, job_times):
    """The hint line ``mrtrain train`` prints after a training run with the parsed ``args`` that made the jobs
    ``job_times`` (every family's command line), or None: none with ``-q``, ``--allreduce`` or the inline
    runner (which runs no job of its own); the local runner runs as many map tasks at once as it has cores.

    Parameters
    ----------
    args : argparse.Namespace
        ``quiet``, ``allreduce`` and ``runner`` of ``mrtrain train``.
    job_times : list of mrtrain.launcher.JobTime

    Returns
    -------
    str or None
    """
    if args.quiet or args.allreduce or args.runner == "inline":
        return None
    return allreduce_hint(job_times, os.cpu_count() if args.runner == "local" else None)
