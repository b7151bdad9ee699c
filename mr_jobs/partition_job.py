"""Shared shape of mrtrain's jobs: one mapper per dataset partition, sums added in partition order.

The job input is a *partition list* written by the driver: one line per partition,
``PARTITION_ID<TAB>URI<TAB>SHA256<TAB>ROWS<TAB>BYTES``, the manifest's facts, which the reading task checks.
Each mapper reads the partitions named on its lines itself, through :mod:`storage` (local disk or
``hdfs://`` over WebHDFS), so the same job runs on the inline, local and hadoop runners.
On Hadoop, ``NLineInputFormat`` gives every line its own map task; Hadoop streaming then prefixes the line
with its byte offset, which :func:`parse_partition_line` ignores.

Subclasses define :meth:`PartitionSumJob.partial_vector`, the 1-D float64 vector of sums one partition
contributes. The reducer adds the vectors of all partitions **in partition-id order**
(:func:`sum_in_partition_order`), whatever order the shuffle delivered them in, so the total is bitwise the
same on every runner. With ``--map-only`` the job has no reduce phase: its output is the mappers' tagged
vectors and the driver adds them with the same function, in the same order, to the same bits.

A mapper that fails raises :class:`PartitionDataError` (bad data: a :class:`mrtrain.storage.errors.DataError`)
or :class:`PartitionError` (anything else) whose one-line message starts with ``partition N`` and names the
partition's URI; the driver finds that line again in the task's traceback (see ``scripts/cli.py``).
"""

import contextlib
import json
import logging
import os
import time
import warnings
from typing import NamedTuple

import numpy as np
from mrjob.protocol import RawValueProtocol
from mrjob.step import MRStep
from threadpoolctl import threadpool_limits

from mrtrain.engine.registry import model_from_spec
from mrtrain.mr_jobs.job_args import CachedArgsJob
from mrtrain.mr_jobs.protocols import TaggedVectorProtocol
from mrtrain.storage.errors import DataError
from mrtrain.storage.filesystem import get_filesystem
from mrtrain.storage.partition_cache import PartitionCache

log = logging.getLogger(__name__)

#: Counter group in which a map task counts, under its partition id, sums that were not finite.
NON_FINITE_COUNTERS = "mrtrain non-finite sums"
#: Counter (group ``mrtrain``) a partition-sum map task adds the size of every record it emits to: the bytes
#: of the ``KEY<TAB>TAG<TAB>VECTOR`` line and its newline, which cross the shuffle to the reducers (with
#: ``--map-only``, the job's output that the driver reads back).
SHUFFLE_BYTES = "shuffle bytes"
#: Counter (group ``mrtrain``) a partition-sum map task adds the milliseconds of its work to: reading (or
#: taking from the cache) its partition and computing its vector. What is left of a job's wall time is the
#: job's own cost, which ``--allreduce`` pays once per training (see :mod:`mrtrain.allreduce_hint`).
MAP_WORK_MS = "map work ms"
#: Environment variable naming a partition id whose first map attempt fails on purpose (fault tests).
FAULT_PARTITION_ENV = "MRTRAIN_FAULT_FAIL_PARTITION"


class PartitionError(RuntimeError):
    """A map task failed on one partition; the message is ``partition N (URI): Type: message``."""


class PartitionDataError(DataError):
    """A partition holds bad data; the message is ``partition N: URI: row/field: expected ..., found ...``."""


@contextlib.contextmanager
def failures_named(partition_id, uri):
    """Re-raise any exception of the block as a one-line error naming the partition."""
    try:
        yield
    except (PartitionDataError, PartitionError):
        raise
    except DataError as error:
        text = str(error) if str(error).startswith(uri) else f"{uri}: {error}"
        raise PartitionDataError(f"partition {partition_id}: {text}") from error
    except Exception as error:
        text = " ".join(str(error).split()) or "(no message)"
        raise PartitionError(f"partition {partition_id} ({uri}): {type(error).__name__}: {text}") from error


def first_invalid_row(model, y_raw):
    """0-based index of the first label ``model.encode_labels`` refuses, or None."""
    for row in range(len(y_raw)):
        try:
            model.encode_labels(y_raw[row:row + 1])
        except ValueError:
            return row
    return None


