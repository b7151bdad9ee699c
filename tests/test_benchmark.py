"""The benchmark's --quick mode: the table and the JSON have their structure, and every system that ran
reached the target objective. No timing is asserted."""

import contextlib
import io
import json

import pytest

from benchmarks import run

TABLE_HEADER = "| system | load s | fit s | to target s | iters | passes | s/pass |"


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "bench.json"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = run.main(["--quick", "--json", str(out), "--cache-dir", str(tmp / "cache")])
    return status, stdout.getvalue(), json.loads(out.read_text())


def test_quick_benchmark_exits_zero_and_prints_one_table_per_problem(quick_report):
    status, table, report = quick_report
    assert status == 0
    assert table.count(TABLE_HEADER) == len(report["problems"]) == 3
    for name in ("higgs", "wide", "linear"):
        assert f"**{name}**" in table
    assert "Machine: " in table and "Command: `python3 -m benchmarks.run" in table


def test_every_system_that_ran_reached_the_target(quick_report):
    _, _, report = quick_report
    for problem in report["problems"]:
        assert problem["target"] > problem["optimum"]
        ran = [row for row in problem["systems"] if not row.get("skipped")]
        systems = {row["system"] for row in ran}
        assert {"mrtrain local newton", "mrtrain local newton, map-only", "mrtrain inline lbfgs",
                "mrtrain inline newton"} <= systems
        for row in ran:
            assert row["reached"], row["system"]
            assert row["objective"] <= problem["target"]
            assert row["fit_s"] >= 0
        by_name = {row["system"]: row for row in ran}
        assert by_name["mrtrain local newton, map-only"]["theta"] == by_name["mrtrain local newton"]["theta"]
        assert by_name["mrtrain local newton, allreduce"]["theta"] == by_name["mrtrain local newton"]["theta"]
        for row in ran:
            if row["system"].startswith("mrtrain"):
                assert row["passes"] >= row["iterations"] + 1
                assert row["to_target_s"] is not None


def test_spark_row_says_why_it_was_skipped(quick_report):
    _, _, report = quick_report
    for problem in report["problems"]:
        (spark,) = [row for row in problem["systems"] if row["system"].startswith("Spark")]
        assert "--quick" in spark["skipped"]


def test_mapper_overhead_and_summary_sections(quick_report):
    _, table, report = quick_report
    assert {"nproc", "cpu", "ram_gib", "blas"} <= set(report["machine"])
    assert len(report["mapper"]) == 4
    assert {row["source"] for row in report["mapper"]} == {"Parquet", "partition cache"}
    for row in report["mapper"]:
        assert row["rows"] > 0 and row["mapper_rows_per_s"] > 0 and row["raw_numpy_rows_per_s"] > 0
        assert row["peak_rss_bytes"] >= row["baseline_rss_bytes"] > 0
    assert {"local_pass_s", "inline_pass_s"} <= set(report["overhead"])
    assert all(report["summary"][f"{name}: local == inline bitwise"] for name in ("higgs", "wide", "linear"))
    assert "Map task" in table and "Runner overhead per pass" in table
