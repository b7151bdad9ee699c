"""YARN uber mode for small partition-sum passes: the map tasks run inside the application master's JVM.

A job-per-pass pass over a small dataset is almost all YARN starting JVMs: the client, the application
master, then one container and JVM per map task. With ``mapreduce.job.ubertask.enable=true`` the
application master runs the map tasks (and at most one reducer) one after another in its own JVM instead
of asking for containers. On the 2-core benchmark machine (mini cluster, load 6–9, 20k x 28, 2 partitions)
that cut the map phase of a pass by 3–7 s in four back-to-back comparisons (docs/benchmarks.md). It gives
up running the maps in parallel, so :func:`uber_pass` asks for it only for small passes: at most
:data:`MAX_MAPS` partitions (Hadoop's own ``mapreduce.job.ubertask.maxmaps`` default) of at most
:data:`MAX_BYTES` together, and at most one reducer. YARN still decides: a job whose map memory exceeds the
application master's, for one, runs as usual.

YARN gives the tasks of an uber job one attempt each: :meth:`mrtrain.launcher.JobLauncher.run` runs a pass
that failed in uber mode once more in containers, where Hadoop retries task attempts.

Never for the AllReduce job, whose tasks must all run at once (:meth:`mrtrain.launcher.JobLauncher.start`
turns it off). A ``mapreduce.job.ubertask.enable`` in the hadoop runner's ``jobconf`` of the user's mrjob
config wins (:func:`configured`): ``false`` there turns this off.

The tasks compute the same sums in the same partition order either way: the model is bitwise the same.
"""

import logging

log = logging.getLogger(__name__)

#: The jobconf key of uber mode.
ENABLE = "mapreduce.job.ubertask.enable"
#: Partitions (map tasks) of a pass that runs uber: Hadoop's default ``mapreduce.job.ubertask.maxmaps``.
MAX_MAPS = 9
#: Bytes of the partitions of a pass that runs uber: 64 MiB, a few seconds of map work in one JVM.
MAX_BYTES = 64 * 2**20


def uber_pass(partitions, partition_bytes, reducers):
    """Whether a partition-sum pass should ask YARN for uber mode.

    Parameters
    ----------
    partitions : int
        Map tasks of the pass (one per partition).
    partition_bytes : int
        The partitions' bytes together.
    reducers : int
        Reduce tasks of the pass.

    Returns
    -------
    bool
    """
    return partitions <= MAX_MAPS and partition_bytes <= MAX_BYTES and reducers <= 1


def configured(conf_path):
    """The user's ``mapreduce.job.ubertask.enable`` from the hadoop runner's ``jobconf`` in the mrjob
    config mrjob would read (``conf_path``, else ``$MRJOB_CONF`` or ``~/.mrjob.conf``), or None."""
    from mrjob.conf import load_opts_from_mrjob_confs

    value = None
    paths = [conf_path] if conf_path else None
    for _, opts in load_opts_from_mrjob_confs("hadoop", paths):
        value = (opts or {}).get("jobconf", {}).get(ENABLE, value)
    return value
