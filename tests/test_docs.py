"""The documentation: the README (also the PyPI long description) and the pages under ``docs/``.

- ``mkdocs build --strict`` (mkdocs.yml at the top) fails on a broken link or anchor and on a page that
  is missing from the nav, so the pages stay one connected site.
- The README stays short, its relative links point at files that exist (with their anchors), and its
  quick start is the two commands ``.ci/run`` and the demo rely on.
- Every file the README and the pages name (``engine/loop.py``, ``tests/test_layering.py``, the file names
  of the layout tables, ``python3 -m benchmarks.x``, test function names) exists, so a rename that forgets
  the docs fails here; and every module of mrtrain/, engine/, mr_jobs/ and storage/ is in the layout of
  docs/architecture.md, so a new one fails here until it is described.
"""

import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 300
#: The repository's folders whose files the docs name by path.
FOLDERS = ("mrtrain", "engine", "mr_jobs", "storage", "tests", "scripts", "benchmarks", "docker-hadoop",
           "data", "docs", ".ci")


def documents():
    """The README and every page under docs/, as ``(path, text)``."""
    return [(path, path.read_text(encoding="utf-8")) for path in [README, *sorted(DOCS.glob("*.md"))]]


def without_code_blocks(text):
    """``text`` with fenced code blocks blanked (links there are not links)."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


def slug(heading):
    """The anchor Python-Markdown's toc extension (what mkdocs uses) gives a heading."""
    text = re.sub(r"`|\*\*|\*", "", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path):
    """The anchors of the headings of the Markdown file at ``path``."""
    return {slug(line.lstrip("#").strip())
            for line in without_code_blocks(path.read_text(encoding="utf-8")).splitlines()
            if line.startswith("#")}


def test_mkdocs_builds_strictly(tmp_path):
    """Every page builds, every link and anchor resolves, every page is in the nav. (Not ``--quiet``: mkdocs
    1.6 then stops counting warnings, and ``--strict`` passes anything.)"""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}{done.stderr}"
    built = {path.relative_to(tmp_path / "site").parent.as_posix() for path in
             (tmp_path / "site").rglob("index.html")}
    pages = {"." if path.stem == "index" else path.stem for path in DOCS.glob("*.md")}
    assert pages <= built


def test_the_nav_lists_every_page_once():
    nav = re.findall(r"^\s*- [^:]+: (\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    assert sorted(nav) == sorted(path.name for path in DOCS.glob("*.md"))
    assert len(nav) == len(set(nav))


def test_the_readme_is_short_and_its_relative_links_resolve():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_README_LINES
    links = re.findall(r"\]\(([^)\s]+)\)", without_code_blocks(text))
    relative = [link for link in links if not re.match(r"[a-z]+://|mailto:", link)]
    assert relative, "the README links its documentation pages"
    for link in relative:
        target, _, anchor = link.partition("#")
        path = (ROOT / target) if target else README
        assert path.exists(), f"README links {link!r}: {path} does not exist"
        if anchor:
            assert anchor in anchors(path), f"README links {link!r}: no heading with that anchor"
    # Every page is reachable from the README.
    linked = {Path(link.partition("#")[0]).name for link in relative if link.startswith("docs/")}
    assert {path.name for path in DOCS.glob("*.md") if path.name != "index.md"} <= linked


def test_the_quick_start_is_the_demo_and_the_test_command_ci_runs():
    text = README.read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, flags=re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["bash scripts/demo", "bash scripts/test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^bash scripts/test\b", ci, flags=re.M), ".ci/run runs the README's test command"
    for script in ("scripts/demo", "scripts/test"):
        assert (ROOT / script).exists()


def named_paths(text):
    """Repository paths written in backticks, e.g. `engine/loop.py` or `tests/test_x.py::test_y`."""
    folders = "|".join(re.escape(folder) for folder in FOLDERS)
    found = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        for match in re.finditer(rf"(?<![\w./-])((?:{folders})/[\w./-]*\w)", span):
            found.add(match.group(1).split("::")[0])
    return found


def layout_names(text):
    """``(folder, file name)`` of every ``*.py`` name in a layout table: a fenced block whose lines start
    with a folder (``engine/   model math, ...``), continuation lines indented."""
    found = set()
    for block in re.findall(r"```\n(.*?)```", text, flags=re.S):
        folder = None
        for line in block.splitlines():
            start = re.match(r"^([\w.-]+)/\s", line)
            if start:
                folder = start.group(1) if start.group(1) in FOLDERS else None
            elif line.strip() and not line.startswith(" "):
                folder = None
            if folder:
                found |= {(folder, name) for name in re.findall(r"(?<![\w/.])(\w+\.py)\b", line)}
    return found


@pytest.mark.parametrize("path", [README, *sorted(DOCS.glob("*.md"))], ids=lambda path: path.name)
def test_the_files_the_docs_name_exist(path):
    text = path.read_text(encoding="utf-8")
    missing = sorted(name for name in named_paths(text) if not (ROOT / name.rstrip("/")).exists())
    assert not missing, f"{path.name} names files that do not exist: {missing}"
    missing = sorted(f"{folder}/…/{name}" for folder, name in layout_names(text)
                     if not any((ROOT / folder).rglob(name)))
    assert not missing, f"{path.name}'s layout names files that do not exist: {missing}"
    modules = set(re.findall(r"python3? -m (benchmarks\.\w+)", text))
    missing = sorted(module for module in modules if not (ROOT / (module.replace(".", "/") + ".py")).exists())
    assert not missing, f"{path.name} runs benchmark modules that do not exist: {missing}"
    tests = set(re.findall(r"`(?:tests/\w+\.py::)?(test_\w+)`", text))
    source = "\n".join(test.read_text(encoding="utf-8") for test in (ROOT / "tests").glob("test_*.py"))
    missing = sorted(name for name in tests if not re.search(rf"def {name}\b", source)
                     and not (ROOT / "tests" / f"{name}.py").exists())
    assert not missing, f"{path.name} names tests that do not exist: {missing}"


def test_the_architecture_layout_names_every_module():
    """Every module of the four package folders is in docs/architecture.md's layout (a sub-package by its
    folder, e.g. ``optimizers/``), so a new or renamed module is documented where the layers are."""
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    layout = "\n".join(re.findall(r"```\n(.*?)```", text.split("## Layout", 1)[1], flags=re.S))
    missing = []
    for folder in ("mrtrain", "engine", "mr_jobs", "storage"):
        for path in sorted((ROOT / folder).glob("*.py")):
            if path.name != "__init__.py" and not re.search(rf"(?<![\w.]){re.escape(path.name)}", layout):
                missing.append(f"{folder}/{path.name}")
        for package in sorted(p.parent for p in (ROOT / folder).glob("*/__init__.py")):
            if f"{package.name}/" not in layout:
                missing.append(f"{folder}/{package.name}/")
    assert not missing, f"docs/architecture.md's layout does not name: {missing}"
