"""The settings check between a checkpoint and the run that would resume it."""

#: Values of settings that checkpoints written before the setting existed lack.
SETTING_DEFAULTS = {"l1": 0.0, "standardize": False, "precondition": False, "n_init": 1}


class SettingsMismatchError(ValueError):
    """The checkpoint directory holds a run made with other data or settings."""


def settings_differences(previous, current, keys):
    """One ``"key: checkpoint has X, this run has Y"`` string per key in ``keys`` whose values differ.

    A key the checkpoint (or this run's settings) lacks has its :data:`SETTING_DEFAULTS` value (or None).
    """
    differences = []
    for key in keys:
        recorded = previous.get(key, SETTING_DEFAULTS.get(key))
        value = current.get(key, SETTING_DEFAULTS.get(key))
        if recorded != value:
            differences.append(f"{key}: checkpoint has {recorded!r}, this run has {value!r}")
    return differences
