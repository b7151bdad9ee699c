"""AllReduce job of a tree ensemble: :mod:`.allreduce_job`'s map tasks (groups of partitions held in memory,
the same handshake, reconnects and stop) serving histogram passes.

A pass request carries the pass's state: its JSON header in the request (``"trees"``) and its arrays as
the payload (:class:`mrtrain.engine.tree_pass.PassState`); each partition's answer is
:meth:`~mrtrain.engine.tree_pass.PassState.partition_vector`, the vector the job-per-pass
:class:`~mrtrain.mr_jobs.tree_histograms.MRTreeHistograms` computes, so the sums have the same bits. A task
holds its partitions for the whole training, so it keeps a
:class:`~mrtrain.engine.tree_memory.PartitionMemory` per partition: the binned rows, the finished trees'
margin and the growing trees' row → node assignment, updated each pass instead of recomputed.
"""

import mrtrain.mr_jobs  # noqa: F401  (first: mrtrain/__init__.py provides what mrjob needs, mrtrain._mrjob_compat)

# isort: split
from mrtrain.engine.tree_memory import PartitionMemory
from mrtrain.engine.tree_pass import PassState
from mrtrain.mr_jobs import allreduce_wire as wire
from mrtrain.mr_jobs.allreduce_job import MRAllReduce
from mrtrain.mr_jobs.partition_job import failures_named, single_threaded_blas
from mrtrain.mr_jobs.tree_job import TreeTask

#: The largest pass payload (a tree state) a task reads, in bytes.
MAX_STATE_BYTES = 2**31


class MRTreeAllReduce(TreeTask, MRAllReduce):
    """Map tasks that hold their partitions and serve a tree training's histogram passes."""

    def max_payload_bytes(self):
        return min(wire.MAX_POINTS_BYTES, MAX_STATE_BYTES)

    def partition_memory(self, partition_id):
        """What this task remembers of partition ``partition_id`` between passes (a PartitionMemory)."""
        memories = vars(self).setdefault("_memories", {})
        return memories.setdefault(partition_id, PartitionMemory())

    def answer_request(self, sock, header, payload, partitions):
        """Answer a tree pass: every partition's vector for the request's state."""
        trees = header.get("trees")
        if not isinstance(trees, dict):
            raise wire.ProtocolError(f"expected a tree pass with its state's header, found {header!r:.200}")
        try:
            state = PassState.from_wire(trees, payload)
        except (KeyError, TypeError, ValueError) as error:
            raise wire.ProtocolError(f"expected a tree pass's state, found one that does not decode: "
                                     f"{error}") from None
        vectors = []
        for partition_id, uri, X, y, w in partitions:
            memory = self.partition_memory(partition_id)
            with failures_named(partition_id, uri), single_threaded_blas():
                vectors.append(state.partition_vector(X, y, w, partition_id, memory))
        wire.send_message(sock, {"type": "result", "pass": header.get("pass"),
                                 "partitions": [part[0] for part in partitions]}, vectors)
        return False


if __name__ == "__main__":
    MRTreeAllReduce.run()
