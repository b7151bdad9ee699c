"""Seeded datasets for the tests, written in mrtrain's dataset format."""

import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from mrtrain.storage.dataset import manifest_checksum, write_dataset


def standardized(X):
    return (X - X.mean(axis=0)) / X.std(axis=0)


def reference_data(name):
    """``(X, y)`` of a scikit-learn bundled dataset: breast_cancer (standardized), iris, diabetes."""
    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
        return standardized(X), y.astype(float)
    if name == "iris":
        X, y = load_iris(return_X_y=True)
        return X, y.astype(float)
    if name == "diabetes":
        X, y = load_diabetes(return_X_y=True)
        return X, y
    raise ValueError(name)


def write(path, X, y, w=None, partitions=3):
    """Write a dataset to ``path`` and return its URI (a str)."""
    write_dataset(str(path), X, y, w, partitions=partitions)
    return str(path)


def poisson_data(seed=0, n=300, d=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * 0.5
    y = rng.poisson(np.exp(X @ rng.normal(size=d) * 0.5 + 0.2)).astype(float)
    return X, y


def edit_manifest(data, edit):
    """Apply ``edit`` to the parsed manifest of dataset ``data`` and write it back with a valid checksum."""
    path = Path(data) / "_dataset.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    manifest["checksum"] = manifest_checksum(manifest)
    path.write_text(json.dumps(manifest))
