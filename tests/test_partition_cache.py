"""The node-local cache of decoded partitions: exact round trip, damaged entries, eviction, safety, and
its use by the jobs (bitwise the same sums, the source read once)."""

import logging
import os

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from mrtrain.cli import main
from mrtrain.launcher import JobLauncher
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.storage.dataset import Dataset, read_partition
from mrtrain.storage.filesystem import FileStat, get_filesystem
from mrtrain.storage.partition_cache import PartitionCache
from mrtrain.trainer import Trainer
from tests.datasets import reference_data, write

KEY_A, KEY_B, KEY_C = "a" * 64, "b" * 64, "c" * 64
#: The partition file an entry in the unit tests was decoded from: its URI and stat.
SOURCE = ("/data/part-00000.parquet", FileStat(size=1234, mtime_ns=10**18, change_ns=10**18))
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
    assert cache.get(KEY_A, *SOURCE) is None
    assert cache.put(KEY_A, *SOURCE, X, y, w)
    X2, y2, w2 = cache.get(KEY_A, *SOURCE, n_features=3)
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
    with caplog.at_level(logging.WARNING, logger="mrtrain.storage.partition_cache"):
        cache = PartitionCache(str(root))
    assert not cache.usable
    assert "writable by group or others" in caplog.text
    X, y, w = arrays()
    assert not cache.put(KEY_A, *SOURCE, X, y, w)
    assert cache.get(KEY_A, *SOURCE) is None


def entry_path(cache, key):
    (name,) = [name for name in os.listdir(cache.entries) if name.startswith(key)]
    return os.path.join(cache.entries, name)


@pytest.mark.parametrize("damage", ["truncate", "header", "shape", "empty"])
def test_damaged_entry_is_a_miss_and_removed(tmp_path, caplog, damage):
    cache = PartitionCache(str(tmp_path / "c"))
    X, y, w = arrays(weighted=True)
    cache.put(KEY_A, *SOURCE, X, y, w)
    path = entry_path(cache, KEY_A)
    with open(path, "r+b") as handle:
        if damage == "truncate":
            handle.truncate(os.path.getsize(path) - 100)
        elif damage == "header":
            handle.write(b"{not json")
        elif damage == "shape":
            header = handle.read(4096).replace(b'"rows": 100', b'"rows": 101')
            handle.seek(0)
            handle.write(header)
        else:
            handle.truncate(0)
    with caplog.at_level(logging.WARNING, logger="mrtrain.storage.partition_cache"):
        assert cache.get(KEY_A, *SOURCE) is None
    assert "damaged partition cache entry removed" in caplog.text
    assert not os.path.exists(path)
    assert cache.put(KEY_A, *SOURCE, X, y, w)
    assert_array_equal(cache.get(KEY_A, *SOURCE)[2], w)


def test_an_open_entry_survives_its_eviction(tmp_path):
    cache = PartitionCache(str(tmp_path / "c"))
    X, y, w = arrays(weighted=True)
    cache.put(KEY_A, *SOURCE, X, y, w)
    X2, y2, w2 = cache.get(KEY_A, *SOURCE)
    os.remove(entry_path(cache, KEY_A))
    assert_array_equal(X2, X)
    assert_array_equal(y2, y)
    assert_array_equal(w2, w)


def test_wrong_feature_count_is_a_miss(tmp_path):
    cache = PartitionCache(str(tmp_path / "c"))
    cache.put(KEY_A, *SOURCE, *arrays(d=3))
    assert cache.get(KEY_A, *SOURCE, n_features=4) is None


