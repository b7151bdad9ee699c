"""Which rows a model trains on and which it is scored on: k-fold and hold-out splits by a stable row hash.

A row's place in a split depends only on its partition id, its index in the partition and the split's seed,
never on the runner, the task that reads it or the order partitions are processed in, so every runner sums
the same rows into the same groups. The hash (``row_hash``) is SplitMix64's finaliser (Steele, Lea and Flood,
"Fast splittable pseudorandom number generators", OOPSLA 2014; the mixer of Java's ``SplittableRandom``)
applied to the 64-bit key::

    key  = (partition_id << 32) + row_index   (row_index < 2**32)
    hash = splitmix64(key XOR splitmix64(seed))

A split is a JSON-able dict (it travels in the task file):

- ``{"kind": "folds", "k": K, "seed": S}``: the row's group is ``hash mod K`` (``K >= 2`` groups, the folds
  of k-fold cross-validation).
- ``{"kind": "holdout", "fraction": F, "seed": S}``: group 1 (held out) when ``(hash >> 11) * 2**-53 < F``,
  the hash's top 53 bits as a uniform number in [0, 1), else group 0 (trained on).

Folds are about equal in expectation, not exactly: a fold of a small dataset may be empty (the trainer
refuses a split with an empty group).
"""

import numpy as np

#: Kinds of split.
SPLITS = ("folds", "holdout")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x):
    """SplitMix64's output for state ``x`` (uint64 array or scalar): ``x + golden`` mixed, mod 2**64."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def row_hash(partition_id, n_rows, seed):
    """The 64-bit hash of rows ``0 .. n_rows - 1`` of partition ``partition_id``, shape (n_rows,)."""
    if not 0 <= n_rows < 2**32 or not 0 <= partition_id < 2**31:
        raise ValueError(f"Row hashing needs a partition id < 2**31 and fewer than 2**32 rows. Got partition "
                         f"{partition_id} with {n_rows} rows instead.")
    with np.errstate(over="ignore"):
        keys = (np.uint64(partition_id) << np.uint64(32)) + np.arange(n_rows, dtype=np.uint64)
        return splitmix64(keys ^ splitmix64(np.uint64(seed)))


def n_groups(split):
    """Number of row groups ``split`` makes (1 for no split)."""
    if split is None:
        return 1
    return split["k"] if split["kind"] == "folds" else 2


def row_groups(split, partition_id, n_rows):
    """The group of every row of a partition under ``split``: int64 array of shape (n_rows,)."""
    hashes = row_hash(partition_id, n_rows, split["seed"])
    if split["kind"] == "folds":
        return (hashes % np.uint64(split["k"])).astype(np.int64)
    uniform = (hashes >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return (uniform < split["fraction"]).astype(np.int64)


def check_split(split):
    """Return ``split`` if it is a valid split dict, else raise ValueError naming the field."""
    if not isinstance(split, dict) or split.get("kind") not in SPLITS:
        raise ValueError(f"A row split must be a dict with 'kind' in {list(SPLITS)}. Got {split!r} instead.")
    seed = split.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"A row split's 'seed' must be an int in [0, 2**63). Got {seed!r} instead.")
    if split["kind"] == "folds":
        k = split.get("k")
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"A k-fold split's 'k' must be an int >= 2. Got {k!r} instead.")
    else:
        fraction = split.get("fraction")
        if isinstance(fraction, bool) or not isinstance(fraction, float | int) or not 0 < fraction < 1:
            raise ValueError(f"A hold-out split's 'fraction' must be a number in (0, 1). Got {fraction!r} "
                             "instead.")
    return split
