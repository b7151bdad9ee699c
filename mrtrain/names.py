"""Names of a model's features and classes, recorded in its training settings and shown in every output.

The trainer records the training dataset's feature names (``settings["feature_names"]``, when the dataset
names its features, e.g. from a CSV header or a categorical encoding's ``island=Dream`` slots, and they are
at most :data:`MAX_NAMED_FEATURES`) and its class names (``settings["class_names"]``, for string labels:
the name of each class code ``0 .. K-1``). Outputs name a feature by :func:`feature_names` (``feature j``
where none is recorded) and a class by :func:`class_labels` (its name, else the label as ``%g``).
"""

from mrtrain.storage.dataset import default_feature_names

#: The most feature names kept in a checkpoint's settings (each checkpoint repeats them).
MAX_NAMED_FEATURES = 2**16


def dataset_names(dataset):
    """The settings entries naming ``dataset``'s features and classes (either may be left out)."""
    names = {}
    features = dataset.feature_names
    if dataset.n_features <= MAX_NAMED_FEATURES and features != default_feature_names(dataset.n_features):
        names["feature_names"] = list(features)
    if dataset.class_names is not None:
        names["class_names"] = list(dataset.class_names)
    return names


def feature_names(settings, n_features):
    """The ``n_features`` names of a model's features: recorded ones, else ``feature 0 .. feature d-1``."""
    names = settings.get("feature_names")
    if names is not None and len(names) == n_features:
        return list(names)
    return [f"feature {j}" for j in range(n_features)]


def class_labels(settings, classes):
    """Display names of ``classes`` (a model's labels, or None): the recorded class names, else ``%g``."""
    if classes is None:
        return None
    names = settings.get("class_names")
    if names is not None and len(names) == len(classes):
        return [names[int(c)] for c in classes]
    return [f"{c:g}" for c in classes]


def class_texts(result):
    """The classes of a ``to_dict`` result as outputs show them: their names, else their labels as ``%g``."""
    classes = result.get("classes")
    if classes is None:
        return None
    return list(result.get("class_names") or [c if isinstance(c, str) else f"{c:g}" for c in classes])
