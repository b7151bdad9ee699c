"""Categorical encodings at ingest: the hashing trick and one-hot dictionaries, and their manifest record.

A categorical value ``v`` of column ``c`` is the string ``f"{c}={v}"`` (integers written in decimal, a
missing value, null or empty, written ``<missing>``).

- Hashing (``hash_bits=B``): the slot is ``murmurhash3_32(s.encode("utf-8"), seed=0) % 2**B``, the
  unsigned 32-bit MurmurHash3_x86_32 (Austin Appleby's reference, as Spark's ``FeatureHasher`` and
  Vowpal Wabbit use it); each value contributes 1.0, so collisions within a row add up.
- One-hot: a dictionary of levels per column built during ingest, sorted; values seen fewer than
  ``min_count`` times go to the column's ``<other>`` category, a missing value to ``<missing>``. A column's
  slots (``"slots"``) are its categories in the order levels, ``<missing>``, ``<other>``, keeping only
  those the training data fills, less the reference category that ``drop`` removes (``"reference"``):
  ``"none"`` keeps every slot, ``"first"`` drops the first (R's treatment coding: its effect is in the
  intercept), ``"if-binary"`` drops the first of a column with exactly two (scikit-learn's
  ``OneHotEncoder(drop=...)`` vocabulary). A row of the reference category, or (with ``--like``) of a
  category without a slot (unseen values when the training data had no ``<other>``, a missing value when
  it had none) has no entry in the column, as scikit-learn's ``handle_unknown="ignore"``. Encodings
  written before ``"slots"`` existed have every level's slot, then ``<missing>`` and ``<other>``.

The record stored in a dataset manifest (``"encoding"``) is validated on read by :func:`validate_encoding`;
:func:`encoding_digest` is a short sha256 of it that identifies an encoding, and
:func:`encoding_difference` names the first difference between two.
"""

import hashlib
import json

import numpy as np

from mrtrain.storage.errors import DataError

MISSING = "<missing>"
OTHER = "<other>"
MIN_HASH_BITS, MAX_HASH_BITS = 1, 30
#: The most one-hot levels of all columns together (the ``<missing>`` and ``<other>`` slots included).
MAX_LEVELS = 2**20
MAX_COLUMNS = 2**16
IMPUTE = ("zero", "mean")
#: ``drop`` policies of one-hot encoding (scikit-learn's ``OneHotEncoder(drop=...)`` vocabulary).
DROPS = ("none", "first", "if-binary")
_KEYS = ("categorical", "hash_bits", "impute", "levels", "means", "min_count", "numeric")
#: Keys of a one-hot encoding written since reference levels exist (all three or none).
_SLOT_KEYS = ("drop", "reference", "slots")
_MASK32 = 0xFFFFFFFF


def _rotl32(x, r):
    return ((x << r) | (x >> (32 - r))) & _MASK32


def murmurhash3_32(data, seed=0):
    """MurmurHash3_x86_32 of ``data``, an unsigned 32-bit int (Austin Appleby's reference algorithm).

    Parameters
    ----------
    data : bytes
    seed : int
        Unsigned 32-bit seed. Default 0.

    Returns
    -------
    int in [0, 2**32)
    """
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed & _MASK32
    n_blocks = len(data) // 4
    for k in np.frombuffer(data, dtype="<u4", count=n_blocks).tolist():
        k = _rotl32((k * c1) & _MASK32, 15)
        h ^= (k * c2) & _MASK32
        h = (_rotl32(h, 13) * 5 + 0xE6546B64) & _MASK32
    tail = data[4 * n_blocks:]
    k = 0
    for i, byte in enumerate(tail):
        k |= byte << (8 * i)
    if tail:
        k = _rotl32((k * c1) & _MASK32, 15)
        h ^= (k * c2) & _MASK32
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK32
    return h ^ (h >> 16)


def value_string(column, value):
    """The string hashed for ``value`` of ``column``: ``f"{column}={value}"``, ``<missing>`` for None/""."""
    return f"{column}={MISSING if value is None or value == '' else value}"


def hash_slots(column, values, hash_bits):
    """Slots of distinct ``values`` of ``column`` in ``2**hash_bits``, each value hashed once.

    Returns
    -------
    ndarray of int64, shape (len(values),)
    """
    mask = (1 << hash_bits) - 1
    return np.array([murmurhash3_32(value_string(column, v).encode("utf-8")) & mask for v in values],
                    dtype=np.int64)


def check_hash_bits(hash_bits):
    """Raise ValueError unless ``hash_bits`` is None or an int in [1, 30]."""
    if hash_bits is not None and (isinstance(hash_bits, bool) or not isinstance(hash_bits, int)
                                  or not MIN_HASH_BITS <= hash_bits <= MAX_HASH_BITS):
        raise ValueError(f"The 'hash_bits' parameter must be an int in [{MIN_HASH_BITS}, {MAX_HASH_BITS}]. "
                         f"Got {hash_bits!r} instead.")


