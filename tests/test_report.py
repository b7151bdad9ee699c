"""``mrtrain report`` and the per-pass records it plots: objective, gradient max-norm and seconds of every
pass in the checkpoint meta (exact on resume, absent from older checkpoints), the binned ROC curve against
scikit-learn's, and the HTML page itself: its inlined PNGs decoded and the numbers under each figure
compared with the checkpoint and the evaluate job's metrics."""

import base64
import html
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_curve

from mrtrain.engine.loop import LoopStatus
from mrtrain.engine.losses import sigmoid
from mrtrain.engine.metrics import AUC_BINS, binned_roc_curve, metric_partials
from mrtrain.engine.registry import make_model
from mrtrain.fitted import PASS_RECORDS, FittedModel, latest_training_checkpoint, validate_checkpoint
from mrtrain.storage.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from mrtrain.storage.errors import CheckpointError
from mrtrain.trainer import Trainer
from tests.command import run
from tests.datasets import reference_data, write

SETTINGS = {"optimizer": "lbfgs", "l2": 0.01, "tol": 0.0, "gtol": 0.0, "runner": "inline"}


def breast_cancer(tmp_path):
    X, y = reference_data("breast_cancer")
    return X, y, write(tmp_path / "bc", X, y, partitions=2)


def page_sections(text):
    """``{title: (image or None, rows of the table under it)}`` of a report page."""
    sections = {}
    for block in re.findall(r"<section>(.*?)</section>", text, re.S):
        title = html.unescape(re.search(r"<h2>(.*?)</h2>", block).group(1))
        image = re.search(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', block)
        picture = None
        if image is not None:
            assert html.unescape(image.group(1)) == title
            picture = Image.open(io.BytesIO(base64.b64decode(image.group(2))))
        rows = [[html.unescape(cell) for cell in re.findall(r"<td>(.*?)</td>", row)]
                for row in re.findall(r"<tr>(.*?)</tr>", block.split("<tbody>", 1)[1])]
        sections[title] = (picture, rows)
    return sections


def check_image(picture, title):
    """A real drawing: a PNG whose Title chunk is the section's, of a readable size, not one flat colour."""
    assert picture.format == "PNG"
    assert picture.text["Title"] == title
    width, height = picture.size
    assert width >= 300 and height >= 200
    pixels = np.asarray(picture.convert("L"), dtype=float)
    assert (pixels < 128).mean() > 0.002  # lines, text and bars, not a blank canvas


def test_pass_records_resume_exactly_and_match_the_gradient_at_the_optimum(tmp_path):
    X, y, data = breast_cancer(tmp_path)
    whole = Trainer("logistic", max_iter=12, **SETTINGS).fit(data)
    checkpoints = str(tmp_path / "ck")
    Trainer("logistic", max_iter=5, checkpoint_dir=checkpoints, **SETTINGS).fit(data)
    resumed = Trainer("logistic", max_iter=12, checkpoint_dir=checkpoints, **SETTINGS).fit(data)
    loaded = FittedModel.load(checkpoints)
    assert resumed.theta_.tobytes() == whole.theta_.tobytes()
    for fitted in (resumed, loaded):
        records = fitted.pass_records_
        # The objective and gradient norm depend only on the parameters: the same bits as the whole run.
        assert records["pass_objectives"] == whole.pass_records_["pass_objectives"]
        assert records["pass_grad_norms"] == whole.pass_records_["pass_grad_norms"]
        assert len(records["pass_seconds"]) == whole.n_passes_ == 13
        assert all(seconds > 0 for seconds in records["pass_seconds"])
    # Every accepted pass's objective is a history entry; the last one is the model's objective.
    assert set(whole.history_) <= set(whole.pass_records_["pass_objectives"])
    assert whole.pass_records_["pass_objectives"][-1] == whole.objective_
    # The recorded norm is the max-norm of the objective's gradient at the final point in the optimizer's
    # coordinates, in closed form: g_w = (1/n) X'(sigmoid(Xw + b) - y) + l2 w and g_b = (1/n) sum(sigmoid
    # - y), pulled back through the preconditioner (w = w'/s, b = b' - mean·w, s = sqrt(var + l2)):
    # g_w' = (g_w - g_b mean) / s, g_b' = g_b. Only the summation order differs.
    w, b = whole.coef_, whole.intercept_
    residual = sigmoid(X @ w + b) - y
    g_w, g_b = X.T @ residual / len(y) + SETTINGS["l2"] * w, residual.mean()
    scale = np.sqrt(X.var(axis=0) + SETTINGS["l2"])
    gradient = np.append((g_w - g_b * X.mean(axis=0)) / scale, g_b)
    np.testing.assert_allclose(whole.pass_records_["pass_grad_norms"][-1], np.max(np.abs(gradient)),
                               rtol=1e-9)


def test_a_checkpoint_without_pass_records_loads_resumes_exactly_and_reports(tmp_path, capsys):
    X, y, data = breast_cancer(tmp_path)
    whole = Trainer("logistic", max_iter=8, **SETTINGS).fit(data)
    checkpoints = str(tmp_path / "ck")
    Trainer("logistic", max_iter=3, checkpoint_dir=checkpoints, **SETTINGS).fit(data)
    for iteration, uri in list_checkpoints(checkpoints):  # as written before the records existed
        checkpoint = load_checkpoint(uri)
        meta = {key: value for key, value in checkpoint.meta.items() if key not in PASS_RECORDS}
        save_checkpoint(checkpoints, iteration, checkpoint.arrays, meta)
    old = FittedModel.load(checkpoints)
    assert old.pass_records_ == {name: [] for name in PASS_RECORDS}
    assert LoopStatus(None, 0, 0, (), 0).pass_seconds == ()  # the fields have defaults

    output = tmp_path / "old.html"
    status, out, err = run(capsys, "report", checkpoints, "--output", str(output), "--json")
    assert status == 0, err
    sections = page_sections(output.read_text())
    assert list(sections) == ["Objective per iteration", "Largest coefficients", "Run and settings"]
    picture, rows = sections["Objective per iteration"]
    check_image(picture, "Objective per iteration")
    assert [float(value) for _, value in rows] == pytest.approx(old.history_, rel=1e-9)

    resumed = Trainer("logistic", max_iter=8, checkpoint_dir=checkpoints, **SETTINGS).fit(data)
    assert resumed.theta_.tobytes() == whole.theta_.tobytes()
    # Only the passes after the resume are recorded: the last ones of the whole run.
    passes_before = old.n_passes_
    tail = whole.pass_records_["pass_objectives"][passes_before:]
    assert FittedModel.load(checkpoints).pass_records_["pass_objectives"] == tail


@pytest.mark.parametrize("edit, message", [
    (lambda meta: meta["pass_seconds"].pop(), r"expected lists of one length"),
    (lambda meta: meta["pass_seconds"].__setitem__(0, -1.0), r"'pass_seconds\[0\]': expected a finite "
                                                              r"number >= 0, found -1.0"),
    (lambda meta: meta.__setitem__("pass_grad_norms", "big"), r"'pass_grad_norms': expected a list"),
    (lambda meta: meta.__setitem__("passes", 1), r"at most 'passes' \(1\)"),
])
def test_bad_pass_records_are_refused_naming_the_field(tmp_path, edit, message):
    _, _, data = breast_cancer(tmp_path)
    checkpoints = str(tmp_path / "ck")
    Trainer("logistic", max_iter=2, checkpoint_dir=checkpoints, **SETTINGS).fit(data)
    checkpoint = latest_training_checkpoint(checkpoints)
    edit(checkpoint.meta)
    with pytest.raises(CheckpointError, match=message):
        validate_checkpoint(checkpoint)


def test_binned_roc_curve_is_scikit_learns_curve_at_the_bin_edges():
    X, y = reference_data("breast_cancer")
    rng = np.random.default_rng(0)
    model = make_model("logistic", X.shape[1], classes=[0.0, 1.0])
    theta = np.append(rng.normal(scale=0.3, size=X.shape[1]), 0.1)
    vector = metric_partials(model, X, model.encode_labels(y), None, theta)
    curve = binned_roc_curve(model, vector)
    probability = sigmoid(model.decision_function(X, theta))
    fpr, tpr, thresholds = roc_curve(y, probability, drop_intermediate=False)
    assert (curve["fpr"][0], curve["tpr"][0], curve["fpr"][-1], curve["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
    # Each edge t = b / AUC_BINS opens a bin holding a score; scikit-learn's point at the smallest score
    # >= t counts the same rows (p >= t is exact: AUC_BINS is a power of two). Counts are exact integers.
    for edge, x, z in zip(curve["threshold"][1:], curve["fpr"][1:], curve["tpr"][1:], strict=True):
        assert edge * AUC_BINS == int(edge * AUC_BINS)
        index = np.flatnonzero(thresholds >= edge)[-1]
        assert (x, z) == pytest.approx((fpr[index], tpr[index]), abs=1e-15)
    # The trapezoid area under the binned curve is the metric's roc_auc.
    area = np.trapezoid(curve["tpr"], curve["fpr"])
    from mrtrain.engine.metrics import finalize_metrics
    assert area == pytest.approx(finalize_metrics(model, vector)["roc_auc"], rel=1e-12)
    with pytest.raises(ValueError, match="must be a logistic model. Got 'softmax' instead"):
        binned_roc_curve(make_model("softmax", 4, classes=[0.0, 1.0, 2.0]), np.zeros(11))


def test_logistic_report_shows_convergence_metrics_confusion_roc_and_coefficients(tmp_path, capsys):
    X, y, data = breast_cancer(tmp_path)
    checkpoints = str(tmp_path / "ck")
    fitted = Trainer("logistic", max_iter=15, checkpoint_dir=checkpoints, **SETTINGS).fit(data)
    output = tmp_path / "report.html"
    status, out, err = run(capsys, "report", checkpoints, "--data", data, "--output", str(output),
                           "--runner", "inline", "--json")
    assert status == 0, err
    result = json.loads(out)
    expected = ["Metrics", "Objective and gradient norm per pass", "Seconds per pass", "Confusion matrix",
                "ROC curve", "Largest coefficients", "Run and settings"]
    assert result == {"output": str(output), "sections": expected, "figures": 5}
    text = output.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text  # self-contained
    sections = page_sections(text)
    assert list(sections) == expected
    for title, (picture, _) in sections.items():
        if title not in ("Metrics", "Run and settings"):
            check_image(picture, title)

    metrics = fitted.evaluate(data, roc_curve=True)
    table = dict(sections["Metrics"][1])
    assert float(table["accuracy"]) == pytest.approx(metrics["accuracy"], rel=1e-9)
    assert float(table["roc_auc"]) == pytest.approx(metrics["roc_auc"], rel=1e-9)
    rows = sections["Objective and gradient norm per pass"][1]
    assert [int(row[0]) for row in rows] == list(range(1, fitted.n_passes_ + 1))
    assert [float(row[1]) for row in rows] == pytest.approx(fitted.pass_records_["pass_objectives"],
                                                            rel=1e-9)
    assert [float(row[3]) for row in rows] == pytest.approx(fitted.pass_records_["pass_grad_norms"],
                                                            rel=1e-9)
    assert len(sections["Seconds per pass"][1]) == fitted.n_passes_
    confusion = [[float(value) for value in row[1:]] for row in sections["Confusion matrix"][1]]
    assert confusion == metrics["confusion_matrix"]
    roc = sections["ROC curve"][1]
    assert [float(row[2]) for row in roc] == pytest.approx(metrics["roc_curve"]["tpr"], rel=1e-9)
    coefficients = sections["Largest coefficients"][1]
    magnitudes = np.sort(np.abs(fitted.coef_))[::-1][:20]
    assert [abs(float(value)) for _, value in coefficients] == pytest.approx(magnitudes.tolist(), rel=1e-9)
    assert coefficients[0][0] == f"f{int(np.argmax(np.abs(fitted.coef_)))}"  # the dataset's feature names
    settings = dict(sections["Run and settings"][1])
    assert settings["l2 penalty"] == "0.01" and settings["passes"] == str(fitted.n_passes_)


@pytest.mark.parametrize("model, options, expected", [
    ("gaussian-nb", [], ["Metrics", "Confusion matrix", "Class priors", "Run and settings"]),
    ("kmeans", ["--k", "3", "--seed", "1"],
     ["Metrics", "Inertia per Lloyd pass", "Cluster sizes", "Run and settings"]),
    ("softmax", ["--optimizer", "newton", "--l2", "0.01"],
     ["Metrics", "Objective and gradient norm per pass", "Seconds per pass", "Confusion matrix",
      "Largest coefficients", "Run and settings"]),
])
def test_other_models_get_the_sections_that_apply(tmp_path, capsys, model, options, expected):
    X, y = reference_data("iris")
    data = write(tmp_path / "iris", X, y)
    checkpoints = str(tmp_path / "ck")
    status, _, err = run(capsys, "train", data, "--model", model, *options, "--runner", "inline",
                         "--checkpoint-dir", checkpoints, "--no-metrics")
    assert status == 0, err
    output = tmp_path / "report.html"
    status, _, err = run(capsys, "report", checkpoints, "--data", data, "--output", str(output),
                         "--runner", "inline")
    assert status == 0, err
    sections = page_sections(output.read_text())
    assert list(sections) == expected
    fitted = FittedModel.load(checkpoints)
    for title, (picture, _) in sections.items():
        if picture is not None:
            check_image(picture, title)
    if model == "gaussian-nb":
        priors = [float(value) for _, value in sections["Class priors"][1]]
        # 50 rows of each class; the table shows 10 significant digits.
        assert priors == pytest.approx([1 / 3] * 3, rel=1e-9)
    if model == "kmeans":
        sizes = [int(value) for _, value in sections["Cluster sizes"][1]]
        assert sizes == [int(n) for n in fitted.cluster_sizes_] and sum(sizes) == 150
        inertia = [float(value) for _, value in sections["Inertia per Lloyd pass"][1]]
        assert inertia == pytest.approx(fitted.history_, rel=1e-9)


def test_refused_reports_write_nothing(tmp_path, capsys, monkeypatch):
    _, _, data = breast_cancer(tmp_path)
    checkpoints = str(tmp_path / "ck")
    Trainer("logistic", max_iter=2, checkpoint_dir=checkpoints, **SETTINGS).fit(data)
    existing = tmp_path / "exists.html"
    existing.write_text("keep")
    status, _, err = run(capsys, "report", checkpoints, "--output", str(existing))
    assert status == 2 and err == [f"mrtrain: error: {existing}: destination already exists; choose a new "
                                   "path or delete it"]
    assert existing.read_text() == "keep"
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = run(capsys, "report", str(empty), "--output", str(tmp_path / "a.html"))
    assert status == 2 and err == [f"mrtrain: error: {empty}: no valid checkpoint found"]
    status, _, err = run(capsys, "report", checkpoints, "--data", checkpoints, "--output",
                         str(tmp_path / "b.html"))
    assert status == 2 and len(err) == 1 and err[0].startswith(f"mrtrain: error: {checkpoints}")

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    status, _, err = run(capsys, "report", checkpoints, "--output", str(tmp_path / "c.html"))
    assert status == 2 and len(err) == 1
    assert "matplotlib, which is not installed" in err[0] and "pip install 'mrtrain[report]'" in err[0]
    assert sorted(path.name for path in Path(tmp_path).iterdir()) == ["bc", "ck", "empty", "exists.html"]
