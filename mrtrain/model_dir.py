"""Reading a model directory back: its newest valid checkpoint, read once, loaded by the family its
settings' model names (:meth:`mrtrain.families.family.Family.load`).

``mrtrain evaluate``, ``predict``, ``inspect`` and ``report`` read a directory through :func:`read_model`,
whatever the model: each family validates and reads its own checkpoint schema, so an invalid checkpoint is
skipped with one warning (:func:`mrtrain.storage.checkpoint.latest_checkpoint`), whichever family wrote it.
"""

from mrtrain.families.registry import FAMILIES, family_of, models
from mrtrain.storage.checkpoint import latest_checkpoint
from mrtrain.storage.filesystem import absolute


def checkpoint_family(checkpoint):
    """The family whose model ``checkpoint``'s settings name; the first registered family (the GLMs, whose
    checkpoint check names what is wrong) when the settings name no registered model."""
    settings = checkpoint.meta.get("settings")
    model = settings.get("model") if isinstance(settings, dict) else None
    return family_of(model) if isinstance(model, str) and model in models() else FAMILIES[0]


def validate_model_checkpoint(checkpoint):
    """Refuse (:class:`~mrtrain.storage.errors.CheckpointError`) a checkpoint its family cannot load."""
    checkpoint_family(checkpoint).validate_checkpoint(checkpoint)


def read_model(directory):
    """``(family, checkpoint, fitted model)`` of the newest valid checkpoint of ``directory``.

    Raises
    ------
    FileNotFoundError
        If the directory holds no valid checkpoint.
    mrtrain.storage.errors.CheckpointError
        If the family cannot use the newest valid checkpoint (a tree training that has not finished).
    """
    directory = absolute(directory)
    checkpoint = latest_checkpoint(directory, validate=validate_model_checkpoint)
    if checkpoint is None:
        raise FileNotFoundError(f"{directory}: no valid checkpoint found")
    family = checkpoint_family(checkpoint)
    return family, checkpoint, family.load(checkpoint)
