"""Progress of train, ingest, evaluate and predict: a bar on a terminal (a real pseudo-terminal here), plain
lines otherwise, none with ``--quiet``; the result on stdout is the same in every case."""

import fcntl
import io
import json
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from tqdm import tqdm

from mrtrain.cli import main
from mrtrain.progress import MRJOB_STEP_LOGGER, StageProgress, hadoop_job_progress
from tests.datasets import reference_data, write

TRAIN = ["train", "--model", "softmax", "--optimizer", "newton", "--l2", "0.01", "--runner", "inline",
         "--json", "--no-metrics"]


def run_in_pty(args):
    """Run ``python -m mrtrain ARGS`` with stderr on a pseudo-terminal; return (stdout, terminal text)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns
    process = subprocess.Popen([sys.executable, "-m", "mrtrain", *args], stdout=subprocess.PIPE,
                               stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    screen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    stdout = process.stdout.read().decode()
    assert process.wait(timeout=60) == 0, screen
    os.close(leader)
    return stdout, screen.decode(errors="replace")


def dataset(tmp_path):
    X, y = reference_data("iris")
    return write(tmp_path / "iris", X, y)


def test_a_terminal_gets_a_progress_bar(tmp_path):
    data = dataset(tmp_path)
    stdout, screen = run_in_pty([TRAIN[0], data, *TRAIN[1:]])
    assert re.search(r"train:\s+\d+%\|", screen), screen
    assert "objective" in screen and "|grad|" in screen and "s/pass" in screen
    assert not re.search(r"^iter\s+\d", screen, re.MULTILINE)
    assert json.loads(stdout)["converged"]


def test_a_pipe_gets_one_plain_line_per_pass_and_quiet_gets_none(tmp_path):
    data = dataset(tmp_path)
    plain = subprocess.run([sys.executable, "-m", "mrtrain", TRAIN[0], data, *TRAIN[1:]],
                           capture_output=True, text=True, check=True)
    result = json.loads(plain.stdout)
    lines = [line for line in plain.stderr.splitlines() if line.startswith("iter ")]
    assert len(lines) == result["passes"]
    assert "%|" not in plain.stderr
    quiet = subprocess.run([sys.executable, "-m", "mrtrain", "-q", TRAIN[0], data, *TRAIN[1:]],
                           capture_output=True, text=True, check=True)
    assert quiet.stderr == ""
    assert json.loads(quiet.stdout)["coefficients"] == result["coefficients"]


def test_a_kmeans_line_names_what_it_shows(tmp_path, capsys):
    """k-means has no gradient and no step: its line says inertia and the largest squared centre move, whose
    value is the checkpointed shift of that pass."""
    data = dataset(tmp_path)
    assert main(["train", data, "--model", "kmeans", "--k", "2", "--max-iter", "2", "--runner", "inline",
                 "--no-metrics", "--json"]) == 0
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("iter ")]
    assert len(lines) == 2 and all("|grad|" not in line and "step" not in line for line in lines)
    objective = float(re.search(r"inertia (\S+)  max centre shift² \S+ ", lines[-1]).group(1))
    assert objective == pytest.approx(json.loads(out)["objective"], rel=1e-11)


def mrtrain(*args):
    """``python -m mrtrain ARGS`` with stderr on a pipe: (stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "mrtrain", *args], capture_output=True, text=True,
                          check=True)
    return done.stdout, done.stderr


