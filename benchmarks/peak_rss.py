"""Run a command and append its peak resident memory to a log: ``python3 -I -S peak_rss.py LOG COMMAND...``.

The benchmarks put this in front of processes whose peak memory they report (mrjob's task command through
its ``task_python_bin`` option, Vowpal Wabbit). The command runs as a child of this small process and its
``ru_maxrss`` from ``wait4`` is its own peak: a child forked from a large process (the driver) would report
the parent's resident memory at the fork instead, which is why this runs without imports beyond the
standard library's ``os`` and ``sys``. Each run appends one line ``ROLE<TAB>PEAK_BYTES`` to LOG, where ROLE
is ``mapper`` or ``reducer`` for mrjob's tasks and ``command`` otherwise (lines from concurrent tasks are
single appends, so they do not interleave). The exit status is the command's.
"""

import os
import sys


def main(argv):
    log, command = argv[1], argv[2:]
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    role = next((arg[2:] for arg in command if arg in ("--mapper", "--reducer")), "command")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{role}\t{usage.ru_maxrss * 1024}\n".encode("ascii"))
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status)


def read_log(path):
    """``{role: [peak bytes, ...]}`` from a log written by this script ({} if there is none)."""
    peaks = {}
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                role, peak = line.split("\t")
                peaks.setdefault(role, []).append(int(peak))
    except FileNotFoundError:
        pass
    return peaks


if __name__ == "__main__":
    sys.exit(main(sys.argv))
