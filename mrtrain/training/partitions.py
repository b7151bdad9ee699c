"""Naming the partitions whose sums overflowed, for the one-line errors of every family."""

from mrtrain.mr_jobs.partition_job import NON_FINITE_COUNTERS


def non_finite_partitions(passes, dataset):
    """``" (non-finite sums in partitions 0 (URI), ...)"`` from the last pass's counters (a launcher's or an
    AllReduce session's), or ``""``."""
    ids = set()
    for step in passes.last_counters:
        ids.update(int(name) for name in step.get(NON_FINITE_COUNTERS, {}))
    return partitions_named(dataset, ids)


def partitions_named(dataset, ids):
    """``" (non-finite sums in partitions 0 (URI), ...)"`` for the partitions of ``dataset`` whose index is in
    ``ids``, or ``""``."""
    names = [f"{part.index} ({part.uri})" for part in dataset.partitions if part.index in ids]
    if not names:
        return ""
    return " (non-finite sums in partition" + ("s " if len(names) > 1 else " ") + ", ".join(names) + ")"
