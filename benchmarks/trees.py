"""Tree ensembles against the systems a Hadoop user would pick instead (issue 23's targets).

Run ``python3 -m benchmarks.trees [--rows 200000|1000000] [--trees N --depth D ...] [--systems ...]
[--json OUT]``. Each system trains on the same rows of :mod:`benchmarks.tree_data` (28 features, 5% NaN in
one column) with the same settings (trees, depth, learning rate, bins, λ, min child weight) and is scored on
the same held-out rows: ROC AUC (exact, scikit-learn's ``roc_auc_score``) and log loss of its probabilities,
with its fit time. The table goes to stdout as Markdown, the rows to ``--json``.

Systems (a missing package is a row saying so, not a failure):

- ``mrtrain-gbt`` / ``mrtrain-rf``: ``mrtrain train --model gbt|random-forest --runner local --allreduce``
  (``--mrtrain-mode`` chooses ``allreduce``, ``local`` or ``inline``), then ``mrtrain predict`` on the
  held-out dataset; the time is the whole ``train`` command's.
- ``lightgbm``: ``LGBMClassifier`` (``max_depth``, ``num_leaves = 2**depth``, ``max_bin``, ``reg_lambda``,
  ``min_child_weight``, ``min_child_samples=0``, no row or feature sampling), NaN as missing.
- ``xgboost``: ``XGBClassifier(tree_method="hist")`` (same settings, depth-wise), NaN as missing.
- ``sklearn-hgb``: ``HistGradientBoostingClassifier`` (``max_depth``, ``max_leaf_nodes=2**depth``,
  ``l2_regularization``, ``min_samples_leaf=1``, no early stopping), NaN as missing.
- ``sklearn-rf``: ``RandomForestClassifier`` (same trees and depth, ``max_features="sqrt"``), NaN as missing.
- ``spark-gbt``: Spark MLlib ``GBTClassifier`` on ``local[2]`` (``maxIter``, ``maxDepth``, ``maxBins``,
  ``stepSize``, ``minInstancesPerNode=1``), fit on a cached DataFrame; Spark's trees take no NaN, so a
  missing value becomes ``-1e9`` (a value below every other, which a split can isolate).
- ``logistic``: scikit-learn ``LogisticRegression`` on mean-imputed, standardized features, the linear
  baseline the trees must beat by far.

``--rows`` 200000 and 1000000 are the issue's sizes; ``--rows 2000`` checks that everything runs (seconds).
Timed on a loaded machine the figures mean little: say the machine and its load beside any table.
"""

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import tree_data

log = logging.getLogger(__name__)

SYSTEMS = ("mrtrain-gbt", "mrtrain-rf", "lightgbm", "xgboost", "sklearn-hgb", "sklearn-rf", "spark-gbt",
           "logistic")
#: What a missing value becomes for Spark, whose trees take no NaN.
SPARK_MISSING = -1e9


def _scores(y, p):
    from sklearn.metrics import log_loss, roc_auc_score

    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1 - 1e-15)
    return {"auc": float(roc_auc_score(y, p)), "log_loss": float(log_loss(y, p))}


def _timed(fit):
    started = time.perf_counter()
    model = fit()
    return model, time.perf_counter() - started


def run_lightgbm(s, X, y, X_test):
    import lightgbm

    model = lightgbm.LGBMClassifier(
        n_estimators=s.trees, learning_rate=s.learning_rate, max_depth=s.depth, num_leaves=2**s.depth,
        max_bin=s.bins, reg_lambda=s.l2, min_child_weight=s.min_child_weight, min_child_samples=0,
        subsample=1.0, colsample_bytree=1.0, n_jobs=s.cores, verbose=-1, deterministic=True)
    model, seconds = _timed(lambda: model.fit(X, y))
    return model.predict_proba(X_test)[:, 1], seconds


def run_xgboost(s, X, y, X_test):
    import xgboost

    model = xgboost.XGBClassifier(
        n_estimators=s.trees, learning_rate=s.learning_rate, max_depth=s.depth, max_bin=s.bins,
        reg_lambda=s.l2, min_child_weight=s.min_child_weight, tree_method="hist", grow_policy="depthwise",
        n_jobs=s.cores)
    model, seconds = _timed(lambda: model.fit(X, y))
    return model.predict_proba(X_test)[:, 1], seconds


def run_sklearn_hgb(s, X, y, X_test):
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=s.trees, learning_rate=s.learning_rate, max_depth=s.depth, max_leaf_nodes=2**s.depth,
        max_bins=min(s.bins, 255), l2_regularization=s.l2, min_samples_leaf=1, early_stopping=False)
    model, seconds = _timed(lambda: model.fit(X, y))
    return model.predict_proba(X_test)[:, 1], seconds


def run_sklearn_rf(s, X, y, X_test):
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=s.rf_trees, max_depth=s.depth, max_features="sqrt",
                                   n_jobs=s.cores, random_state=s.seed)
    model, seconds = _timed(lambda: model.fit(X, y))
    return model.predict_proba(X_test)[:, 1], seconds


def run_logistic(s, X, y, X_test):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1000))
    model, seconds = _timed(lambda: model.fit(X, y))
    return model.predict_proba(X_test)[:, 1], seconds


