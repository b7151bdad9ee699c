"""Nothing from a dataset, a checkpoint or a shuffle is unpickled or evaluated as code."""

import ast
import logging
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mrtrain.cli import main
from mrtrain.fitted import FittedModel
from mrtrain.mr_jobs.evaluate import MREvaluate
from mrtrain.mr_jobs.gradient import MRGradient
from mrtrain.mr_jobs.predict import MRPredict
from mrtrain.storage.checkpoint import list_checkpoints
from mrtrain.trainer import Trainer
from tests.datasets import reference_data, write
from tests.test_storage_checkpoint import Exploit, _valid_metadata, _write_table

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mrtrain", "engine", "mr_jobs", "storage", "scripts")
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}
#: ``(file, construct)`` allowed where it never touches data, with why.
TRUSTED = {
    ("mrtrain/task_zip.py", "compile()"):
        "compiles the installed mrtrain and mrjob .py files into the Hadoop tasks' bytecode zip; no data",
}


def our_modules():
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def findings(path, root=ROOT):
    """Unsafe constructs in one source file, as ``file:line: what`` strings."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = f"{path.relative_to(root)}"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno}: import {a.name}" for a in node.names
                      if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in UNSAFE_MODULES:
                found.append(f"{where}:{node.lineno}: from {node.module} import")
            found += [f"{where}:{node.lineno}: {a.name}" for a in node.names if "Pickle" in a.name]
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if isinstance(node.func, ast.Name) and name in UNSAFE_CALLS:
                found.append(f"{where}:{node.lineno}: {name}()")
            keywords = {k.arg: k.value for k in node.keywords}
            pickle_flag = keywords.get("allow_pickle")
            if pickle_flag is not None and not (isinstance(pickle_flag, ast.Constant)
                                                and pickle_flag.value is False):
                found.append(f"{where}:{node.lineno}: allow_pickle not False")
            owner = getattr(getattr(node.func, "value", None), "id", "")
            if name == "load" and owner in ("np", "numpy") and "allow_pickle" not in keywords:
                found.append(f"{where}:{node.lineno}: np.load without allow_pickle=False")
            if name == "load" and owner == "yaml":
                found.append(f"{where}:{node.lineno}: yaml.load")
        elif isinstance(node, ast.Name | ast.Attribute):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if "Pickle" in name:
                found.append(f"{where}:{node.lineno}: {name}")
    return found


def test_no_module_of_ours_unpickles_or_evaluates_code():
    modules = our_modules()
    assert len(modules) > 20
    found = [finding for path in modules for finding in findings(path)]
    untrusted = [f for f in found if (f.split(":")[0], f.rpartition(": ")[2]) not in TRUSTED]
    assert untrusted == []
    # Each trusted use is still there (a stale entry would hide a new use in the same file).
    assert {(f.split(":")[0], f.rpartition(": ")[2]) for f in found} == set(TRUSTED)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import pickle\n", "import pickle"),
        ("from joblib import load\n", "from joblib import"),
        ("import numpy as np\nnp.load('x.npy')\n", "np.load without allow_pickle=False"),
        ("import numpy as np\nnp.load('x.npz', allow_pickle=True)\n", "allow_pickle not False"),
        ("eval('1')\n", "eval()"),
        ("from mrjob.protocol import PickleProtocol\n", "PickleProtocol"),
    ],
)
def test_the_scan_finds_what_it_looks_for(tmp_path, source, expected):
    path = tmp_path / "module.py"
    path.write_text(source)
    assert any(finding.endswith(expected) for finding in findings(path, tmp_path))


@pytest.mark.parametrize("job", [MRGradient, MREvaluate, MRPredict])
def test_jobs_never_use_pickle_protocols(job):
    for protocol in (job.INPUT_PROTOCOL, job.INTERNAL_PROTOCOL, job.OUTPUT_PROTOCOL):
        assert "pickle" not in protocol.__name__.lower()


def plant_pickled_checkpoint(path, scratch):
    """Write at ``path`` a checkpoint whose meta and values are pickle payloads (as in
    tests/test_storage_checkpoint.py)."""
    metadata, table = _valid_metadata(scratch)
    payload = pickle.dumps(Exploit(), protocol=0)
    crafted = pa.table({"name": table.column("name"), "shape": table.column("shape"),
                        "values": pa.array([payload], pa.binary())})
    _write_table(path, crafted, {**metadata, b"mrtrain.meta": payload})


def test_pickled_checkpoint_through_the_public_api(tmp_path, caplog):
    X, y = reference_data("iris")
    data = write(tmp_path / "d", X, y)
    checkpoints = tmp_path / "ck"
    settings = {"l2": 0.01, "optimizer": "newton", "max_iter": 3, "tol": 0.0, "gtol": 0.0}
    reference = Trainer("softmax", checkpoint_dir=str(checkpoints), **settings).fit(data)
    newest = list_checkpoints(str(checkpoints))[-1][0]
    plant_pickled_checkpoint(checkpoints / f"ckpt-{newest + 1:06d}.parquet", tmp_path)
    crafted_dir = tmp_path / "crafted"
    crafted_dir.mkdir()
    plant_pickled_checkpoint(crafted_dir / "ckpt-000001.parquet", tmp_path)
    with caplog.at_level(logging.WARNING, logger="mrtrain.storage.checkpoint"):
        loaded = FittedModel.load(str(checkpoints))
        resumed = Trainer("softmax", checkpoint_dir=str(checkpoints), **settings).fit(data)
    assert loaded.theta_.tobytes() == reference.theta_.tobytes()
    assert resumed.theta_.tobytes() == reference.theta_.tobytes()
    warnings = [r.getMessage() for r in caplog.records if r.name == "mrtrain.storage.checkpoint"]
    assert len(warnings) == 2 and all("meta is not valid JSON" in w for w in warnings)
    with pytest.raises(FileNotFoundError, match=r"crafted: no valid checkpoint found"):
        FittedModel.load(str(crafted_dir))
    assert Exploit.triggered == []


def test_pickled_npz_is_refused_without_unpickling(tmp_path, capsys):
    source = tmp_path / "d.npz"
    np.savez(source, X=np.array([[Exploit()]], dtype=object), y=np.array([1.0]))
    assert main(["-q", "ingest", str(source), str(tmp_path / "out")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"mrtrain: error: {source}: not a loadable .npz without pickle")
    assert Exploit.triggered == [] and not (tmp_path / "out").exists()


def test_code_in_column_names_stays_text(tmp_path, capsys):
    marker = tmp_path / "pwned"
    name = f"__import__('os').system('touch {marker}')"
    source = tmp_path / "d.csv"
    source.write_text(f'"{name}",label\n1,0\n2,1\n')
    assert main(["-q", "ingest", str(source), str(tmp_path / "out"), "--json"]) == 0
    assert main(["-q", "train", str(tmp_path / "out"), "--model", "logistic", "--runner", "inline",
                 "--max-iter", "2", "--checkpoint-dir", str(tmp_path / "ck"), "--no-metrics"]) == 0
    capsys.readouterr()
    assert not marker.exists()
    assert main(["inspect", str(tmp_path / "ck"), "--json"]) == 0
    assert not marker.exists()
