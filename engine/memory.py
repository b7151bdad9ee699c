"""What a training holds in the driver's memory, estimated before its first pass, and the limit it must fit.

Every family states its size the same way, as a :class:`TrainingSize`: the option that sets it, how many
models train side by side (a grid's members), the float64 values each model holds (its parameters, its
optimizer's state, one pass's trial points and their evaluations, and the copies a checkpoint write makes),
the values held once for all of them (statistics, candidate centres) and a measured overhead per model.
Every training goes through :func:`check_training_size` before its lock, its first job and its first
parameter vector, so that a model or grid that cannot fit is one line naming the option and the estimate
instead of a run that grows until the kernel's out-of-memory killer stops it.

The estimate is of the driver (the process running ``mrtrain train``); map tasks hold their partition and
the shipped points, bounded elsewhere (the dataset limits and ``--reducers``).
"""

import math
import os
from typing import NamedTuple

#: Most driver memory a training may plan to hold, whatever the machine has (``MRTRAIN_MAX_TRAINING_BYTES``
#: overrides it).
MAX_TRAINING_BYTES = 32 * 2**30
#: Driver memory of each model of a grid besides its float64 vectors (its status, records, row of the
#: table, its share of every pass's job arguments and checkpoint meta), measured: a 2-fold grid of
#: ``--reg-path 100`` against one of 400 (900 members more, 5 iterations, p = 5) peaks 514 MB higher,
#: 570 kB a member.
MODEL_OVERHEAD_BYTES = 512 * 2**10
#: Copies of the optimizer state a checkpoint write holds beside it: the writer's snapshot and the encoded
#: file (:mod:`mrtrain.storage.checkpoint_writer`).
CHECKPOINT_COPIES = 2
#: Where the machine's available memory is read (Linux); elsewhere only :data:`MAX_TRAINING_BYTES` applies.
MEMINFO = "/proc/meminfo"


class TrainingSize(NamedTuple):
    """The driver memory a training will hold, by what sets it.

    Attributes
    ----------
    option : str
        The parameter that sets the size, as named in errors (``"layers"``, ``"reg_path"``, ``"k"``).
    value : object
        Its value, as given.
    n_params : int
        Parameters of one model.
    models : int
        Models trained side by side (1, or a grid's members).
    floats_per_model : int
        float64 values each model holds (:func:`model_floats`).
    shared_floats : int
        float64 values held once (statistics vectors, candidate centres).
    overhead : int
        Bytes per model besides its vectors (:data:`MODEL_OVERHEAD_BYTES` for a grid's members, else 0).
    """

    option: str
    value: object
    n_params: int
    models: int
    floats_per_model: int
    shared_floats: int = 0
    overhead: int = 0

    @property
    def bytes(self):
        """The estimate in bytes."""
        return 8 * (self.models * self.floats_per_model + self.shared_floats) + self.models * self.overhead


def model_floats(optimizer, n_params, *, groups=1, checkpoint=True):
    """float64 values one model trained by ``optimizer`` holds: its state, one pass's plan and evaluations
    (``groups`` sums per trial point in a grid's pass), and :data:`CHECKPOINT_COPIES` more of its state when
    ``checkpoint``."""
    state = optimizer.state_floats(n_params)
    return state * (1 + (CHECKPOINT_COPIES if checkpoint else 0)) + groups * optimizer.pass_floats(n_params)


def available_memory(meminfo=MEMINFO):
    """The machine's available memory in bytes (``MemAvailable`` of ``/proc/meminfo``), or None where it
    cannot be read."""
    try:
        with open(meminfo, encoding="ascii") as lines:
            for line in lines:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def training_limit():
    """:data:`MAX_TRAINING_BYTES`, or ``$MRTRAIN_MAX_TRAINING_BYTES`` when set (an int > 0)."""
    text = os.environ.get("MRTRAIN_MAX_TRAINING_BYTES")
    if text is None:
        return MAX_TRAINING_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"The MRTRAIN_MAX_TRAINING_BYTES environment variable must be an int > 0 (bytes). "
                         f"Got {text!r} instead.")
    return value


def human_bytes(count):
    """``"1.5 GiB"``-style text of a byte count."""
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    exponent = min(int(math.log(count, 1024)) if count >= 1024 else 0, len(units) - 1)
    return f"{count}" + " bytes" if exponent == 0 else f"{count / 1024**exponent:.3g} {units[exponent]}"


def check_training_size(size, *, limit=None, available=None):
    """Refuse a training whose :class:`TrainingSize` exceeds the limit or the machine's available memory.

    Parameters
    ----------
    size : TrainingSize
    limit : int, optional
        Bytes; default :func:`training_limit`.
    available : int, optional
        Bytes; default :func:`available_memory` (None where unknown: only ``limit`` applies).

    Raises
    ------
    ValueError
        One line naming the parameter, its value, the estimate and what it was compared with.
    """
    limit = training_limit() if limit is None else limit
    available = available_memory() if available is None else available
    estimate = size.bytes
    if estimate <= limit and (available is None or estimate <= available):
        return
    if available is not None and available < limit:
        bound = f"the {human_bytes(available)} of memory this machine has available (MemAvailable)"
    else:
        bound = f"the limit of {human_bytes(limit)} (MAX_TRAINING_BYTES, or $MRTRAIN_MAX_TRAINING_BYTES)"
    models = f"{size.models} models x " if size.models > 1 else ""
    raise ValueError(
        f"The {size.option!r} parameter ({size.value!r}) makes a training that would hold about "
        f"{human_bytes(estimate)} in the driver ({models}{size.n_params} parameters, with the optimizer's "
        f"state, a pass's trial points and the checkpoint copies), more than {bound}; choose a smaller "
        f"{size.option!r}"
    )


def optimizer_training_size(option, value, n_params, optimizer, *, models=1, groups=1, checkpoint=True):
    """The :class:`TrainingSize` of ``models`` models of ``n_params`` parameters trained by ``optimizer``
    (the GLMs and the MLP; a grid's members, each pass summing ``groups`` row groups, with
    :data:`MODEL_OVERHEAD_BYTES` each)."""
    return TrainingSize(option, value, n_params, models,
                        model_floats(optimizer, n_params, groups=groups, checkpoint=checkpoint),
                        overhead=MODEL_OVERHEAD_BYTES if models > 1 else 0)


def statistics_training_size(option, value, n_params, statistics, partitions):
    """The :class:`TrainingSize` of a model fitted from one pass of statistics (naive Bayes): every
    partition's ``statistics`` floats, their merge, and the parameters with their checkpoint copies."""
    return TrainingSize(option, value, n_params, 1, n_params * (1 + CHECKPOINT_COPIES),
                        shared_floats=statistics * (partitions + 1))


def clustering_training_size(k, d, *, init_steps=None, starts=1):
    """The :class:`TrainingSize` of k-means with ``k`` centres of ``d`` features and ``starts`` k-means||
    starts run side by side: each start's centres, the next ones and the checkpoint copies, a pass's
    statistics (:func:`~mrtrain.engine.kmeans.statistics_length`), and with k-means|| (``init_steps``) its
    candidates, about ``1 + 2k`` rows a step, and their statistics."""
    centers = k * d
    candidates = 0 if init_steps is None else (1 + 2 * k * init_steps) * (d + 1)
    return TrainingSize("k", k, centers, starts, centers * (2 + CHECKPOINT_COPIES) + 3 * k + centers + 1,
                        shared_floats=2 * candidates)