@contextlib.contextmanager
def single_threaded_blas():
    """Context in which the model math of a task runs: BLAS on one thread, overflow checked explicitly.

    One task per core is the parallelism; a multi-threaded BLAS in every task oversubscribes the cores
    (slower passes), and a thread count that follows the machine would let the
    last bits of the sums depend on where a task ran. With one thread they are the same on every runner
    and node.

    Floating-point warnings are off: overflow shows as non-finite sums, which the jobs and the driver check
    for. Any other warning is logged rather than printed, because mrjob's inline runner replaces
    ``sys.stderr`` with a bytes stream that a printed warning would turn into an unrelated TypeError.
    """
    with threadpool_limits(limits=1, user_api="blas"), np.errstate(all="ignore"), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        log.warning("%s: %s", warning.category.__name__, warning.message)


class PartitionLine(NamedTuple):
    """One partition-list line: what a map task needs to read and check one partition."""

    partition_id: int
    uri: str
    sha256: str
    rows: int
    bytes: int


def parse_partition_line(line):
    """Split a partition-list line ``ID<TAB>URI<TAB>SHA256<TAB>ROWS<TAB>BYTES`` into a :class:`PartitionLine`.

    Leading fields (Hadoop's byte offset under ``NLineInputFormat``) are ignored.
    """
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) < len(PartitionLine._fields):
        raise ValueError(
            f"A partition-list line needs ID<TAB>URI<TAB>SHA256<TAB>ROWS<TAB>BYTES. Got {line!r}."
        )
    partition_id, uri, sha256, rows, nbytes = fields[-len(PartitionLine._fields):]
    return PartitionLine(int(partition_id), uri, sha256, int(rows), int(nbytes))


def format_partition_line(partition_id, uri, sha256, rows, nbytes):
    """Inverse of :func:`parse_partition_line`."""
    for name, value in (("uri", uri), ("sha256", sha256)):
        if "\t" in value or "\n" in value:
            raise ValueError(f"A partition {name} may not contain tabs or newlines. Got {value!r}.")
    return f"{int(partition_id)}\t{uri}\t{sha256}\t{int(rows)}\t{int(nbytes)}"


def split_shards(vector, n_shards):
    """Cut ``vector`` into ``n_shards`` contiguous pieces (the last ones may be one shorter)."""
    return np.array_split(vector, n_shards)


