"""Each MapReduce job on the inline runner: results equal the in-memory computation, ordered sums,
empty input and one-row input."""

import hashlib
import json
import random

import numpy as np
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_allclose

from mrtrain.cli import main
from mrtrain.engine.metrics import finalize_metrics, metric_partials
from mrtrain.engine.models import PartialSums
from mrtrain.engine.registry import make_model
from mrtrain.launcher import JobLauncher
from mrtrain.mr_jobs.evaluate import MREvaluate
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.mr_jobs.partition_job import format_partition_line
from mrtrain.mr_jobs.predict import MRPredict
from mrtrain.storage.dataset import Dataset, encode_partition
from tests.command import probabilities as probability_columns
from tests.datasets import edit_manifest, reference_data, write

SPEC = {"kind": "softmax", "n_features": 4, "classes": [0.0, 1.0, 2.0], "fit_intercept": True}


def iris_dataset(tmp_path, partitions=3):
    X, y = reference_data("iris")
    return Dataset.open(write(tmp_path / "iris", X, y, partitions=partitions)), X, y


def thetas_for(model, m, seed=0):
    return np.random.default_rng(seed).normal(size=(m, model.n_params)) * 0.3


@pytest.mark.parametrize("hessian", [1, 3])
@pytest.mark.parametrize("reducers", [0, 1, 4])
def test_gradient_job_equals_in_memory_sums(tmp_path, reducers, hessian):
    dataset, X, y = iris_dataset(tmp_path)
    model = make_model(**{k: v for k, v in SPEC.items() if k != "kind"}, kind="softmax")
    thetas = thetas_for(model, 3)
    with JobLauncher(dataset, SPEC, runner="inline", reducers=reducers) as launcher:
        vector = launcher.sum_vector(MRGradient, thetas, {"hessian": hessian})
    got = PartialSums.from_vector(vector, 3, model.n_params, hessian)
    want = model.partial_sums(X, model.encode_labels(y), None, thetas, hessian=hessian)
    assert got.hess.shape == (hessian, model.n_params, model.n_params)
    assert got.weight == 150.0
    assert_allclose(got.loss, want.loss, rtol=1e-12)
    assert_allclose(got.grad, want.grad, rtol=1e-12, atol=1e-12)
    assert_allclose(got.hess, want.hess, rtol=1e-12, atol=1e-12)


def test_gradient_total_is_partition_ordered_sum(tmp_path):
    dataset, _, _ = iris_dataset(tmp_path)
    model = make_model("softmax", 4, classes=SPEC["classes"])
    thetas = thetas_for(model, 2, seed=1)
    partials = []
    for part in dataset.partitions:
        Xp, yp, wp = dataset.read_partition(part.index)
        partials.append(model.partial_sums(Xp, model.encode_labels(yp), wp, thetas).to_vector())
    ordered = partials[0].copy()
    for vector in partials[1:]:
        ordered += vector
    for runner, reducers in (("inline", 1), ("inline", 0), ("local", 0), ("local", 2)):
        with JobLauncher(dataset, SPEC, runner=runner, reducers=reducers) as launcher:
            vector = launcher.sum_vector(MRGradient, thetas, {"hessian": 0})
        assert vector.tobytes() == ordered.tobytes(), (runner, reducers)


def test_reducer_sums_in_partition_order_whatever_the_delivery_order():
    rng = np.random.default_rng(2)
    vectors = [rng.normal(size=50) * 10.0 ** rng.integers(-8, 8) for _ in range(6)]
    expected = vectors[0].copy()
    for vector in vectors[1:]:
        expected += vector
    job = MRGradient(args=[])
    for seed in range(5):
        delivered = list(enumerate(vectors))
        random.Random(seed).shuffle(delivered)
        ((shard, (count, total)),) = job.reducer_sum_in_partition_order("0", iter(delivered))
        assert (shard, count) == ("0", 6)
        assert total.tobytes() == expected.tobytes()


def test_reducer_refuses_a_partition_twice():
    job = MRGradient(args=[])
    with pytest.raises(ValueError, match=r"received a partition twice: ids \[0, 1, 1\]"):
        delivered = [(1, np.ones(2)), (0, np.ones(2)), (1, np.ones(2))]
        list(job.reducer_sum_in_partition_order("0", iter(delivered)))


def test_evaluate_job_equals_in_memory_metrics(tmp_path):
    dataset, X, y = iris_dataset(tmp_path)
    model = make_model("softmax", 4, classes=SPEC["classes"])
    theta = thetas_for(model, 1, seed=3)
    with JobLauncher(dataset, SPEC, runner="inline") as launcher:
        vector = launcher.sum_vector(MREvaluate, theta, {})
    want = finalize_metrics(model, metric_partials(model, X, model.encode_labels(y), None, theta[0]))
    got = finalize_metrics(model, vector)
    assert got["confusion_matrix"] == want["confusion_matrix"]
    assert_allclose(got["log_loss"], want["log_loss"], rtol=1e-13)
    assert got["accuracy"] == want["accuracy"]


