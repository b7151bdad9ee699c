"""Exact binary encoding of numpy vectors for the MapReduce shuffle.

Partial sums cross the shuffle as one text line per record, ``KEY<TAB>TAG<TAB>BASE64``, where ``BASE64`` is
the base64 of the little-endian float64 bytes of a 1-D vector. Every bit of every float survives the
round trip, and nothing is ever unpickled.
"""

import base64

import numpy as np

_DTYPE = np.dtype("<f8")


def encode_vector(vector):
    """Encode a 1-D float64 vector as ASCII base64 of its little-endian bytes.

    Parameters
    ----------
    vector : array_like, shape (k,)

    Returns
    -------
    str
    """
    array = np.ascontiguousarray(vector, dtype=_DTYPE)
    if array.ndim != 1:
        raise ValueError(f"Only 1-D vectors cross the shuffle. Got an array of shape {array.shape}.")
    return base64.b64encode(array.tobytes()).decode("ascii")


def decode_vector(text):
    """Inverse of :func:`encode_vector`.

    Parameters
    ----------
    text : str

    Returns
    -------
    numpy.ndarray, shape (k,), float64 (native byte order)
    """
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if len(raw) % _DTYPE.itemsize:
        raise ValueError(
            f"A shuffled vector must be a whole number of float64 values. Got {len(raw)} bytes."
        )
    return np.frombuffer(raw, dtype=_DTYPE).astype(np.float64)


class TaggedVectorProtocol:
    """mrjob protocol for ``(key, (tag, vector))`` records.

    ``key`` is a str (the shard of the vector), ``tag`` an int (the partition id the partial sum came
    from, or the number of partitions summed), ``vector`` a 1-D float64 array, encoded exactly with
    :func:`encode_vector`.
    """

    def write(self, key, value):
        tag, vector = value
        return f"{key}\t{int(tag)}\t{encode_vector(vector)}".encode("ascii")

    def read(self, line):
        key, tag, text = line.decode("ascii").rstrip("\r\n").split("\t")
        return key, (int(tag), decode_vector(text))
