"""The benchmark's Markdown tables (for docs/benchmarks.md), the machine description, and the JSON file."""

import json
import os
import platform
import subprocess
import sys


def describe_machine():
    """nproc, CPU model, RAM, and the versions and BLAS kernel that produced the numbers."""
    import mrjob
    import numpy
    import pyarrow
    import sklearn
    from threadpoolctl import threadpool_info

    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    mem_kb = next((int(line.split()[1]) for line in _lines("/proc/meminfo")
                   if line.startswith("MemTotal")), 0)
    blas = [f"{pool.get('internal_api')} {pool.get('version')} {pool.get('architecture')} "
            f"x{pool.get('num_threads')}" for pool in threadpool_info()]
    try:
        import pyspark

        spark_version = pyspark.__version__
    except ImportError:
        spark_version = None
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(), "numpy": numpy.__version__, "blas": blas,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"), "pyarrow": pyarrow.__version__,
        "mrjob": mrjob.__version__, "scikit_learn": sklearn.__version__, "pyspark": spark_version,
        "java": java.splitlines()[0] if java else None, "load_average": os.getloadavg(),
    }


def _lines(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except OSError:
        return []


def _num(value, fmt="{:.2f}"):
    return "–" if value is None else fmt.format(value)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def problem_table(result):
    """One problem: a line naming it and its optimum, then one row per system."""
    problem, optimum = result["problem"], result["optimum"]
    head = (f"**{problem['name']}**: {problem['model']}, {problem['rows']:,} rows × {problem['features']} "
            f"features, l2 = {problem['l2']:g}; optimum f* = {optimum:.12g}, target f* + 1e-6·|f*|")
    rows = []
    for row in result["systems"]:
        if row.get("skipped"):
            rows.append([row["system"], "skipped: " + row["skipped"]] + [""] * 8)
            continue
        gap = (row["objective"] - optimum) / abs(optimum)
        rows.append([
            row["system"], _num(row.get("load_s")), _num(row["fit_s"]), _num(row.get("to_target_s")),
            _num(row.get("iterations"), "{}"), _num(row.get("passes"), "{}"), _num(row.get("per_pass_s")),
            f"{gap:+.1e}", f"{row['accuracy']:.4f}", "yes" if row["reached"] else "**no**",
        ])
    header = ["system", "load s", "fit s", "to target s", "iters", "passes", "s/pass", "(f − f*)/|f*|",
              "accuracy (R² linear)", "reached"]
    return head + "\n\n" + _table(header, rows)


def mapper_table(rows):
    """Map-task throughput and memory against raw numpy."""
    def read_cell(row):
        if "warm_read_bytes_s" not in row:  # a partition-cache hit: memory-mapped .npy files
            return f"{row['read_decode_s']:.3f} (mmap)"
        return (f"{row['read_decode_s']:.3f} ({row['warm_read_bytes_s']:.3f} + {row['warm_sha256_s']:.3f} + "
                f"{row['warm_parquet_decode_s']:.3f})")

    body = [[
        row["case"], row.get("source", "Parquet"), f"{row['rows']:,}",
        f"{row['partition_bytes'] / 2**20:.0f}", row["points"], row["hessian"], f"{row['import_s']:.2f}",
        read_cell(row),
        f"{row['sums_s']:.3f}", f"{row['mapper_rows_per_s'] / 1e6:.2f}",
        f"{row['raw_numpy_rows_per_s'] / 1e6:.2f}",
        f"{row['ratio']:.2f}", f"{row['peak_rss_bytes'] / 2**20:.0f}", f"{row['peak_over_partition']:.1f}",
    ] for row in rows]
    header = ["partition", "read from", "rows", "MiB", "points", "Hessians", "import s",
              "read+verify+decode s (warm: read + sha256 + decode)", "sums s",
              "mapper Mrows/s", "raw numpy Mrows/s", "mapper/raw", "peak RSS MiB", "(peak − idle)/partition"]
    return _table(header, body)


def overhead_table(overhead):
    """Per-pass fixed costs."""
    rows = [[key, f"{value:.3f}"] for key, value in overhead.items()]
    return _table(["3 tiny partitions", "seconds"], rows)


def summary_lines(summary):
    """The targets of the assignment, measured."""
    return "\n".join(f"- {key}: {value}" for key, value in summary.items())


def render(report):
    """The whole report as Markdown."""
    machine = report["machine"]
    parts = [
        f"Machine: {machine['nproc']} cores, {machine['cpu']}, {machine['ram_gib']} GiB RAM; Python "
        f"{machine['python']}, numpy {machine['numpy']} ({'; '.join(machine['blas'])}), pyarrow "
        f"{machine['pyarrow']}, mrjob {machine['mrjob']}, scikit-learn {machine['scikit_learn']}, pyspark "
        f"{machine['pyspark']}, {machine['java']}; load average at the start {machine['load_average']}.",
        f"Command: `{report['command']}`",
    ]
    parts += [problem_table(result) for result in report["problems"]]
    parts += ["Map task (fresh process per partition; raw numpy = the same sums on rows already in memory):",
              mapper_table(report["mapper"]), "Runner overhead per pass:", overhead_table(report["overhead"]),
              "Summary:", summary_lines(report["summary"])]
    return "\n\n".join(parts) + "\n"


def write_json(report, path):
    """Write the report as JSON (parameters included) to ``path``."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1, default=float)
        handle.write("\n")


def command_line():
    """How this run was started, for the report."""
    return " ".join(["python3", "-m", "benchmarks.run", *sys.argv[1:]])
