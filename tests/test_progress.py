"""Training progress: a bar on a terminal (a real pseudo-terminal here), plain lines otherwise, none with
``--quiet``; the result on stdout is the same in every case."""

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios

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
