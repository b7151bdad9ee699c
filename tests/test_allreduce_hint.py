"""The line that points a long job-per-pass run at --allreduce: its arithmetic, and when the CLI prints it."""

import re
import time

import numpy as np
import pytest

from mrtrain.allreduce_hint import MIN_JOBS, allreduce_hint, job_overheads
from mrtrain.cli import main
from mrtrain.launcher import JobTime
from mrtrain.storage.dataset import write_dataset


def test_a_jobs_overhead_is_its_wall_time_less_its_map_work_over_the_tasks_running_at_once():
    jobs = [JobTime(3.0, 4.0, 4), JobTime(1.0, 5.0, 1)]
    # 4 tasks on 2 slots: 4 s of work take 2 s; on YARN (None) all 4 at once: 1 s. Never below 0.
    assert job_overheads(jobs, 2) == [1.0, 0.0]
    assert job_overheads(jobs, None) == [2.0, 0.0]


def test_the_hint_needs_more_than_a_few_jobs_and_counts_one_job_for_allreduce():
    jobs = [JobTime(2.0, 1.0, 1)] * MIN_JOBS
    assert allreduce_hint(jobs, 2) is None
    line = allreduce_hint(jobs + [JobTime(4.0, 1.0, 1)], 2)
    # Overheads 1 s x 5 and 3 s: 8 s in all, median 1 s; AllReduce still pays one job: 7 s saved.
    assert "6 jobs" in line and "about 8.0 s (1.00 s each)" in line and "saved about 7.0 s" in line
    assert "--allreduce" in line


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3))
    y = (X @ [1.0, -2.0, 0.5] + rng.normal(size=400) > 0).astype(float)
    return write_dataset(str(tmp_path_factory.mktemp("hint") / "data"), X, y, partitions=2).uri


def train(capsys, *argv):
    started = time.perf_counter()
    status = main(["train", *argv])
    seconds = time.perf_counter() - started
    _, err = capsys.readouterr()
    assert status == 0, err
    return [line for line in err.splitlines() if line.startswith("mrtrain: note:")], seconds


def test_the_cli_prints_one_line_after_a_long_local_run_and_not_when_quiet(data, capsys):
    options = [data, "--model", "logistic", "--optimizer", "gd", "--max-iter", "6", "--runner", "local",
               "--no-metrics"]
    hints, seconds = train(capsys, *options)
    assert len(hints) == 1, hints
    jobs, spent, each, saved = re.fullmatch(
        r"mrtrain: note: (\d+) jobs, one per pass, spent about ([0-9.]+) s \(([0-9.]+) s each\) beyond their "
        r"map work; --allreduce runs one job for all passes \(the same model, bitwise\) and would have saved "
        r"about ([0-9.]+) s", hints[0]).groups()
    # saved = spent - one job's overhead; each figure is rounded to 0.1 s (0.01 s for "each").
    assert int(jobs) > MIN_JOBS and 0 < float(spent) < seconds
    assert float(saved) == pytest.approx(float(spent) - float(each), abs=0.1 + 0.005)
    assert main(["-q", "train", *options]) == 0
    assert capsys.readouterr().err == ""


def test_no_hint_on_the_inline_runner_or_for_a_short_run(data, capsys):
    assert train(capsys, data, "--model", "logistic", "--optimizer", "gd", "--max-iter", "6",
                 "--runner", "inline", "--no-metrics")[0] == []
    assert train(capsys, data, "--model", "logistic", "--optimizer", "newton", "--max-iter", "2",
                 "--runner", "local", "--no-metrics")[0] == []


def test_a_tree_ensembles_long_local_run_prints_the_hint_too(data, capsys):
    # bins, base score, 2 trees x 2 levels: 6 jobs, one per pass
    hints, seconds = train(capsys, data, "--model", "gbt", "--n-trees", "2", "--max-depth", "2", "--max-bins",
                           "16", "--runner", "local", "--no-metrics")
    assert len(hints) == 1, hints
    jobs, spent = re.match(r"mrtrain: note: (\d+) jobs, one per pass, spent about ([0-9.]+) s",
                           hints[0]).groups()
    assert int(jobs) == 6 and 0 < float(spent) < seconds


def test_no_hint_for_a_model_that_cannot_take_allreduce(data, capsys):
    """k-means refuses --allreduce, so a long k-means run must not advise it (it did: 'would have saved')."""
    hints, _ = train(capsys, data, "--model", "kmeans", "--k", "2", "--max-iter", "8", "--tol", "0",
                     "--runner", "local", "--no-metrics")
    assert hints == []