def run_spark_gbt(s, X, y, X_test):
    from pyspark.ml.classification import GBTClassifier
    from pyspark.ml.linalg import Vectors
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master(f"local[{s.cores}]").appName("mrtrain-bench-trees")
               .config("spark.driver.memory", "4g").config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    try:
        def frame(features, labels):
            features = np.where(np.isnan(features), SPARK_MISSING, features)
            rows = [(float(label), Vectors.dense(row)) for row, label in zip(features, labels, strict=True)]
            return session.createDataFrame(rows, ["label", "features"])

        train = frame(X, y).cache()
        train.count()
        estimator = GBTClassifier(maxIter=s.trees, maxDepth=s.depth, maxBins=s.bins, stepSize=s.learning_rate,
                                  minInstancesPerNode=1, seed=s.seed)
        model, seconds = _timed(lambda: estimator.fit(train))
        scored = model.transform(frame(X_test, np.zeros(len(X_test)))).select("probability").collect()
        return np.array([row.probability[1] for row in scored]), seconds
    finally:
        session.stop()


def _mrtrain(*argv):
    completed = subprocess.run([sys.executable, "-m", "mrtrain", "-q", *argv], capture_output=True, text=True,
                               check=False)
    if completed.returncode:
        raise RuntimeError((completed.stderr.strip().splitlines() or ["(no message)"])[-1])
    return completed.stdout


def run_mrtrain(s, model, train, test):
    """``mrtrain train`` then ``mrtrain predict``: (P(y = 1) of the held-out rows, the train command's s)."""
    import pyarrow.parquet as pq

    work = tempfile.mkdtemp(prefix="mrtrain-bench-trees-")
    try:
        options = ["--n-trees", str(s.trees if model == "gbt" else s.rf_trees), "--max-depth", str(s.depth),
                   "--max-bins", str(s.bins), "--min-child-weight", str(s.min_child_weight),
                   "--seed", str(s.seed)]
        if model == "gbt":
            options += ["--learning-rate", str(s.learning_rate), "--l2", str(s.l2)]
        else:
            options += ["--max-features", "sqrt"]
        mode = {"allreduce": ["--runner", "local", "--allreduce"], "local": ["--runner", "local"],
                "inline": ["--runner", "inline"]}[s.mrtrain_mode]
        checkpoints = os.path.join(work, "model")
        started = time.perf_counter()
        _mrtrain("train", train.uri, "--model", model, *options, *mode, "--checkpoint-dir", checkpoints)
        seconds = time.perf_counter() - started
        output = os.path.join(work, "predictions")
        _mrtrain("predict", test.uri, "--model-dir", checkpoints, "--output", output)
        tables = [pq.read_table(os.path.join(output, name)) for name in sorted(os.listdir(output))
                  if name.startswith("part-")]
        return np.concatenate([t.column("probability_1").to_numpy() for t in tables]), seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)


RUNNERS = {"lightgbm": run_lightgbm, "xgboost": run_xgboost, "sklearn-hgb": run_sklearn_hgb,
           "sklearn-rf": run_sklearn_rf, "spark-gbt": run_spark_gbt, "logistic": run_logistic}


def run(settings):
    """Every system of ``settings.systems`` on the data: a list of table rows."""
    X, y, X_test, y_test = tree_data.make_split(settings.rows, settings.seed)
    train, test = tree_data.ensure_datasets(settings.rows, settings.seed, partitions=settings.partitions)
    rows = []
    for system in settings.systems:
        log.info("%s on %d rows", system, settings.rows)
        try:
            if system.startswith("mrtrain"):
                p, seconds = run_mrtrain(settings, "gbt" if system == "mrtrain-gbt" else "random-forest",
                                         train, test)
            else:
                p, seconds = RUNNERS[system](settings, X, y, X_test)
        except (ImportError, RuntimeError, OSError) as error:
            rows.append({"system": system, "fit_s": None, "auc": None, "log_loss": None,
                         "note": f"{type(error).__name__}: {error}"[:160]})
            continue
        rows.append({"system": system, "fit_s": seconds, **_scores(y_test, p), "note": ""})
    return rows


def markdown(rows, settings):
    """The table, with the settings in its caption."""
    lines = [f"{settings.rows} training rows x {tree_data.N_FEATURES} features, "
             f"{len(settings.systems)} systems; "
             f"{settings.trees} trees (forest: {settings.rf_trees}), depth {settings.depth}, learning rate "
             f"{settings.learning_rate}, {settings.bins} bins, l2 {settings.l2}, min child weight "
             f"{settings.min_child_weight}", "",
             "| system | fit s | held-out AUC | log loss | note |", "| --- | ---: | ---: | ---: | --- |"]
    for row in rows:
        fit = "" if row["fit_s"] is None else f"{row['fit_s']:.2f}"
        auc = "" if row["auc"] is None else f"{row['auc']:.4f}"
        loss = "" if row["log_loss"] is None else f"{row['log_loss']:.4f}"
        lines.append(f"| {row['system']} | {fit} | {auc} | {loss} | {row['note']} |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000, help="training rows. Default: %(default)s")
    p.add_argument("--seed", type=int, default=23)
    p.add_argument("--trees", type=int, default=100, help="boosting rounds. Default: %(default)s")
    p.add_argument("--rf-trees", type=int, default=50, help="forest trees. Default: %(default)s")
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--bins", type=int, default=255)
    p.add_argument("--l2", type=float, default=1.0)
    p.add_argument("--min-child-weight", type=float, default=1.0)
    p.add_argument("--partitions", type=int, default=2)
    p.add_argument("--cores", type=int, default=2, help="threads or local cores of the other systems")
    p.add_argument("--mrtrain-mode", choices=("allreduce", "local", "inline"), default="allreduce")
    p.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    p.add_argument("--json", help="write the rows and settings to this file")
    return p.parse_args(argv)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = parse_args(argv)
    rows = run(settings)
    print(markdown(rows, settings))
    if settings.json:
        with open(settings.json, "w", encoding="utf-8") as handle:
            json.dump({"settings": vars(settings), "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