def test_predict_job_writes_one_file_per_partition(tmp_path):
    dataset, X, y = iris_dataset(tmp_path)
    model = make_model("softmax", 4, classes=SPEC["classes"])
    theta = thetas_for(model, 1, seed=4)
    output = tmp_path / "out"
    output.mkdir()
    with JobLauncher(dataset, SPEC, runner="inline") as launcher:
        records = launcher.run(MRPredict, theta, {"output": str(output), "row_offsets": [0, 50, 100]})
    assert sorted(records) == [(0, 50), (1, 50), (2, 50)]
    tables = [pq.read_table(output / f"part-{i:05d}.parquet") for i in range(3)]
    assert tables[0].column_names == ["row", "label", "prediction", "probability_0", "probability_1",
                                      "probability_2"]
    assert np.concatenate([t["row"].to_numpy() for t in tables]).tolist() == list(range(150))
    probabilities = probability_columns(tables)
    predicted = np.concatenate([t["prediction"].to_numpy() for t in tables])
    want = model.predict(X, theta[0])
    assert_allclose(probabilities, want["probabilities"], rtol=1e-13)
    assert predicted.tobytes() == want["prediction"].tobytes()
    assert np.concatenate([t["label"].to_numpy() for t in tables]).tobytes() == y.tobytes()


def write_partition_list(tmp_path, partitions):
    """A partition list with hand-made partitions ``[(X, y), ...]``; returns its path."""
    lines = []
    for index, (X, y) in enumerate(partitions):
        data = encode_partition(X, y)
        path = tmp_path / f"part-{index:05d}.parquet"
        path.write_bytes(data)
        sha256 = hashlib.sha256(data).hexdigest()
        lines.append(format_partition_line(index, str(path), sha256, len(y), len(data)) + "\n")
    listing = tmp_path / "partitions.txt"
    listing.write_text("".join(lines))
    return listing


def run_inline(job_class, tmp_path, listing, thetas, task):
    task_path, params_path = tmp_path / "task.json", tmp_path / "params.npy"
    task_path.write_text(json.dumps({"model": SPEC, "shards": 1, **task}))
    np.save(params_path, thetas, allow_pickle=False)
    args = ["-r", "inline", "--task", str(task_path), "--params", str(params_path), str(listing)]
    job = job_class(args=args)
    with job.make_runner() as runner:
        runner.run()
        return list(job.parse_output(runner.cat_output()))


JOBS = [(MRGradient, {"hessian": 1}), (MREvaluate, {}), (MRPredict, {})]


@pytest.mark.parametrize(("job_class", "task"), JOBS)
def test_empty_input_gives_no_output(tmp_path, job_class, task):
    listing = tmp_path / "partitions.txt"
    listing.write_text("")
    task = {**task, "output": str(tmp_path)}
    assert run_inline(job_class, tmp_path, listing, np.zeros((1, 15)), task) == []


@pytest.mark.parametrize(("job_class", "task"), JOBS)
def test_empty_partition_contributes_nothing(tmp_path, job_class, task):
    X, y = reference_data("iris")
    listing = write_partition_list(tmp_path, [(X[:0], y[:0]), (X[:5], y[:5])])
    out = tmp_path / "out"
    out.mkdir()
    records = run_inline(job_class, tmp_path, listing, np.full((1, 15), 0.1), {**task, "output": str(out)})
    if job_class is MRPredict:
        assert sorted(records) == [(0, 0), (1, 5)]
        assert pq.read_table(out / "part-00000.parquet").num_rows == 0
        return
    ((_, (count, vector)),) = records
    alone = run_inline(job_class, tmp_path, write_partition_list(tmp_path, [(X[:5], y[:5])]),
                       np.full((1, 15), 0.1), task)
    assert count == 2
    assert vector.tobytes() == alone[0][1][1].tobytes()


@pytest.mark.parametrize(("job_class", "task"), JOBS)
def test_one_row_input(tmp_path, job_class, task):
    X, y = reference_data("iris")
    listing = write_partition_list(tmp_path, [(X[60:61], y[60:61])])
    model = make_model("softmax", 4, classes=SPEC["classes"])
    theta = np.full((1, 15), 0.1)
    out = tmp_path / "out"
    out.mkdir()
    records = run_inline(job_class, tmp_path, listing, theta, {**task, "output": str(out)})
    if job_class is MRPredict:
        assert records == [(0, 1)]
        table = pq.read_table(out / "part-00000.parquet")
        assert table["prediction"].to_numpy()[0] == model.predict(X[60:61], theta[0])["prediction"][0]
        return
    ((_, (count, vector)),) = records
    assert count == 1
    if job_class is MRGradient:
        want = model.partial_sums(X[60:61], model.encode_labels(y[60:61]), None, theta, hessian=1)
        assert vector.tobytes() == want.to_vector().tobytes()
    else:
        assert finalize_metrics(model, vector)["n"] == 1.0