def test_ingest_shows_bytes_read_rows_parsed_and_rows_written(tmp_path):
    source = str(Path(__file__).parent.parent / "data" / "iris.libsvm")
    stdout, stderr = mrtrain("ingest", source, str(tmp_path / "plain"), "--partitions", "3", "--json")
    lines = stderr.splitlines()
    size = tqdm.format_sizeof(Path(source).stat().st_size, "B", 1024)
    assert re.fullmatch(rf"ingest read: {size} of {size} \(100%\)\s+\d+\.\d\ds", lines[0]), lines
    assert json.loads(stdout)["rows"] == 150  # the summary still goes to stdout
    assert re.fullmatch(r"ingest parse: 150 of 150 rows \(100%\)\s+\d+\.\d\ds", lines[1]), lines
    written = [re.match(r"ingest write: (\d+) of 150 rows", line)[1] for line in lines[2:]]
    assert written == ["50", "100", "150"]  # after each partition
    quiet = subprocess.run([sys.executable, "-m", "mrtrain", "-q", "ingest", source, str(tmp_path / "quiet"),
                            "--partitions", "3", "--json"], capture_output=True, text=True, check=True)
    assert quiet.stderr == ""
    assert json.loads(quiet.stdout)["checksum"] == json.loads(stdout)["checksum"]

    stdout, screen = run_in_pty(["ingest", source, str(tmp_path / "bar"), "--partitions", "3", "--json"])
    assert re.search(r"ingest write: 100%\|[^|]*\| 150/150", screen), screen
    assert re.search(r"ingest read: 100%\|", screen) and re.search(r"ingest parse: 100%\|", screen)
    assert "of 150 rows" not in screen
    assert json.loads(stdout)["checksum"] == json.loads(quiet.stdout)["checksum"]


def test_evaluate_and_predict_show_their_job(tmp_path):
    data = dataset(tmp_path)
    model_dir = str(tmp_path / "model")
    mrtrain("-q", TRAIN[0], data, *TRAIN[1:], "--checkpoint-dir", model_dir)
    stdout, stderr = mrtrain("evaluate", data, "--model-dir", model_dir, "--runner", "inline", "--json")
    assert [line.split("%")[0] for line in stderr.splitlines()] == ["evaluate job: 100"]
    metrics = json.loads(stdout)["metrics"]
    _, stderr = mrtrain("predict", data, "--model-dir", model_dir, "--runner", "inline",
                        "--output", str(tmp_path / "plain"))
    assert [line.split("%")[0] for line in stderr.splitlines()] == ["predict job: 100"]

    stdout, screen = run_in_pty(["evaluate", data, "--model-dir", model_dir, "--runner", "inline", "--json"])
    assert re.search(r"evaluate job: 100%\|[^|]*\| 100/100", screen), screen
    assert json.loads(stdout)["metrics"] == metrics
    _, screen = run_in_pty(["predict", data, "--model-dir", model_dir, "--runner", "inline", "--output",
                            str(tmp_path / "bar")])
    assert re.search(r"predict job: 100%\|", screen), screen
    quiet = subprocess.run([sys.executable, "-m", "mrtrain", "-q", "evaluate", data, "--model-dir", model_dir,
                            "--runner", "inline"], capture_output=True, text=True, check=True)
    assert quiet.stderr == ""


def test_hadoop_progress_lines_move_the_job_bar():
    stream = io.StringIO()
    logger = logging.getLogger(MRJOB_STEP_LOGGER)
    level, handlers = logger.level, list(logger.handlers)
    progress = StageProgress("evaluate", stream=stream, bar=False)
    with hadoop_job_progress(progress):
        # As mrjob's hadoop runner logs the lines of `hadoop jar` (mrjob.logs.step._log_line_from_driver).
        logger.info("  %s", "map 0% reduce 0%")
        logger.info("  %s", "Submitted application application_1_0001")
        logger.info("  %s", "map 100% reduce 0%")
        logger.info("  %s", "map 100% reduce 100%")
    shown = [line.split("  ")[0] for line in stream.getvalue().splitlines()]
    assert shown == ["evaluate job: 50%", "evaluate job: 100%"]  # nothing done yet or again: no line
    assert (logger.level, logger.handlers) == (level, handlers)
    stream = io.StringIO()
    with pytest.raises(RuntimeError, match="job failed"), hadoop_job_progress(
            StageProgress("predict", stream=stream, bar=False)):
        logger.info("  %s", "map 50% reduce 0%")
        raise RuntimeError("job failed")
    assert [line.split("  ")[0] for line in stream.getvalue().splitlines()] == ["predict job: 25%"]
