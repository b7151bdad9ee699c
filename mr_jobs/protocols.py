"""Exact binary encoding of numpy vectors for the MapReduce shuffle.

Partial sums cross the shuffle as one text line per record, ``KEY<TAB>TAG<TAB>VECTOR``. A dense ``VECTOR``
is the base64 of the little-endian float64 bytes of a 1-D vector. A vector that is mostly zeros — the
gradient sums of one partition of a wide sparse dataset touch only the features that partition holds — is
sent sparse instead, as ``~<LENGTH>:<BASE64 INDICES>:<BASE64 VALUES>`` (little-endian int32 or int64
positions and the float64 values there; ``~`` is outside the base64 alphabet, so no dense record starts
with it), whenever that is shorter. Only ``+0.0`` entries are left out, so
decoding rebuilds exactly the same bits (a ``-0.0`` is sent like any other value), and the reducer adds
the same dense vectors in the same order: the sum is bitwise the same whichever form crossed the shuffle.
Every bit of every float survives the round trip, and nothing is ever unpickled.
"""

import base64

import numpy as np

_DTYPE = np.dtype("<f8")
_INT32, _INT64 = np.dtype("<i4"), np.dtype("<i8")
#: First character of a sparse record; never the first character of base64.
_SPARSE = "~"
#: Longest vector a record may declare (what the model size limits allow, with room).
MAX_LENGTH = 2**34


def encode_vector(vector):
    """Encode a 1-D float64 vector as ASCII base64 of its little-endian bytes.

    Parameters
    ----------
    vector : array_like, shape (k,)

    Returns
    -------
    str
    """
    return b"".join(_encoded_pieces(vector)).decode("ascii")


def _encoded_pieces(vector):
    """ASCII byte strings whose concatenation is ``encode_vector(vector)``.

    Each is encoded straight from an array's buffer, without a ``bytes`` or ``str`` copy in between, so that
    a record is built holding about twice its length (its pieces, then the joined line), not several times.
    """
    array = _as_vector(vector)
    bits = array.view(np.uint64)  # everything but +0.0 is stored
    if not _sparse_is_shorter(int(np.count_nonzero(bits)), len(array)):
        return [base64.b64encode(array)]
    stored = np.flatnonzero(bits)
    positions = base64.b64encode(stored.astype(_index_dtype(len(array))))
    values = base64.b64encode(array[stored])
    return [f"{_SPARSE}{len(array)}:".encode("ascii"), positions, b":", values]


def encoded_length(vector):
    """``len(encode_vector(vector))``, computed without encoding.

    Parameters
    ----------
    vector : array_like, shape (k,)

    Returns
    -------
    int
    """
    array = _as_vector(vector)
    stored = int(np.count_nonzero(array.view(np.uint64)))
    if _sparse_is_shorter(stored, len(array)):
        positions = _base64_length(stored * _index_dtype(len(array)).itemsize)
        values = _base64_length(stored * _DTYPE.itemsize)
        return len(f"{_SPARSE}{len(array)}::") + positions + values
    return _base64_length(array.nbytes)


def _as_vector(vector):
    array = np.ascontiguousarray(vector, dtype=_DTYPE)
    if array.ndim != 1:
        raise ValueError(f"Only 1-D vectors cross the shuffle. Got an array of shape {array.shape}.")
    return array


def _index_dtype(length):
    return _INT32 if length <= np.iinfo(np.int32).max else _INT64


def _sparse_is_shorter(stored, length):
    """Whether ``stored`` positions and values take fewer raw bytes than all ``length`` values."""
    return stored * (_index_dtype(length).itemsize + _DTYPE.itemsize) < length * _DTYPE.itemsize


def _base64_length(n_bytes):
    return 4 * ((n_bytes + 2) // 3)


def decode_vector(text):
    """Inverse of :func:`encode_vector`.

    Parameters
    ----------
    text : str

    Returns
    -------
    numpy.ndarray, shape (k,), float64 (native byte order)
    """
    if text.startswith(_SPARSE):
        return _decode_sparse(text)
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if len(raw) % _DTYPE.itemsize:
        raise ValueError(
            f"A shuffled vector must be a whole number of float64 values. Got {len(raw)} bytes."
        )
    return np.frombuffer(raw, dtype=_DTYPE).astype(np.float64)


def _decode_sparse(text):
    """The dense vector of a sparse record ``~<LENGTH>:<INDICES>:<VALUES>`` (see the module docstring)."""
    try:
        length_text, positions_text, values_text = text[1:].split(":")
        length = int(length_text)
    except ValueError:
        raise ValueError(
            f"A sparse shuffled vector is ~<LENGTH>:<INDICES>:<VALUES>. Got {text[:40]!r}."
        ) from None
    if not 0 <= length <= MAX_LENGTH:
        raise ValueError(f"A sparse shuffled vector's length must be in [0, {MAX_LENGTH}]. Got {length}.")
    index_dtype = _index_dtype(length)
    positions = np.frombuffer(base64.b64decode(positions_text.encode("ascii"), validate=True),
                              dtype=index_dtype)
    raw = base64.b64decode(values_text.encode("ascii"), validate=True)
    if len(raw) != len(positions) * _DTYPE.itemsize:
        raise ValueError(f"A sparse shuffled vector needs one float64 per index. Got {len(positions)} "
                         f"indices and {len(raw)} bytes.")
    in_range = not len(positions) or (positions.min() >= 0 and positions.max() < length)
    if not in_range or np.any(np.diff(positions) <= 0):
        raise ValueError(f"A sparse shuffled vector's indices must increase within [0, {length}).")
    vector = np.zeros(length, dtype=np.float64)
    vector[positions] = np.frombuffer(raw, dtype=_DTYPE)
    return vector


class TaggedVectorProtocol:
    """mrjob protocol for ``(key, (tag, vector))`` records.

    ``key`` is a str (the shard of the vector), ``tag`` an int (the partition id the partial sum came
    from, or the number of partitions summed), ``vector`` a 1-D float64 array, encoded exactly with
    :func:`encode_vector`.
    """

    def write(self, key, value):
        tag, vector = value
        return b"".join([f"{key}\t{int(tag)}\t".encode("ascii"), *_encoded_pieces(vector)])

    def size(self, key, value):
        """``len(self.write(key, value))``, computed without encoding the vector."""
        tag, vector = value
        return len(f"{key}\t{int(tag)}\t".encode("ascii")) + encoded_length(vector)

    def read(self, line):
        key, tag, text = line.decode("ascii").rstrip("\r\n").split("\t")
        return key, (int(tag), decode_vector(text))
