"""A probe job for the Hadoop cluster tests: one JSON record per input line, saying where it ran.

Each mapper reports the raw line it received (NLineInputFormat gives "offset<TAB>line" unless
``stream.map.input.ignoreKey`` is set), its task id and YARN container, an environment variable
passed with ``--cmdenv``, and the numpy and pyarrow versions it imported. The reducer passes records
through unchanged, so the test also exercises the shuffle.
"""

import os

from mrjob.job import MRJob
from mrjob.protocol import JSONValueProtocol
from mrjob.step import MRStep

NLINE_INPUT_FORMAT = "org.apache.hadoop.mapred.lib.NLineInputFormat"
PROBE_ENV = "MRTRAIN_PROBE"


class MRHadoopProbe(MRJob):
    """Report, for every input line, the task that read it and what that task could see."""

    HADOOP_INPUT_FORMAT = NLINE_INPUT_FORMAT
    OUTPUT_PROTOCOL = JSONValueProtocol

    def mapper_probe(self, _, line):
        import numpy
        import pyarrow

        yield line, {
            "line": line,
            "task_id": os.environ.get("mapreduce_task_id"),
            "container_id": os.environ.get("CONTAINER_ID"),
            "probe_env": os.environ.get(PROBE_ENV),
            "numpy": numpy.__version__,
            "pyarrow": pyarrow.__version__,
        }

    def reducer_pass_through(self, _, records):
        yield from ((None, record) for record in records)

    def steps(self):
        return [MRStep(mapper=self.mapper_probe, reducer=self.reducer_pass_through)]


if __name__ == "__main__":
    MRHadoopProbe.run()
