"""The model families (:mod:`mrtrain.families.family`: the interface and how to add one); the registry of
those :class:`mrtrain.Trainer` trains: :mod:`mrtrain.families.registry`."""
