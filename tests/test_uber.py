"""YARN uber mode for small passes (:mod:`mrtrain.uber`): which passes ask for it, and the user's mrjob
config winning. On the cluster: tests/test_hadoop_training.py and the hadoop variants of
tests/test_allreduce.py (the AllReduce job never runs uber)."""

import json

import pytest

from mrtrain.uber import MAX_BYTES, MAX_MAPS, configured, uber_pass


@pytest.mark.parametrize("partitions,size,reducers,expected", [
    (2, 4_500_000, 0, True),          # the benchmark's 20k x 28 in 2 partitions, map-only
    (MAX_MAPS, MAX_BYTES, 1, True),   # the limits are inclusive, and one reducer runs in the AM too
    (MAX_MAPS + 1, 1000, 0, False),   # more maps than Hadoop's ubertask.maxmaps default
    (2, MAX_BYTES + 1, 0, False),     # too much map work to run one task after another
    (2, 1000, 2, False),              # YARN runs at most one reducer uber
])
def test_only_small_passes_ask_for_uber_mode(partitions, size, reducers, expected):
    assert uber_pass(partitions, size, reducers) is expected


def _conf(tmp_path, name, hadoop, include=None):
    conf = {"runners": {"hadoop": hadoop}}
    if include:
        conf["include"] = str(include)
    path = tmp_path / name
    path.write_text(json.dumps(conf))
    return str(path)


def test_the_users_mrjob_config_setting_wins_and_includes_count(tmp_path):
    assert configured(_conf(tmp_path, "plain.conf", {"python_bin": "python3"})) is None
    off = _conf(tmp_path, "off.conf", {"jobconf": {"mapreduce.job.ubertask.enable": False}})
    assert configured(off) is False
    # a file that includes another overrides it; without its own setting it keeps the included one
    assert configured(_conf(tmp_path, "on.conf", {"jobconf": {"mapreduce.job.ubertask.enable": "true"}},
                            include=off)) == "true"
    assert configured(_conf(tmp_path, "inherits.conf", {"python_bin": "python3"}, include=off)) is False


def _launcher_args(tmp_path, conf_path, partitions=3, **run):
    import numpy as np

    from mrtrain.launcher import JobLauncher
    from mrtrain.storage.dataset import Dataset
    from tests.datasets import reference_data, write

    X, y = reference_data("iris")
    path = tmp_path / f"iris-{partitions}"
    dataset = Dataset.open(str(path) if path.exists() else write(path, X, y, partitions=partitions))
    spec = {"kind": "softmax", "n_features": 4, "classes": dataset.classes, "fit_intercept": True}
    with JobLauncher(dataset, spec, runner="hadoop", conf_path=conf_path, reducers=0) as launcher:
        return launcher._args({}, np.zeros((1, 15)), str(tmp_path / "job"), **run)


def test_the_launcher_asks_for_uber_mode_only_for_small_partition_passes_and_never_for_allreduce(tmp_path):
    plain = _conf(tmp_path, "plain.conf", {"python_bin": "python3"})
    assert "mapreduce.job.ubertask.enable=true" in _launcher_args(tmp_path, plain)
    assert not any("ubertask" in arg for arg in _launcher_args(tmp_path, plain, partitions=MAX_MAPS + 1))
    # the AllReduce job (JobLauncher.start) turns it off whatever the config says
    on = _conf(tmp_path, "on.conf", {"jobconf": {"mapreduce.job.ubertask.enable": True}})
    assert "mapreduce.job.ubertask.enable=false" in _launcher_args(tmp_path, on, uber=False)
    # the user's setting wins: mrtrain adds none
    off = _conf(tmp_path, "off.conf", {"jobconf": {"mapreduce.job.ubertask.enable": False}})
    assert not any("ubertask" in arg for arg in _launcher_args(tmp_path, off))
