"""Running mrtrain's MapReduce jobs from the driver, on any mrjob runner.

A :class:`JobLauncher` belongs to one dataset and one model. It writes the partition list (the job input:
one ``ID<TAB>URI<TAB>SHA256`` line per partition) once, zips the ``engine``, ``mr_jobs`` and ``storage``
packages once (shipped to the tasks with mrjob's ``py_files``, since cluster nodes do not have mrtrain
installed), and then, per job, writes the task description and the parameter points into small files that
mrjob ships to every task (``add_file_arg``: the distributed cache on Hadoop) — never on the command line.
"""

import io
import json
import logging
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from mr_jobs.partition_job import FAULT_PARTITION_ENV, format_partition_line
from storage.filesystem import split_scheme

log = logging.getLogger(__name__)

RUNNERS = ("inline", "local", "hadoop")

#: Environment variables forwarded to the tasks with mrjob's ``--cmdenv``: how to reach HDFS, and the
#: fault switch of the retry tests.
TASK_ENVIRONMENT = (
    "MRTRAIN_WEBHDFS_URL", "MRTRAIN_HDFS_USER", "HADOOP_USER_NAME", "HADOOP_CONF_DIR", FAULT_PARTITION_ENV,
)

_PACKAGES = ("engine", "mr_jobs", "storage")

_SOURCE_ROOT = str(Path(__file__).resolve().parent.parent)

#: The local runner's tasks run on this machine with this Python, so they import mrtrain and mrjob from where
#: the driver does instead of from zips (a zip is unpacked and compiled by every task: no bytecode cache, plus
#: a wrapper script and a lock per task), and take the standard library's distutils, which mrjob imports,
#: instead of setuptools' shim (~0.12 s of imports per task). Measured on a 3-partition pass: 2.2 -> 1.05
#: CPU-seconds (python3 -m benchmarks.run).
_LOCAL_TASK_ARGS = ["--no-bootstrap-mrjob", "--cmdenv", f"PYTHONPATH={_SOURCE_ROOT}"] + (
    ["--cmdenv", "SETUPTOOLS_USE_DISTUTILS=stdlib"] if sys.version_info < (3, 12) else []
)


def task_uri(uri):
    """``uri`` as a task sees it: tasks run in their own working directories, so relative local paths
    become absolute; ``file://`` and ``hdfs://`` URIs are unchanged."""
    return uri if split_scheme(uri) else os.path.abspath(uri)


def package_zip(path):
    """Write a zip of mrtrain's importable packages (``.py`` files only) to ``path``.

    The archive is byte-for-byte reproducible: sorted entries with a fixed timestamp.
    """
    root = Path(__file__).resolve().parent.parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in _PACKAGES:
            for source in sorted((root / package).rglob("*.py")):
                info = zipfile.ZipInfo(source.relative_to(root).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, source.read_bytes())
    Path(path).write_bytes(buffer.getvalue())


class JobLauncher:
    """Runs partition jobs over one dataset with one mrjob runner.

    Parameters
    ----------
    dataset : storage.dataset.Dataset
    model_spec : dict
        ``{"kind", "n_features", "classes", "fit_intercept"}``: what tasks need to rebuild the model.
    runner : str
        One of :data:`RUNNERS`.
    conf_path : str, optional
        mrjob config file; by default mrjob's own lookup (``$MRJOB_CONF``, ``~/.mrjob.conf``) applies.
    shards : int
        Number of pieces (and reducers) the summed vector is cut into.
    """

    def __init__(self, dataset, model_spec, *, runner="inline", conf_path=None, shards=1):
        if runner not in RUNNERS:
            raise ValueError(
                f"The 'runner' parameter must be one of {list(RUNNERS)}. Got {runner!r} instead."
            )
        if not (isinstance(shards, int) and shards >= 1):
            raise ValueError(f"The 'shards' parameter must be an int >= 1. Got {shards!r} instead.")
        self.dataset = dataset
        self.model_spec = model_spec
        self.runner = runner
        self.conf_path = conf_path
        self.shards = shards
        self.workdir = tempfile.mkdtemp(prefix="mrtrain-")
        self.partition_list = os.path.join(self.workdir, "partitions.txt")
        with open(self.partition_list, "w", encoding="utf-8") as handle:
            for part in dataset.partitions:
                handle.write(format_partition_line(part.index, task_uri(part.uri), part.sha256) + "\n")
        self.code_zip = os.path.join(self.workdir, "mrtrain-code.zip")
        package_zip(self.code_zip)
        self.jobs_run = 0
        self.last_counters = []

    def close(self):
        """Remove the launcher's temporary files."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _args(self, task, thetas):
        job_dir = os.path.join(self.workdir, f"job-{self.jobs_run:06d}")
        os.makedirs(job_dir)
        task_path = os.path.join(job_dir, "task.json")
        with open(task_path, "w", encoding="utf-8") as handle:
            json.dump({"model": self.model_spec, "shards": self.shards, **task}, handle)
        params_path = os.path.join(job_dir, "params.npy")
        np.save(params_path, np.ascontiguousarray(thetas, dtype=np.float64), allow_pickle=False)
        args = ["-r", self.runner, "--task", task_path, "--params", params_path]
        if self.conf_path:
            args += ["--conf-path", self.conf_path]
        if self.runner == "local":
            args += _LOCAL_TASK_ARGS
        elif self.runner == "hadoop":
            args += ["--py-files", self.code_zip]
        for name in TASK_ENVIRONMENT:
            if os.environ.get(name):
                args += ["--cmdenv", f"{name}={os.environ[name]}"]
        args += ["--jobconf", f"mapreduce.job.reduces={self.shards}", self.partition_list]
        return args

    def run(self, job_class, thetas, task):
        """Run one job and return its parsed output records.

        Parameters
        ----------
        job_class : subclass of mr_jobs.partition_job.PartitionJob
        thetas : ndarray, shape (m, p)
            Parameter points shipped to every task.
        task : dict
            Extra task settings (e.g. ``{"hessian": True}``).

        Returns
        -------
        list of (key, value)
            The job's output; its Hadoop counters (one dict per step) are kept in ``last_counters``.
        """
        job = job_class(args=self._args(task, thetas))
        self.jobs_run += 1
        with job.make_runner() as runner:
            runner.run()
            self.last_counters = runner.counters()
            return list(job.parse_output(runner.cat_output()))

    def sum_vector(self, job_class, thetas, task):
        """Run a partition-sum job and return the total vector (shards concatenated in order).

        Raises
        ------
        RuntimeError
            If the job's output does not cover every partition exactly once.
        """
        records = sorted(self.run(job_class, thetas, task), key=lambda record: int(record[0]))
        expected = len(self.dataset.partitions)
        if [int(key) for key, _ in records] != list(range(self.shards)) or any(
            count != expected for _, (count, _) in records
        ):
            found = {key: count for key, (count, _) in records}
            raise RuntimeError(
                f"{job_class.__name__} summed partitions per shard {found}; expected {expected} in each of "
                f"{self.shards} shard(s)."
            )
        return np.concatenate([vector for _, (_, vector) in records])