def sum_in_partition_order(tagged_vectors, shard="0"):
    """Add ``(partition_id, vector)`` pairs in partition-id order.

    Returns
    -------
    count : int
        Number of partitions added.
    total : ndarray
        ``v[i0] + v[i1] + ...`` for increasing ids, added left to right.

    Raises
    ------
    ValueError
        If a partition id occurs twice.
    """
    ordered = sorted(tagged_vectors, key=lambda tagged: tagged[0])
    ids = [partition_id for partition_id, _ in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError(f"Shard {shard} received a partition twice: ids {ids}.")
    total = ordered[0][1].copy()
    for _, vector in ordered[1:]:
        total += vector
    return len(ordered), total


def _attempt_number():
    attempt_id = os.environ.get("mapreduce_task_attempt_id", "")
    tail = attempt_id.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PartitionJob(CachedArgsJob):
    """Base job: the input is a partition list; each mapper reads the partitions on its lines. Its argument
    parser is built once per job class (:mod:`mrtrain.mr_jobs.job_args`)."""

    INPUT_PROTOCOL = RawValueProtocol
    HADOOP_INPUT_FORMAT = "org.apache.hadoop.mapred.lib.NLineInputFormat"
    JOBCONF = {"mapreduce.input.lineinputformat.linespermap": 1}

    def hadoop_input_format(self):
        """``NLineInputFormat`` on Hadoop only (the other runners split the input list themselves)."""
        return self.HADOOP_INPUT_FORMAT if self.options.runner == "hadoop" else None

    def configure_args(self):
        super().configure_args()
        self.add_file_arg(
            "--task", help="JSON file describing the model and the job's settings (written by the driver)"
        )
        self.add_file_arg("--params", help=".npy file of parameter points, shape (m, p)")

    def mapper_init_load_task(self):
        with open(self.options.task, encoding="utf-8") as handle:
            self.task = json.load(handle)
        spec = self.task["model"]
        self.model = model_from_spec(spec)
        self.thetas = np.load(self.options.params, allow_pickle=False)
        p = self.model.n_params
        if self.thetas.ndim != 2 or self.thetas.shape[1] != p or not np.isfinite(self.thetas).all():
            raise ValueError(
                f"{self.options.params}: expected finite parameter points of shape (m, {p}), found shape "
                f"{self.thetas.shape}" + ("" if np.isfinite(self.thetas).all() else " with non-finite values")
            )
        self.cache = PartitionCache() if self.task.get("partition_cache", True) else None

    def read_partition_line(self, line):
        """Read the partition named on one input line.

        Returns
        -------
        partition_id : int
        uri : str
        X : ndarray, shape (n, d)
        y_raw : ndarray, shape (n,), labels as stored
        w : ndarray, shape (n,), or None
        """
        part = parse_partition_line(line)
        partition_id, uri = part.partition_id, part.uri
        self.increment_counter("mrtrain", "partitions read")
        with failures_named(partition_id, uri):
            if os.environ.get(FAULT_PARTITION_ENV) == str(partition_id) and _attempt_number() == 0:
                raise RuntimeError(f"failing the first attempt on purpose ({FAULT_PARTITION_ENV})")
            X, y_raw, w = self._read_or_cached(part)
        self.increment_counter("mrtrain", "rows read", len(y_raw))
        return partition_id, uri, X, y_raw, w

    def _read_or_cached(self, part):
        """The partition from the node's :class:`PartitionCache`, else read, verified and then cached.

        The file is stat'ed before anything else: a cache entry is used only if the file is still the one
        it was decoded from, and a file changed while being read is never cached under the old stat. A read
        checks the file against everything the manifest says of it (bytes, sha256, rows, dimension, the
        weight column).
        """
        uri, sha256, n_features = part.uri, part.sha256, self.task["model"]["n_features"]
        if self.cache:
            file_stat = get_filesystem(uri).stat(uri)
            cached = self.cache.get(sha256, uri, file_stat, n_features)
            if cached is not None:
                self.increment_counter("mrtrain", "partitions from cache")
                return cached
        # Imported here: pyarrow is ~30 ms of a task's start-up, which reducers and cache hits never need.
        from mrtrain.storage.dataset import read_partition

        X, y_raw, w = read_partition(
            uri, expected_sha256=sha256, n_features=n_features, expected_rows=part.rows,
            expected_bytes=part.bytes, has_weight=self.task.get("has_weight"),
            missing=self.task.get("missing", False),
        )
        if self.cache and self.cache.put(sha256, uri, file_stat, X, y_raw, w):
            self.increment_counter("mrtrain", "partitions cached")
        return X, y_raw, w


class PartitionSumJob(PartitionJob):
    """Map each partition to a vector of sums; add the vectors in partition order."""

    INTERNAL_PROTOCOL = TaggedVectorProtocol
    OUTPUT_PROTOCOL = TaggedVectorProtocol

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg(
            "--map-only", action="store_true",
            help="no reduce phase: output the mappers' (partition id, vector) records for the driver to add",
        )

    def steps(self):
        reducer = {} if self.options.map_only else {"reducer": self.reducer_sum_in_partition_order}
        return [MRStep(mapper_init=self.mapper_init_load_task, mapper=self.mapper_partition_sums, **reducer)]

    def mapper_partition_sums(self, _, line):
        started = time.perf_counter()
        partition_id, uri, X, y_raw, w = self.read_partition_line(line)
        y = self.encoded_labels(partition_id, uri, y_raw)
        self.partition_id = partition_id  # for sums that depend on where a row is (row splits)
        with failures_named(partition_id, uri), single_threaded_blas():
            vector = self.partial_vector(X, y, w)
        if not np.isfinite(vector).all():
            # Trial points may overflow (the line search rejects them); the driver names these partitions
            # when the point it cannot do without does.
            self.increment_counter(NON_FINITE_COUNTERS, str(partition_id))
        self.increment_counter("mrtrain", MAP_WORK_MS, round(1000 * (time.perf_counter() - started)))
        for shard, piece in enumerate(split_shards(vector, self.task.get("shards", 1))):
            record = (str(shard), (partition_id, piece))
            self.increment_counter("mrtrain", SHUFFLE_BYTES, TaggedVectorProtocol().size(*record) + 1)
            yield record

    def encoded_labels(self, partition_id, uri, y_raw):
        """The model's encoding of a partition's labels; a bad label is a :class:`PartitionDataError`
        naming the partition, the row and the column."""
        with failures_named(partition_id, uri):
            try:
                return self.model.encode_labels(y_raw)
            except ValueError as error:
                row = first_invalid_row(self.model, y_raw)
                where = f"row {row + 1}: " if row is not None else ""
                raise DataError(f"{uri}: {where}column 'label': {error}") from None

    def partial_vector(self, X, y, w):
        """The vector of sums one partition contributes. Override in subclasses.

        Parameters
        ----------
        X : ndarray, shape (n, d)
        y : ndarray, shape (n,), encoded labels
        w : ndarray, shape (n,), or None

        Returns
        -------
        ndarray, shape (k,), float64
        """
        raise NotImplementedError

    def reducer_sum_in_partition_order(self, shard, tagged_vectors):
        yield shard, sum_in_partition_order(tagged_vectors, shard)