def check_min_count(min_count):
    """Raise ValueError unless ``min_count`` is an int >= 1."""
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"The 'min_count' parameter must be an int >= 1. Got {min_count!r} instead.")


def check_impute(impute):
    """Raise ValueError unless ``impute`` is None or one of ``IMPUTE``."""
    if impute is not None and impute not in IMPUTE:
        raise ValueError(f"The 'impute' parameter must be one of {IMPUTE} or None. Got {impute!r} instead.")


def build_levels(column, distinct, counts, min_count, src):
    """The sorted levels of ``column`` kept from its ``distinct`` non-missing values seen ``counts`` times."""
    for special in (MISSING, OTHER):
        if special in distinct:
            raise DataError(f"{src}: column {column!r}: expected values other than the reserved "
                            f"{MISSING!r} and {OTHER!r}, found {special!r}")
    return sorted(v for v, c in zip(distinct, counts, strict=True) if c >= min_count)


def check_drop(drop):
    """Raise ValueError unless ``drop`` is one of ``DROPS``."""
    if drop not in DROPS:
        raise ValueError(f"The 'drop' parameter must be one of {DROPS}. Got {drop!r} instead.")


def column_levels(encoding, column):
    """The categories with a slot of a one-hot ``column``, in slot order: ``"slots"`` when recorded, else
    (older encodings) its sorted levels, then ``<missing>``, ``<other>``."""
    if "slots" in encoding:
        return list(encoding["slots"][column])
    return [*encoding["levels"][column], MISSING, OTHER]


def choose_slots(categories, filled, drop):
    """``(slots, reference)`` of one column: the ``filled`` categories in ``categories``' order, less the
    reference category ``drop`` removes (None when it keeps them all)."""
    slots = [c for c in categories if c in filled]
    if slots and (drop == "first" or (drop == "if-binary" and len(slots) == 2)):
        return slots[1:], slots[0]
    return slots, None


def full_rank_columns(encoding):
    """One-hot columns whose slots add up to one in every training row (no reference category dropped):
    with an intercept, or with each other, such columns make a rank-deficient design."""
    if encoding is None or encoding["hash_bits"] is not None:
        return []
    if "slots" not in encoding:
        return list(encoding["categorical"])
    return [c for c in encoding["categorical"] if encoding["reference"][c] is None and encoding["slots"][c]]


def feature_names(encoding):
    """Feature names of an encoding: numeric columns, then ``c=level`` slots (or ``hash_i`` slots)."""
    names = list(encoding["numeric"])
    if encoding["hash_bits"] is not None:
        return names + [f"hash_{i}" for i in range(2 ** encoding["hash_bits"])]
    for column in encoding["categorical"]:
        names += [f"{column}={level}" for level in column_levels(encoding, column)]
    return names


def n_features(encoding):
    """Number of features ``d`` of the datasets written with ``encoding``."""
    slots = (2 ** encoding["hash_bits"] if encoding["hash_bits"] is not None
             else sum(len(column_levels(encoding, c)) for c in encoding["categorical"]))
    return len(encoding["numeric"]) + slots


def _expect(cond, where, what, found):
    if not cond:
        text = repr(found)
        raise DataError(f"{where}: expected {what}, found {text if len(text) <= 80 else text[:77] + '...'}")


def _names(value, where, limit):
    _expect(isinstance(value, list) and len(value) <= limit and all(isinstance(v, str) for v in value)
            and len(set(value)) == len(value), where, f"a list of at most {limit} distinct strings", value)


