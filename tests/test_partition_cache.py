"""The node-local cache of decoded partitions: exact round trip, damaged entries, eviction, safety, and
its use by the jobs (bitwise the same sums, the source read once)."""

import logging
import os

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from engine.mapreduce import JobLauncher
from engine.trainer import Trainer
from mr_jobs.gradient import MRGradient
from storage.dataset import Dataset, read_partition
from storage.partition_cache import PartitionCache
from tests.datasets import reference_data, write

KEY_A, KEY_B, KEY_C = "a" * 64, "b" * 64, "c" * 64
SPEC = {"kind": "softmax", "n_features": 4, "classes": [0.0, 1.0, 2.0], "fit_intercept": True}


def arrays(n=100, d=3, dtype=np.float64, weighted=False, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = rng.normal(size=n)
    return X, y, (rng.random(n) if weighted else None)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_round_trip_is_exact_and_read_only(tmp_path, dtype, weighted):
    cache = PartitionCache(str(tmp_path / "c"))
    X, y, w = arrays(dtype=dtype, weighted=weighted)
    assert cache.get(KEY_A) is None
    assert cache.put(KEY_A, X, y, w)
    X2, y2, w2 = cache.get(KEY_A, n_features=3)
    assert X2.dtype == dtype and X2.flags.c_contiguous and not X2.flags.writeable
    assert_array_equal(X2, X)
    assert_array_equal(y2, y)
    if weighted:
        assert_array_equal(w2, w)
    else:
        assert w2 is None


def test_root_is_private_to_its_owner(tmp_path):
    cache = PartitionCache(str(tmp_path / "c"))
    assert cache.usable
    assert os.stat(tmp_path / "c").st_mode & 0o077 == 0


def test_group_writable_root_is_not_used(tmp_path, caplog):
    root = tmp_path / "shared"
    root.mkdir()
    os.chmod(root, 0o777)
    with caplog.at_level(logging.WARNING, logger="storage.partition_cache"):
        cache = PartitionCache(str(root))
    assert not cache.usable
    assert "writable by group or others" in caplog.text
    X, y, w = arrays()
    assert not cache.put(KEY_A, X, y, w)
    assert cache.get(KEY_A) is None


@pytest.mark.parametrize("damage", ["truncate", "wrong_rows", "missing_y"])
def test_damaged_entry_is_a_miss_and_removed(tmp_path, caplog, damage):
    cache = PartitionCache(str(tmp_path / "c"))
    X, y, w = arrays()
    cache.put(KEY_A, X, y, w)
    entry = os.path.join(cache.entries, KEY_A)
    if damage == "truncate":
        with open(os.path.join(entry, "X.npy"), "r+b") as handle:
            handle.truncate(1000)
    elif damage == "wrong_rows":
        np.save(os.path.join(entry, "y.npy"), y[:-1])
    else:
        os.remove(os.path.join(entry, "y.npy"))
    with caplog.at_level(logging.WARNING, logger="storage.partition_cache"):
        assert cache.get(KEY_A) is None
    assert "damaged partition cache entry removed" in caplog.text
    assert not os.path.exists(entry)
    assert cache.put(KEY_A, X, y, w)
    assert_array_equal(cache.get(KEY_A)[0], X)


def test_wrong_feature_count_is_a_miss(tmp_path):
    cache = PartitionCache(str(tmp_path / "c"))
    cache.put(KEY_A, *arrays(d=3))
    assert cache.get(KEY_A, n_features=4) is None


def test_least_recently_used_entry_is_evicted_at_the_size_limit(tmp_path):
    X, y, w = arrays(n=1000, d=3)
    entry_bytes = X.nbytes + y.nbytes + 2 * 128  # two .npy headers
    cache = PartitionCache(str(tmp_path / "c"), max_bytes=2 * entry_bytes + 10)
    assert cache.put(KEY_A, X, y) and cache.put(KEY_B, X, y)
    os.utime(os.path.join(cache.entries, KEY_A), (1, 1))  # A is older...
    os.utime(os.path.join(cache.entries, KEY_B), (2, 2))
    assert cache.get(KEY_A) is not None  # ...until it is used again
    assert cache.put(KEY_C, X, y)
    assert cache.get(KEY_B) is None
    assert cache.get(KEY_A) is not None and cache.get(KEY_C) is not None


def test_entry_larger_than_the_limit_and_empty_partitions_are_not_cached(tmp_path):
    X, y, w = arrays(n=1000)
    cache = PartitionCache(str(tmp_path / "c"), max_bytes=X.nbytes // 2)
    assert not cache.put(KEY_A, X, y)
    assert not cache.put(KEY_B, X[:0], y[:0])
    assert os.listdir(cache.entries) == []


def test_eviction_removes_earlier_boots_and_stale_temporaries(tmp_path):
    cache = PartitionCache(str(tmp_path / "c"))
    old_boot = tmp_path / "c" / "v1-an-earlier-boot" / KEY_A
    old_boot.mkdir(parents=True)
    stale = os.path.join(cache.entries, ".tmp-leftover")
    os.mkdir(stale)
    os.utime(stale, (1, 1))
    fresh = os.path.join(cache.entries, ".tmp-being-written")
    os.mkdir(fresh)
    cache.put(KEY_B, *arrays())
    assert not old_boot.parent.exists()
    assert not os.path.exists(stale)
    assert os.path.exists(fresh)


def test_cache_entries_are_scoped_by_boot_id(tmp_path):
    with open("/proc/sys/kernel/random/boot_id") as handle:
        boot = handle.read().strip()
    assert PartitionCache(str(tmp_path / "c")).entries == str(tmp_path / "c" / f"v1-{boot}")


def _pass(dataset, runner, cache=True):
    thetas = np.random.default_rng(1).normal(size=(2, 15)) * 0.3
    with JobLauncher(dataset, SPEC, runner=runner, partition_cache=cache) as launcher:
        vector = launcher.sum_vector(MRGradient, thetas, {"hessian": 2})
        counters = {}
        for step in launcher.last_counters:
            counters.update(step.get("mrtrain", {}))
    return vector, counters


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_second_pass_reads_the_cache_and_sums_bitwise_the_same(tmp_path, runner, partition_cache_dir):
    X, y = reference_data("iris")
    dataset = Dataset.open(write(tmp_path / "iris", X, y, partitions=3))
    uncached, counters = _pass(dataset, runner, cache=False)
    assert "partitions cached" not in counters and not partition_cache_dir.exists()
    first, counters = _pass(dataset, runner)
    assert counters["partitions cached"] == 3 and "partitions from cache" not in counters
    second, counters = _pass(dataset, runner)
    assert counters["partitions from cache"] == 3 and "partitions cached" not in counters
    assert_array_equal(first, uncached)
    assert_array_equal(second, uncached)


def test_cached_partition_is_not_read_again(tmp_path):
    """A pass after the first does not touch the partition files (the cache holds their verified bytes)."""
    X, y = reference_data("iris")
    dataset = Dataset.open(write(tmp_path / "iris", X, y, partitions=3))
    first, _ = _pass(dataset, "inline")
    for part in dataset.partitions:
        os.remove(part.uri)
    second, counters = _pass(dataset, "inline")
    assert counters["partitions from cache"] == 3
    assert_array_equal(second, first)
    with pytest.raises(Exception, match="part-00000"):
        _pass(dataset, "inline", cache=False)


def test_cache_hit_equals_a_fresh_read(tmp_path):
    X, y = reference_data("iris")
    dataset = Dataset.open(write(tmp_path / "iris", X, y, partitions=2))
    cache = PartitionCache(str(tmp_path / "c"))
    for part in dataset.partitions:
        read = read_partition(part.uri, expected_sha256=part.sha256)
        cache.put(part.sha256, *read)
        for got, expected in zip(cache.get(part.sha256, 4), read, strict=True):
            if expected is None:
                assert got is None
            else:
                assert_array_equal(got, expected)


def test_training_with_and_without_the_cache_is_bitwise_equal(tmp_path):
    X, y = reference_data("iris")
    data = write(tmp_path / "iris", X, y, partitions=3)
    settings = {"optimizer": "lbfgs", "l2": 1e-2, "max_iter": 15, "runner": "inline"}
    cached = Trainer("softmax", **settings).fit(data)
    uncached = Trainer("softmax", partition_cache=False, **settings).fit(data)
    assert_array_equal(cached.theta_, uncached.theta_)