def test_checksum_mismatch_names_the_partition(tmp_path):
    X, y = reference_data("iris")
    listing = write_partition_list(tmp_path, [(X[:5], y[:5])])
    path = tmp_path / "part-00000.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"part-00000.parquet: sha256 mismatch"):
        run_inline(MRGradient, tmp_path, listing, np.zeros((1, 15)), {"hessian": 0})


def test_map_only_job_has_no_reduce_phase():
    with_reducer, = MRGradient(args=[]).steps()
    map_only, = MRGradient(args=["--map-only"]).steps()
    assert with_reducer.description(0)["reducer"] and "reducer" not in map_only.description(0)


@pytest.mark.parametrize("fact", ["rows", "weight"])
def test_map_tasks_check_the_manifest_facts_of_their_partition(tmp_path, capsys, fact):
    """A manifest whose rows or weight column disagree with a partition file fails the job, naming it."""
    X, y = reference_data("iris")
    data = write(tmp_path / "iris", X, y, partitions=3)

    def edit(manifest):
        if fact == "rows":
            manifest["partitions"][1]["rows"] += 1
            manifest["n_rows"] += 1
        else:
            manifest["weight"] = "weight"

    edit_manifest(data, edit)
    assert main(["-q", "train", data, "--model", "softmax", "--max-iter", "2", "--no-metrics"]) == 2
    error = capsys.readouterr().err
    assert "part-0000" in error and ("rows" in error if fact == "rows" else "weight" in error), error


_ARGS_OF_RUNNER = {
    "inline": ["-r", "inline", "--task", "t.json", "--params", "p.npy", "--local-tmp-dir", "/tmp/s",
               "--cleanup-on-failure", "ALL", "--jobconf", "mapreduce.job.reduces=1", "parts.txt"],
    "local": ["-r", "local", "--task", "t.json", "--params", "p.npy", "--no-bootstrap-mrjob",
              "--cmdenv", "SETUPTOOLS_USE_DISTUTILS=stdlib", "--cmdenv", "OMP_NUM_THREADS=1",
              "--jobconf", "mapreduce.job.reduces=0", "parts.txt", "--map-only"],
    "hadoop": ["-r", "hadoop", "--task", "hdfs:///s/t.json#task.json", "--params", "p.npy", "--py-files",
               "code.zip", "--hadoop-tmp-dir", "hdfs:///s/mrjob", "--output-dir", "hdfs:///s/out",
               "--no-check-input-paths", "--cleanup", "LOCAL_TMP", "--jobconf", "mapreduce.job.reduces=2",
               "--jobconf", "mapreduce.job.ubertask.enable=true", "hdfs:///s/parts.txt"],
}


@pytest.mark.parametrize("runner", sorted(_ARGS_OF_RUNNER))
def test_jobs_see_the_options_and_runner_arguments_of_mrjobs_own_parser(runner):
    """A job's parser is built once per class (mrtrain.mr_jobs.job_args) and reused; the options it parses
    and the runner's keyword arguments (what the tasks are passed) are mrjob's own, whatever was parsed
    before."""
    from mrjob.job import MRJob

    from mrtrain.mr_jobs.allreduce_job import MRAllReduce
    from mrtrain.mr_jobs.tree_histograms import MRTreeHistograms

    for job_class in (MRGradient, MRPredict, MRAllReduce, MRTreeHistograms):
        args = _ARGS_OF_RUNNER[runner]
        if job_class is MRPredict:
            args = [arg for arg in args if arg != "--map-only"]
        for other in _ARGS_OF_RUNNER.values():  # another job's arguments parsed first must not leak
            if job_class is not MRPredict or "--map-only" not in other:
                job_class(args=other)
        job, again = job_class(args=args), job_class(args=list(args))
        reference = job_class.__new__(job_class)
        MRJob.__init__(reference, args)  # mrjob 0.7.4's own: a new parser of its own
        assert job.arg_parser is again.arg_parser and job.arg_parser is not reference.arg_parser
        assert vars(job.options) == vars(reference.options)
        assert job._runner_kwargs() == MRJob._runner_kwargs(reference)
        assert job._non_option_kwargs()["extra_args"] == MRJob._non_option_kwargs(reference)["extra_args"]
        with pytest.raises(ValueError, match="unrecognized arguments: --no-such-option"):
            job_class(args=[*args, "--no-such-option"])
