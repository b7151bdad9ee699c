"""What the families check of a dataset before they train on it."""

from mrtrain.storage.errors import DataError


def check_trainable(dataset, model, *, classifier):
    """Refuse (DataError, one line) a dataset without labels, and string labels for ``model`` when it is no
    ``classifier``."""
    if not dataset.has_label:
        raise DataError(f"{dataset.uri}: field '{dataset.label_name}': expected labels to train {model}, "
                        "found a dataset ingested without its label column (for predict only)")
    if dataset.class_names is not None and not classifier:
        names = dataset.class_names
        raise DataError(f"{dataset.uri}: field '{dataset.label_name}': expected numeric labels for {model}, "
                        f"found class names {names[:3] + ['...'] if len(names) > 3 else names} (a "
                        "classifier takes them)")


def check_labels(dataset, model, *, classifier):
    """:func:`check_trainable`, then the dataset's classes for a ``classifier`` (a DataError when the labels
    are no classes), None for a regression."""
    check_trainable(dataset, model, classifier=classifier)
    if not classifier:
        return None
    if dataset.classes is None:
        raise DataError(
            f"{dataset.uri}: field '{dataset.label_name}': expected class labels for "
            f"{model}, found non-integer or more than 1000 distinct label values"
        )
    return dataset.classes
