"""The training layer: :class:`~mrtrain.training.run.TrainingRun`, the scaffolding every model family trains
in (the checkpoint directory's lock, the background checkpoint writer, the job launcher or AllReduce session,
resuming and saving), and what the families' fit loops share.

Nothing here names a model: the families (:mod:`mrtrain.families`) build on this package, never the other
way round.
"""
