"""The sparse benchmark's --quick mode and its data generators.

No timing is asserted. The quick run checks what a bug would break: the table's shape, the bytes per pass
against the closed form of the records the map tasks emit, the scores (nothing beats scikit-learn's
optimum of the same objective, and the held-out rows are predictable), and that every peak memory was
measured.
"""

import base64
import contextlib
import io
import json

import numpy as np
import pytest

from benchmarks import sparse
from mrtrain.engine.models import PartialSums

HEADER = "| system | load s | fit s | s to target | iters | passes | s/pass | MiB per pass (max) |"


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sparse-bench")
    out = tmp / "sparse.json"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = sparse.main(["--quick", "--json", str(out), "--cache-dir", str(tmp / "cache")])
    return status, stdout.getvalue(), json.loads(out.read_text())


def _rows(report):
    return {section["problem"]["name"]: {row["system"]: row for row in section["systems"]}
            for section in report["problems"]}


def test_quick_run_prints_one_table_per_problem_with_the_load_average(quick_report):
    status, table, report = quick_report
    assert status == 0
    assert table.count(HEADER) == len(report["problems"]) == 2
    assert "**criteo**" in table and "**bow**" in table
    assert "load average" in table and len(report["load_average_start"]) == 3
    for section in report["problems"]:
        for row in section["systems"]:
            assert row.get("skipped") or row["fit_s"] >= 0, row["system"]
    assert all("skipped" in rows["Spark MLlib local[2] l-bfgs"] for rows in _rows(report).values())


def test_bytes_per_pass_are_the_records_of_two_partitions(quick_report):
    _, _, report = quick_report
    criteo = sparse.QUICK[0]
    row = _rows(report)["criteo"]["mrtrain local lbfgs"]

    def two_records(length):
        # Each of the 2 partitions emits one dense record "0<TAB>PARTITION<TAB>BASE64\n" (every slot occurs
        # in both partitions' vectors).
        return 2 * (len("0\t0\t") + len(base64.b64encode(bytes(8 * length))) + 1)

    def points(m):
        return two_records(PartialSums.zeros(m, criteo.n_features + 1, 0).to_vector().size)

    # The preconditioner's statistics pass (Σs, Σs·x, Σs·x²), the start point, the first direction's four
    # step sizes, then L-BFGS's quasi-Newton step alone (four again only after a rejection).
    # (The statistics vectors are half zeros, the never-hashed slots: they may go sparse, so only their
    # presence is checked.)
    statistics, start, first, *later = row["pass_bytes"]
    assert statistics > 0
    assert (start, first) == (points(1), points(4))
    assert later and set(later) <= {points(1), points(4)}


def test_nothing_beats_the_optimum_and_the_held_out_rows_are_predictable(quick_report):
    _, _, report = quick_report
    for name, rows in _rows(report).items():
        reference = rows["scikit-learn lbfgs (in memory)"]
        mrtrain = rows["mrtrain local lbfgs"]
        # Both are scored by the same function; scikit-learn converged (tol 1e-6), mrtrain stopped early.
        assert mrtrain["objective"] >= reference["objective"] * (1 - 1e-7), name
        assert mrtrain["iterations"] == sparse.QUICK_MAX_ITER
        assert reference["test_auc"] > 0.6, name
        assert 0 < reference["test_log_loss"] < np.log(2), name
        vw = next(row for system, row in rows.items() if system.startswith("Vowpal Wabbit"))
        if vw.get("skipped"):
            assert "pip install vowpalwabbit" in vw["skipped"]
        else:
            assert vw["test_auc"] > 0.6 and vw["driver_peak_rss_bytes"] > 0


def test_every_peak_memory_was_measured(quick_report):
    _, _, report = quick_report
    for rows in _rows(report).values():
        mrtrain = rows["mrtrain local lbfgs"]
        assert mrtrain["driver_peak_rss_bytes"] >= mrtrain["driver_baseline_rss_bytes"] > 0
        assert mrtrain["mapper_peak_rss_bytes"] > 0 and mrtrain["reducer_peak_rss_bytes"] > 0
        assert rows["scikit-learn lbfgs (in memory)"]["driver_peak_rss_bytes"] > 0


def test_zipf_ranks_follow_the_power_law():
    rng = np.random.default_rng(0)
    n, levels, exponent = 200_000, 1000, 1.1
    counts = np.bincount(sparse.zipf_ranks(rng, n, levels, exponent), minlength=levels)
    assert counts.size == levels
    p = np.arange(1, levels + 1) ** -exponent
    p /= p.sum()
    # Each count is binomial(n, p_r): within 5 standard deviations of n p_r.
    assert np.all(np.abs(counts[:20] - n * p[:20]) <= 5 * np.sqrt(n * p[:20] * (1 - p[:20])))


def test_criteo_rows_have_the_stated_columns_and_levels():
    problem = sparse.Problem("criteo", 900, 100, 2**10, (10, 1000), 1e-3, 5)
    numeric, categorical, y = sparse.criteo_rows(problem)
    assert numeric.shape == (1000, 13) and categorical.shape == (1000, 26) and y.shape == (1000,)
    assert np.all(numeric >= 0) and set(np.unique(y)) == {0.0, 1.0}
    levels = np.geomspace(10, 1000, 26).round()
    assert np.all(categorical.min(axis=0) >= 0) and np.all(categorical.max(axis=0) < levels)
    again = sparse.criteo_rows(problem)
    assert all(np.array_equal(a, b) for a, b in zip(again, (numeric, categorical, y), strict=True))


def test_systems_and_criteo_rows_choose_what_runs(tmp_path):
    """``--systems`` runs only the systems named, in the tables' order; ``--criteo-rows`` sizes the criteo
    problem (a quarter of it held out); the other systems' copies of the rows are not written unasked."""
    out = tmp_path / "sparse.json"
    with contextlib.redirect_stdout(io.StringIO()):
        status = sparse.main(["--quick", "--problems", "criteo", "--systems", "allreduce,inline",
                              "--criteo-rows", "1200", "--json", str(out), "--cache-dir", str(tmp_path)])
    assert status == 0
    (section,) = json.loads(out.read_text())["problems"]
    assert section["data"]["rows"] == 1200 and section["test_rows"] == 300
    assert [row["system"] for row in section["systems"]] == ["mrtrain inline lbfgs",
                                                             "mrtrain local lbfgs --allreduce"]
    inline, allreduce = section["systems"]
    assert inline["theta_sha256"] == allreduce["theta_sha256"]  # bitwise the same model
    (root,) = tmp_path.glob("criteo-1200-300-*")
    assert not list(root.glob("*.libsvm")) and not list(root.glob("*.vw"))


def test_systems_must_be_known(capsys):
    with pytest.raises(SystemExit):
        sparse.main(["--quick", "--systems", "local,mahout"])
    assert "--systems takes local, inline, allreduce" in capsys.readouterr().err
