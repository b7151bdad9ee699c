"""What a new user hit typing the README's and docs' commands in a scratch directory with relative paths:
each test is one finding of that trial (the message, exit status or output that was wrong before)."""

import os

import pytest

from tests.command import run


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_bad_number_beside_text_columns_is_named_by_its_own_column_and_line(capsys, scratch):
    """'NA' in a numeric column was reported as the string label (or a kept text column) of line 2."""
    with open("f.csv", "w") as f:
        f.write("name,height,species\nA1,1.5,setosa\nB2,NA,versicolor\nC3,2.5,virginica\n")
    expected = f"mrtrain: error: {scratch / 'f.csv'}: line 3: column 'height': expected a number, found 'NA'"
    for options in (["--impute", "mean", "--categorical", "name"], ["--keep", "name"],
                    ["--keep-missing", "--id", "name"]):
        status, out, err = run(capsys, "ingest", "f.csv", "ds", "--label", "species", *options)
        assert (status, out, err) == (2, "", [expected]), options
        assert not os.path.exists("ds")
