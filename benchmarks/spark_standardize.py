"""--standardize against Spark MLlib's standardization=True: the same elastic-net logistic model.

Wine (scikit-learn's, 178 rows x 13 raw features of scales from 0.1 to 1,000), class 0 against the rest,
``regParam=0.05, elasticNetParam=0.5`` (mrtrain ``--reg 0.05 --elastic-net 0.5``), both fitted tightly
(Spark ``tol=1e-12, maxIter=10000``; mrtrain OWL-QN to a relative change of 1e-14). mrtrain is fitted
with both of its conventions: the default (Spark's n - 1 standard deviation) and ``"glmnet"``
(population); the table gives the largest coefficient and intercept difference from Spark's model.
Spark takes tens of seconds to start, which is why this is a benchmark and not a test; the suite checks
the relation between the conventions in closed form (``tests/test_standardize.py``).

Run: ``python3 -m benchmarks.spark_standardize`` (needs the ``bench`` extra: pyspark and a JVM).
"""

import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
from sklearn.datasets import load_wine

from benchmarks.report import describe_machine
from mrtrain import Trainer
from mrtrain.storage.dataset import write_dataset

REG, ALPHA = 0.05, 0.5


def problem():
    """Raw wine features and the label ``class == 0`` (1.0 / 0.0)."""
    X, y = load_wine(return_X_y=True)
    return X, (y == 0).astype(float)


def spark_model(X, y):
    """Spark MLlib's coefficients and intercept (standardization=True)."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.linalg import Vectors

    from benchmarks.systems import Spark

    spark = Spark()
    try:
        frame = spark.session.createDataFrame(
            [(float(label), Vectors.dense(row.tolist())) for row, label in zip(X, y, strict=True)],
            ["label", "features"])
        model = LogisticRegression(regParam=REG, elasticNetParam=ALPHA, standardization=True, tol=1e-12,
                                   maxIter=10000).fit(frame)
        return np.asarray(model.coefficients.toArray()), float(model.intercept)
    finally:
        spark.stop()


def mrtrain_model(data, standardize):
    fitted = Trainer("logistic", l1=ALPHA * REG, l2=(1 - ALPHA) * REG, standardize=standardize,
                     tol=1e-14, gtol=1e-12, max_iter=5000).fit(data)
    return fitted.coef_.ravel(), float(np.ravel(fitted.intercept_)[0]), fitted.converged_


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    X, y = problem()
    spark_coef, spark_intercept = spark_model(X, y)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        data = os.path.join(scratch, "wine")
        write_dataset(data, X, y, None, partitions=2)
        for convention in ("spark", "glmnet"):
            coef, intercept, converged = mrtrain_model(data, convention)
            rows.append({"standardize": convention, "converged": converged,
                         "max_coef_difference": float(np.max(np.abs(coef - spark_coef))),
                         "intercept_difference": abs(intercept - spark_intercept),
                         "max_abs_coef": float(np.max(np.abs(spark_coef)))})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(__file__)).stdout.strip()
    machine = describe_machine()
    print("| mrtrain --standardize | max |coef - Spark's| | |intercept - Spark's| | max |Spark coef| |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['standardize']} | {row['max_coef_difference']:.2e} | "
              f"{row['intercept_difference']:.2e} | {row['max_abs_coef']:.3g} |")
    print(f"\ncommit {commit}; {machine['cpu']}, {machine['nproc']} cores")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows, "commit": commit, "machine": machine}, handle, indent=2)


if __name__ == "__main__":
    main()
