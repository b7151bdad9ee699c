"""The online initialisation pass (``init="online"``): one job, averaged into the optimizer's first point.

The job is :class:`mrtrain.mr_jobs.online_init.MROnlineInit`; the settings it runs with and the averaging
are :mod:`mrtrain.engine.start_point`'s.
"""

import numpy as np

from mrtrain.engine.start_point import BATCH_ROWS, LEARNING_RATE, averaged_point
from mrtrain.mr_jobs.online_init import MROnlineInit


def online_initial_point(launcher, model, l2):
    """θ₀ from one online epoch per partition, averaged by weight (one job on ``launcher``).

    Parameters
    ----------
    launcher : mrtrain.launcher.JobLauncher
    model : mrtrain.engine.models.Model
    l2 : float

    Returns
    -------
    ndarray, shape (model.n_params,)
    """
    settings = {"l2": float(l2), "learning_rate": LEARNING_RATE, "batch_rows": BATCH_ROWS}
    vector = launcher.sum_vector(MROnlineInit, np.zeros((1, model.n_params)), {"online": settings})
    return averaged_point(vector)
