"""``mrtrain report`` never overwrites a file, and draws user-written strings literally.

- Two reports to the same new path used to both exit 0, the second replacing the first (the path was
  checked only at the start, then ``os.replace``\\ d): the final step is now exclusive.
- matplotlib reads ``$…$`` in a string as math markup: a category value ``US$ 1% - US$ 2%`` ended the report
  with a ParseException and ``$5-$10`` lost its dollar signs. Every user string is drawn as written.
"""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

import mrtrain.report as report_module
from mrtrain import FittedModel, Trainer
from mrtrain.report import report_sections, write_report
from tests.command import run
from tests.datasets import write

#: Category values and a column name that matplotlib would read as math markup.
PRICES = ["US$ 1% - US$ 2%", "$5-$10", r"a \$ b $c$"]
COLUMN = "$x$"


@pytest.fixture
def dollars(tmp_path, monkeypatch, capsys):
    """In a scratch working directory: ``m.csv`` with the column ``$x$`` and the categorical column
    ``price``, ingested as ``m`` and a logistic model trained on it into ``mk`` (relative paths)."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    with open("m.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([COLUMN, "price", "label"])
        for _ in range(300):
            x, price = rng.normal(), int(rng.integers(len(PRICES)))
            label = int(x + (1.5, -1.5, 0.0)[price] + rng.logistic() > 0)
            writer.writerow([f"{x:.6g}", PRICES[price], label])
    for argv in (("ingest", "m.csv", "m", "--categorical", "price", "--partitions", "2"),
                 ("train", "m", "--model", "logistic", "--runner", "inline", "--checkpoint-dir", "mk",
                  "--no-metrics")):
        status, _, err = run(capsys, *argv)
        assert status == 0, err
    return tmp_path


class RecordingFigure(Figure):
    """A real matplotlib figure that remembers every instance, to look at what was drawn."""

    made = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordingFigure.made.append(self)


def drawn_width(text):
    """Width in pixels of a Text artist as its figure draws it."""
    return text.get_window_extent(renderer=FigureCanvasAgg(text.figure).get_renderer()).width


def test_user_strings_are_drawn_literally(dollars):
    fitted = FittedModel.load("mk")
    names = ["$x$"] + [f"price={price}" for price in PRICES]
    RecordingFigure.made.clear()
    report_sections(fitted, None, RecordingFigure, feature_names=[*names, "price=<missing>", "price=<other>"])
    labels = [(text, text.get_text().replace(r"\$", "$")) for figure in RecordingFigure.made
              for text in figure.findobj(Text) if text.get_visible()]
    labels = [(text, literal) for text, literal in labels if literal in names]
    assert sorted({literal for _, literal in labels}) == sorted(names)
    for label, literal in labels:
        # The width drawn equals the width of the written string with math parsing off: drawn literally.
        reference = label.figure.text(0, 0, literal, parse_math=False,
                                      fontproperties=label.get_fontproperties())
        assert drawn_width(label) == pytest.approx(drawn_width(reference))


def test_cli_report_with_dollar_signs_in_names(dollars, capsys):
    status, _, err = run(capsys, "report", "mk", "--data", "m", "--output", "rep.html", "--runner",
                         "inline")
    assert status == 0, err
    page = (dollars / "rep.html").read_text()
    for price in PRICES:
        assert f"price={price}".replace("&", "&amp;") in page
    assert "<td>$x$</td>" in page


@pytest.fixture
def plain(tmp_path, monkeypatch):
    """In a scratch working directory: a logistic model trained into ``mk`` (no user strings at all)."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]) + rng.logistic(size=200) > 0).astype(float)
    write(tmp_path / "ds", X, y, partitions=2)
    Trainer("logistic", runner="inline", checkpoint_dir="mk", max_iter=5).fit("ds")
    return tmp_path


def report_command(output):
    return subprocess.Popen([sys.executable, "-m", "mrtrain", "-q", "report", "mk", "--output", output],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("output", ["rep.html", "new/dir/rep.html"])
def test_two_concurrent_reports_never_overwrite(plain, output):
    """Both pass the check at the start; exactly one writes, the other exits 2 and the page is whole."""
    first, second = report_command(output), report_command(output)
    results = [(process.wait(), *process.communicate()) for process in (first, second)]
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [0, 2], results
    loser = next(err for status, _, err in results if status == 2).strip().splitlines()
    assert len(loser) == 1 and "destination already exists" in loser[0] and output in loser[0]
    page = (plain / output).read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert [name for name in os.listdir((plain / output).parent) if name.startswith(".")] == []


def test_write_report_refuses_a_file_that_appears_meanwhile(plain, monkeypatch):
    """The Python API: the exclusive final step refuses, nothing of the other file is changed."""
    original = report_module.read_model

    def load_then_race(directory):  # the other writer finishes while this report is being built
        (plain / "taken.html").write_text("someone else's page")
        return original(directory)

    monkeypatch.setattr(report_module, "read_model", load_then_race)
    with pytest.raises(FileExistsError, match="taken.html: destination already exists .*appeared"):
        write_report("mk", "taken.html")
    assert (plain / "taken.html").read_text() == "someone else's page"
