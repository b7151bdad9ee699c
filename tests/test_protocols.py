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


def test_mostly_zero_vectors_cross_sparse_and_come_back_bitwise():
    rng = np.random.default_rng(1)
    vector = np.zeros(2**20)
    touched = rng.choice(2**20, size=5000, replace=False)
    vector[touched] = rng.normal(size=5000)
    vector[touched[:3]] = [-0.0, np.nan, 1e-310]  # a negative zero is sent like any other value
    text = encode_vector(vector)
    assert text.startswith("~1048576:")
    assert len(text) < len(base64_dense(vector)) / 10
    back = decode_vector(text)
    assert back.tobytes() == vector.tobytes()
    dense = np.random.default_rng(2).normal(size=100)
    assert not encode_vector(dense).startswith("~")  # dense stays dense
    assert decode_vector(encode_vector(np.zeros(7))).tobytes() == np.zeros(7).tobytes()


def test_dense_records_starting_with_any_base64_character_decode_as_dense():
    """The sparse marker is outside the base64 alphabet: no dense record can be mistaken for one."""
    rng = np.random.default_rng(4)
    firsts = set()
    for _ in range(2000):
        vector = rng.normal(size=3) * 10.0 ** rng.integers(-300, 300)
        text = encode_vector(vector)
        firsts.add(text[0])
        assert decode_vector(text).tobytes() == vector.tobytes()
    assert "s" in firsts  # the character that was once the marker


def base64_dense(vector):
    import base64

    return base64.b64encode(vector.tobytes()).decode("ascii")


def test_partition_sums_are_bitwise_the_same_whichever_form_crossed():
    """Adding decoded sparse vectors in partition order gives the dense sum's exact bits."""
    rng = np.random.default_rng(3)
    vectors = []
    for _ in range(4):
        vector = np.zeros(10_000)
        vector[rng.choice(10_000, size=300, replace=False)] = rng.normal(size=300) * 1e-3
        vectors.append(vector)
    vectors[1][5] = -0.0
    dense_total = vectors[0].copy()
    for vector in vectors[1:]:
        dense_total += vector
    decoded = [decode_vector(encode_vector(vector)) for vector in vectors]
    total = decoded[0].copy()
    for vector in decoded[1:]:
        total += vector
    assert total.tobytes() == dense_total.tobytes()


@pytest.mark.parametrize("text, message", [
    ("~5:AAAA", "~<LENGTH>:<INDICES>:<VALUES>"),
    ("~-1::", r"length must be in \[0, "),
    ("~99999999999::", r"length must be in \[0, "),
    ("~4:AQAAAA==:", "one float64 per index"),
    ("~4:BQAAAA==:AAAAAAAA8D8=", r"indices must increase within \[0, 4\)"),
])
def test_bad_sparse_records_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        decode_vector(text)
