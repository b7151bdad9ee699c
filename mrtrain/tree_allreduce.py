"""``--allreduce`` for the tree ensembles: one map-only job serves every histogram pass of a training.

:class:`TreeAllReduceSession` is :class:`mrtrain.allreduce.AllReduceSession` (the port, the handshake,
lost tasks, stop) starting :class:`~mrtrain.mr_jobs.tree_allreduce_job.MRTreeAllReduce` and sending each
pass's state (:class:`mrtrain.engine.tree_pass.PassState`) in its request; the tasks answer every
partition's vector, added here in partition order: the bits of one job per pass.
"""

import numpy as np

from mrtrain.allreduce import AllReduceSession
from mrtrain.mr_jobs.tree_allreduce_job import MRTreeAllReduce
from mrtrain.mr_jobs.tree_histograms import MRTreeHistograms


class TreeAllReduceSession(AllReduceSession):
    """The AllReduce session of a tree training (module docstring).

    Parameters
    ----------
    launcher : mrtrain.launcher.JobLauncher
    state : mrtrain.engine.tree_pass.PassState
        A state of the training (the tasks decode their labels with it before the first pass).
    **options
        :class:`~mrtrain.allreduce.AllReduceSession`'s ``address``, ``tasks`` and ``timeout``.
    """

    def __init__(self, launcher, state, **options):
        self.initial_state = state
        super().__init__(launcher, **options)

    def _model_sizes(self, spec):
        return 0, spec["n_features"]

    def _job(self, settings):
        return (MRTreeAllReduce, self.initial_state.vector()[None, :],
                {"trees": self.initial_state.header(), "allreduce": settings})

    def sum_vector(self, job_class, thetas, task):
        """One histogram pass: ``task["trees"]`` and ``thetas`` (1, L) are the pass's state,
        ``task["length"]`` the length of one partition's vector."""
        if job_class is not MRTreeHistograms:
            raise ValueError("This AllReduce session serves MRTreeHistograms passes. Got "
                             f"{job_class.__name__}.")
        points = np.ascontiguousarray(thetas, dtype=np.float64).ravel()
        return self.serve_pass({"type": "pass", "trees": task["trees"]}, points, int(task["length"]))
