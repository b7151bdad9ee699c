"""Running the ``mrtrain`` command inside a test, and looking at what it left on disk."""

from pathlib import Path

from mrtrain.cli import main


def run(capsys, *argv):
    """``mrtrain -q ARGV`` in this process: (exit status, stdout, stderr lines)."""
    status = main(["-q", *argv])
    out, err = capsys.readouterr()
    return status, out, err.strip().splitlines()


def tree(path):
    """Every file and folder under ``path``, relative and sorted."""
    return sorted(str(p.relative_to(path)) for p in Path(path).rglob("*"))