def validate_encoding(encoding, where):
    """Check the type and range of every field of a manifest's ``"encoding"``.

    Raises
    ------
    DataError
        One line naming ``where`` and the field, what was expected and what was found.
    """
    _expect(isinstance(encoding, dict) and sorted(set(encoding) - set(_SLOT_KEYS)) == list(_KEYS)
            and len(set(encoding) & set(_SLOT_KEYS)) in (0, len(_SLOT_KEYS)), where,
            f"an object with the keys {list(_KEYS)} (and {list(_SLOT_KEYS)} for one-hot columns)",
            encoding if not isinstance(encoding, dict) else sorted(encoding))
    _names(encoding["numeric"], f"{where}.numeric", MAX_COLUMNS)
    _names(encoding["categorical"], f"{where}.categorical", MAX_COLUMNS)
    _expect(not set(encoding["numeric"]) & set(encoding["categorical"]), f"{where}.categorical",
            "no column also numeric", sorted(set(encoding["numeric"]) & set(encoding["categorical"])))
    bits, levels = encoding["hash_bits"], encoding["levels"]
    _expect(bits is None or (type(bits) is int and MIN_HASH_BITS <= bits <= MAX_HASH_BITS),
            f"{where}.hash_bits", f"null or an int in [{MIN_HASH_BITS}, {MAX_HASH_BITS}]", bits)
    _expect(type(encoding["min_count"]) is int and encoding["min_count"] >= 1, f"{where}.min_count",
            "an int >= 1", encoding["min_count"])
    if bits is not None:
        _expect(levels is None, f"{where}.levels", "null with hash_bits", type(levels).__name__)
    else:
        _expect(isinstance(levels, dict) and sorted(levels) == sorted(encoding["categorical"]),
                f"{where}.levels", "an object with one list per categorical column",
                sorted(levels) if isinstance(levels, dict) else levels)
        total = 0
        for column in encoding["categorical"]:
            at = f"{where}.levels[{column!r}]"
            _names(levels[column], at, MAX_LEVELS)
            _expect(levels[column] == sorted(levels[column]) and not {MISSING, OTHER} & set(levels[column]),
                    at, f"sorted levels without {MISSING!r} and {OTHER!r}", levels[column])
            total += len(levels[column]) + 2
        if "slots" in encoding:
            _validate_slots(encoding, where)
        _expect(total <= MAX_LEVELS, f"{where}.levels", f"at most {MAX_LEVELS} levels in total (MAX_LEVELS)",
                total)
    _expect(encoding["impute"] is None or encoding["impute"] in IMPUTE, f"{where}.impute",
            f"null or one of {IMPUTE}", encoding["impute"])
    means = encoding["means"]
    if encoding["impute"] == "mean":
        _expect(isinstance(means, list) and len(means) == len(encoding["numeric"])
                and all(type(m) in (int, float) and np.isfinite(m) for m in means), f"{where}.means",
                f"a list of {len(encoding['numeric'])} finite numbers", means)
    else:
        _expect(means is None, f"{where}.means", "null unless impute is 'mean'", means)


def _validate_slots(encoding, where):
    _expect(encoding["drop"] in DROPS, f"{where}.drop", f"one of {DROPS}", encoding["drop"])
    for key in ("slots", "reference"):
        value = encoding[key]
        _expect(isinstance(value, dict) and sorted(value) == sorted(encoding["categorical"]),
                f"{where}.{key}", "an object with one entry per categorical column",
                sorted(value) if isinstance(value, dict) else value)
    for column in encoding["categorical"]:
        categories = [*encoding["levels"][column], MISSING, OTHER]
        slots, reference = encoding["slots"][column], encoding["reference"][column]
        at = f"{where}.slots[{column!r}]"
        _names(slots, at, MAX_LEVELS)
        _expect(all(s in categories for s in slots) and slots == [c for c in categories if c in slots], at,
                "categories of the column in the order levels, <missing>, <other>", slots)
        _expect(reference is None or (reference in categories and reference not in slots),
                f"{where}.reference[{column!r}]", "null or a category of the column without a slot",
                reference)


def encoding_digest(encoding):
    """A short (16 hex digits) sha256 of the canonical JSON of ``encoding``, or None for no encoding."""
    if encoding is None:
        return None
    text = json.dumps(encoding, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_encoding(encoding):
    """A few words for messages: ``"hashed to 2^10"``, ``"one-hot (12 levels)"`` or ``"no encoding"``."""
    if encoding is None:
        return "no categorical encoding"
    if encoding["hash_bits"] is not None:
        return f"categorical {encoding['categorical']} hashed to 2^{encoding['hash_bits']}"
    return f"categorical {encoding['categorical']} one-hot" + (
        f" (drop {encoding['drop']})" if "drop" in encoding else "")


#: Levels listed by :func:`encoding_difference` before saying how many more there are.
LISTED_LEVELS = 3


def listed(values, limit=LISTED_LEVELS):
    """``[a, b, c, … and 5 more]``: the first ``limit`` of ``values`` (repr'd), then how many are left out."""
    values = list(values)
    shown = ", ".join(repr(value) for value in values[:limit])
    if len(values) > limit:
        shown += f", … and {len(values) - limit} more"
    return f"[{shown}]"


def encoding_difference(expected, found):
    """Name the first difference between two encodings (either may be None), or return None if equal."""
    if encoding_digest(expected) == encoding_digest(found):
        return None
    if expected is None or found is None:
        return f"expected {describe_encoding(expected)}, found {describe_encoding(found)}"
    for key in ("numeric", "categorical", "hash_bits", "min_count", "impute", "means"):
        if expected[key] != found[key]:
            return f"encoding field {key!r}: expected {expected[key]!r}, found {found[key]!r}"
    for column in expected["categorical"]:
        a, b = expected["levels"][column], found["levels"][column]
        if a != b:
            extra, lacking = sorted(set(b) - set(a)), sorted(set(a) - set(b))
            return (f"levels of column {column!r}: expected {len(a)} levels, found {len(b)} "
                    f"(extra {listed(extra)}, lacking {listed(lacking)})")
    for key in _SLOT_KEYS:
        if expected.get(key) != found.get(key):
            return f"encoding field {key!r}: expected {expected.get(key)!r}, found {found.get(key)!r}"
    return "encodings differ"
