"""The shuffle's exact binary encoding and the partition-list lines."""

import numpy as np
import pytest

from mrtrain.mr_jobs.partition_job import format_partition_line, parse_partition_line, split_shards
from mrtrain.mr_jobs.protocols import TaggedVectorProtocol, decode_vector, encode_vector


def test_vector_round_trip_is_bitwise():
    values = np.array([0.0, -0.0, 1e-310, np.nan, np.inf, -np.inf, np.pi, -1 / 3, 2.0**1023])
    back = decode_vector(encode_vector(values))
    assert back.dtype == np.float64
    assert back.tobytes() == values.tobytes()


def test_protocol_round_trip_with_trailing_newline():
    protocol = TaggedVectorProtocol()
    vector = np.random.default_rng(0).normal(size=7)
    line = protocol.write("3", (12, vector))
    key, (tag, back) = protocol.read(line + b"\n")
    assert (key, tag) == ("3", 12)
    assert back.tobytes() == vector.tobytes()


def test_encoding_refuses_matrices_and_ragged_bytes():
    with pytest.raises(ValueError, match=r"Only 1-D vectors .* shape \(2, 2\)"):
        encode_vector(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="whole number of float64 values. Got 3 bytes"):
        decode_vector("AAAA")


@pytest.mark.parametrize("prefix", ["", "0\t", "1234\t"])
def test_partition_line_ignores_hadoop_offset(prefix):
    uri = "hdfs://127.0.0.1:8020/d/part-00007.parquet"
    line = prefix + format_partition_line(7, uri, "ab" * 32, 150, 4096) + "\n"
    assert parse_partition_line(line) == (7, uri, "ab" * 32, 150, 4096)


def test_partition_line_errors():
    with pytest.raises(ValueError, match="needs ID<TAB>URI<TAB>SHA256"):
        parse_partition_line("just-a-uri\n")
    with pytest.raises(ValueError, match="may not contain tabs"):
        format_partition_line(0, "a\tb", "00", 1, 1)


def test_shards_cover_the_vector_in_order():
    vector = np.arange(10.0)
    pieces = split_shards(vector, 3)
    assert [len(p) for p in pieces] == [4, 3, 3]
    assert np.concatenate(pieces).tobytes() == vector.tobytes()