def _entry_bytes(X, y):
    return 4096 + -(-X.nbytes // 64) * 64 + -(-y.nbytes // 64) * 64


def test_least_recently_used_entry_is_evicted_at_the_size_limit(tmp_path):
    X, y, w = arrays(n=1000, d=3)
    cache = PartitionCache(str(tmp_path / "c"), max_bytes=2 * _entry_bytes(X, y) + 10)
    assert cache.put(KEY_A, *SOURCE, X, y) and cache.put(KEY_B, *SOURCE, X, y)
    os.utime(entry_path(cache, KEY_A), (1, 1))  # A is older...
    os.utime(entry_path(cache, KEY_B), (2, 2))
    assert cache.get(KEY_A, *SOURCE) is not None  # ...until it is used again
    assert cache.put(KEY_C, *SOURCE, X, y)
    assert cache.get(KEY_B, *SOURCE) is None
    assert cache.get(KEY_A, *SOURCE) is not None and cache.get(KEY_C, *SOURCE) is not None


def test_recently_used_entries_are_not_evicted_for_a_new_one(tmp_path):
    """A training whose partitions do not all fit keeps the ones cached first (no eviction thrash)."""
    X, y, w = arrays(n=1000, d=3)
    cache = PartitionCache(str(tmp_path / "c"), max_bytes=2 * _entry_bytes(X, y) + 10)
    assert cache.put(KEY_A, *SOURCE, X, y) and cache.put(KEY_B, *SOURCE, X, y)
    assert not cache.put(KEY_C, *SOURCE, X, y)
    assert cache.get(KEY_A, *SOURCE) is not None and cache.get(KEY_B, *SOURCE) is not None
    assert cache.get(KEY_C, *SOURCE) is None


def test_entry_larger_than_the_limit_and_empty_partitions_are_not_cached(tmp_path):
    X, y, w = arrays(n=1000)
    cache = PartitionCache(str(tmp_path / "c"), max_bytes=X.nbytes // 2)
    assert not cache.put(KEY_A, *SOURCE, X, y)
    assert not cache.put(KEY_B, *SOURCE, X[:0], y[:0])
    assert os.listdir(cache.entries) == []


def test_eviction_removes_earlier_boots_and_stale_temporaries_and_nothing_else(tmp_path):
    root = tmp_path / "c"
    root.mkdir(mode=0o700)
    theirs = [root / "v1-not-ours", root / "videos", root / "mrtrain-cache-notes"]
    for path in theirs:
        path.mkdir()
        (path / "keep").write_text("x")
    old_boot = root / "mrtrain-cache-v1-0123abcd-0000-0000-0000-000000000000"
    old_boot.mkdir()
    (old_boot / (KEY_A + ".part")).write_bytes(b"old")
    old_version = root / f"mrtrain-cache-v1-{open('/proc/sys/kernel/random/boot_id').read().strip()}"
    old_version.mkdir()
    cache = PartitionCache(str(root))
    stale = os.path.join(cache.entries, ".tmp-leftover")
    open(stale, "wb").close()
    os.utime(stale, (1, 1))
    fresh = os.path.join(cache.entries, ".tmp-being-written")
    open(fresh, "wb").close()
    cache.put(KEY_B, *SOURCE, *arrays())
    assert not old_boot.exists() and not old_version.exists()
    assert not os.path.exists(stale) and os.path.exists(fresh)
    assert all((path / "keep").exists() for path in theirs)


def test_cache_entries_are_scoped_by_boot_id(tmp_path):
    with open("/proc/sys/kernel/random/boot_id") as handle:
        boot = handle.read().strip()
    assert PartitionCache(str(tmp_path / "c")).entries == str(tmp_path / "c" / f"mrtrain-cache-v2-{boot}")


def test_symlinked_root_and_bad_size_setting_disable_the_cache(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert not PartitionCache(str(tmp_path / "link")).usable
    monkeypatch.setenv("MRTRAIN_PARTITION_CACHE_MAX_BYTES", "lots")
    cache = PartitionCache(str(tmp_path / "c"))
    assert not cache.usable and cache.get(KEY_A, *SOURCE) is None and not cache.put(KEY_A, *SOURCE, *arrays())


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


def _replace_with(uri, data):
    get_filesystem(uri).write_bytes(uri, data)


def _train(data, runner, *extra):
    return main(["train", data, "--model", "softmax", "--max-iter", "1", "--no-metrics", "--runner", runner,
                 *extra])


@pytest.mark.parametrize("runner", ["inline", "local"])
@pytest.mark.parametrize("change", ["emptied", "replaced", "deleted", "rewritten in place"])
def test_a_partition_changed_after_caching_is_refused_as_without_the_cache(tmp_path, capsys, runner, change):
    """A cache hit proves the file is still the one cached: a changed file is read afresh and refused."""
    X, y = reference_data("iris")
    data = write(tmp_path / "iris", X, y, partitions=3)
    other = Dataset.open(write(tmp_path / "other", X[::-1], y[::-1], partitions=3))
    assert _train(data, runner) == 0
    victim = Dataset.open(data).partitions[1].uri
    if change == "emptied":
        _replace_with(victim, b"")
    elif change == "replaced":
        _replace_with(victim, get_filesystem(victim).read_bytes(other.partitions[1].uri))
    elif change == "deleted":
        os.remove(victim)
    else:
        before = os.stat(victim)
        with open(victim, "r+b") as handle:
            handle.seek(before.st_size // 2)
            handle.write(bytes(8))
        os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))
    capsys.readouterr()
    for cache in ([], ["--no-partition-cache"]):
        assert _train(data, runner, *cache) != 0
        error = capsys.readouterr().err
        assert "part-00001" in error, error
        if change == "deleted":
            assert "missing" in error, error
        else:
            assert "sha256 mismatch" in error or "bytes as _dataset.json says" in error, error


def test_an_unchanged_partition_is_served_without_reading_it(tmp_path, monkeypatch):
    """A hit costs one stat of the file: the partition is not read, hashed or decoded again."""
    X, y = reference_data("iris")
    dataset = Dataset.open(write(tmp_path / "iris", X, y, partitions=3))
    first, _ = _pass(dataset, "inline")
    import mrtrain.storage.dataset

    def no_read(*args, **kwargs):
        raise AssertionError("a cached partition was read again")

    monkeypatch.setattr(mrtrain.storage.dataset, "read_partition", no_read)
    second, counters = _pass(dataset, "inline")
    assert counters["partitions from cache"] == 3
    assert_array_equal(second, first)


def test_cache_hit_equals_a_fresh_read(tmp_path):
    X, y = reference_data("iris")
    dataset = Dataset.open(write(tmp_path / "iris", X, y, partitions=2))
    cache = PartitionCache(str(tmp_path / "c"))
    for part in dataset.partitions:
        read = read_partition(part.uri, expected_sha256=part.sha256)
        source = (part.uri, get_filesystem(part.uri).stat(part.uri))
        cache.put(part.sha256, *source, *read)
        for got, expected in zip(cache.get(part.sha256, *source, 4), read, strict=True):
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


def test_an_entry_is_used_only_for_the_file_and_stat_it_was_cached_from(tmp_path):
    cache = PartitionCache(str(tmp_path / "c"))
    X, y, _ = arrays()
    uri, file_stat = SOURCE
    assert cache.put(KEY_A, uri, file_stat, X, y)
    assert cache.get(KEY_A, "/data/copy-of-part-00000.parquet", file_stat) is None
    assert cache.get(KEY_A, uri, file_stat._replace(change_ns=file_stat.change_ns + 1)) is None
    assert os.listdir(cache.entries) == []  # the entry of the changed file is gone
    assert cache.put(KEY_A, uri, file_stat, X, y)
    assert_array_equal(cache.get(KEY_A, uri, file_stat)[0], X)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_partitions_round_trip_as_csr_without_densifying(tmp_path, dtype):
    from scipy.sparse import csr_array, random_array

    cache = PartitionCache(str(tmp_path / "c"))
    X = csr_array(random_array((200, 2**22), density=2e-6, format="csr", dtype=dtype, rng=0))
    X.sort_indices()
    y = np.arange(200.0)
    assert cache.put(KEY_A, *SOURCE, X, y)
    entry = entry_path(cache, KEY_A)
    assert os.path.getsize(entry) < 64 * 1024  # three short arrays, not 200 x 2**22 values
    X2, y2, w2 = cache.get(KEY_A, *SOURCE, n_features=2**22)
    assert isinstance(X2, csr_array) and X2.shape == X.shape and X2.dtype == dtype and w2 is None
    for name in ("data", "indices", "indptr"):
        assert_array_equal(getattr(X2, name), getattr(X, name))
    assert_array_equal(y2, y)
