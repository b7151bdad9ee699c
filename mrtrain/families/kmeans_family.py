"""The k-means family: k-means|| initialisation, then one Lloyd pass per iteration.

:class:`KMeansFamily` is what :meth:`mrtrain.trainer.Trainer.fit` runs for ``model="kmeans"``. Every
pass is one :class:`mrtrain.mr_jobs.kmeans_job.MRKMeans` job (the math: :mod:`mrtrain.engine.kmeans`):

1. Initial centres: the given ones (``init_centers=`` an array, or a ``.npy`` / CSV file), or k-means|| with
   ``init_steps`` steps (Spark's default, 2) and oversampling ``l = 2k``: a map-only pass fetches the first
   centre, a row drawn uniformly with the seeded generator; each step is a statistics pass (the cost
   ``φ = Σ s·d²`` at the candidates so far) and a map-only sampling pass; a last statistics pass weights the
   distinct candidates by the weight of the rows nearest them; the driver reduces them to ``k`` centres
   (weighted k-means++ and weighted Lloyd steps). That is ``2 + 2·init_steps`` passes. The initial
   centres are saved as checkpoint 0.
2. Lloyd passes: each assigns every row to its nearest centre and sums the cluster statistics in partition
   order; the driver moves every centre of positive weight to its cluster's weighted mean (an empty cluster
   keeps its centre) and saves a checkpoint. The loop stops when the largest squared centre move is
   at most ``tol`` times the features' mean variance (scikit-learn's scale of ``tol``, which it applies to
   the sum of the squared moves instead of their maximum), or after ``max_iter`` passes.

3. With ``n_init = N > 1`` (k-means|| only): N starts, k-means|| with seeds ``seed .. seed + N - 1``
   (their initialisation passes one start after the other), then their Lloyd passes together: one pass
   ships every running start's centres and sums each start's statistics separately
   (:mod:`mrtrain.mr_jobs.kmeans_job`'s ``"groups"``), so a pass costs one read of the data whatever N, and
   start ``seed`` follows exactly the path of an ``n_init = 1`` run. A start stops on its own rule; one
   more pass computes every start's inertia at its final centres, and the lowest wins (the first on a
   tie), as in scikit-learn's ``n_init``. Only the winner is checkpointed, once all starts have finished
   (an interrupted run starts over); its ``settings`` record ``n_init``, ``best_seed`` and every start's
   ``start_inertias``.

A checkpoint holds the centres, the rows nearest each centre in the last pass, and in ``meta["kmeans"]``
that pass's largest squared move (``shift``) and its stopping threshold; a rerun with the same data and
settings resumes from the newest one and ends with bitwise the same centres. ``history`` is the inertia of
every Lloyd pass's assignment (at the centres before its update), so ``objective`` is the inertia of the
centres before the last update; ``evaluate`` gives that of the final ones. The progress line shows the
inertia and the largest squared centre move (:data:`PROGRESS_LABELS`).
"""

import hashlib
import io
import logging
import time
from typing import NamedTuple

import numpy as np

from mrtrain.cli_types import int_at_least
from mrtrain.engine.kmeans import (
    ClusterStatistics,
    first_center_row,
    reduce_candidates,
    statistics_length,
    update_centers,
)
from mrtrain.engine.loop import Progress
from mrtrain.engine.memory import check_training_size, clustering_training_size
from mrtrain.engine.overflow import check_finite
from mrtrain.engine.params import check_int, check_number
from mrtrain.engine.registry import make_model
from mrtrain.families.family import Config, Family
from mrtrain.families.options import MODEL, add_seed_option, add_stopping_options
from mrtrain.fitted import FittedModel
from mrtrain.mr_jobs.kmeans_job import MRKMeans
from mrtrain.names import dataset_names
from mrtrain.storage.filesystem import get_filesystem
from mrtrain.training.checkpoint_schema import KMEANS_CENTERS, KMEANS_SIZES, training_meta
from mrtrain.training.partitions import non_finite_partitions

log = logging.getLogger(__name__)

#: The ``init_centers`` setting of a run initialised by k-means||.
KMEANS_PARALLEL = "k-means||"
#: Settings that must match for a k-means checkpoint to be resumed.
KMEANS_RESUME_KEYS = ("model", "k", "seed", "init_centers", "init_steps", "n_init", "n_features",
                      "data_checksum")
#: Largest file of initial centres read.
MAX_INIT_BYTES = 256 * 1024**2


class KMeansStatus(NamedTuple):
    """Everything the Lloyd loop needs to continue: checkpointed after every pass.

    Attributes
    ----------
    centers : ndarray of shape (k, d)
    iteration : int
        Lloyd passes done.
    passes : int
        Data passes done, the initialisation's included.
    history : tuple of float
        Inertia of every Lloyd pass's assignment.
    sizes : ndarray of shape (k,)
        Rows nearest each centre in the last Lloyd pass (zeros before the first).
    shift : float or None
        The last update's largest squared centre move.
    threshold : float or None
        ``tol`` times the features' mean variance, from the last pass.
    """

    centers: np.ndarray
    iteration: int
    passes: int
    history: tuple
    sizes: np.ndarray
    shift: float | None
    threshold: float | None


def kmeans_stop_reason(status, max_iter):
    """``(reason, converged)`` when the loop should stop, else None."""
    if status.iteration > 0 and status.shift <= status.threshold:
        return "centre shift <= tol", True
    if status.iteration >= max_iter:
        return "max_iter reached", False
    return None


def load_centers(uri):
    """Initial centres from a file: ``.npy`` (numpy's format, never pickled) or comma-separated text.

    Raises
    ------
    ValueError
        If the file is neither, naming the file.
    """
    data = get_filesystem(uri).read_bytes(uri, max_bytes=MAX_INIT_BYTES)
    try:
        if data.startswith(b"\x93NUMPY"):
            return np.load(io.BytesIO(data), allow_pickle=False)
        return np.loadtxt(io.StringIO(data.decode("utf-8")), delimiter=",", ndmin=2)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{uri}: expected initial centres as a .npy array or comma-separated rows of "
                         f"numbers, found unreadable content ({' '.join(str(error).split())})") from None


def initial_centers(init, k, n_features):
    """``(centres or None, k, init_centers setting)`` from the trainer's ``init_centers`` and ``k``.

    ``init`` is None (k-means||, recorded as :data:`KMEANS_PARALLEL`), a file of centres, or an array of
    shape (k, d); given centres are recorded by their sha256, ``"sha256:<hex>"``.

    Raises
    ------
    ValueError
        For a ``k`` that is not an int >= 1 (needed with k-means||), or centres that are not finite, of
        ``n_features`` columns and, when ``k`` is given, ``k`` rows.
    """
    if init is None:
        return None, check_int("k", k, minimum=1), KMEANS_PARALLEL
    source = f" (from {init})" if isinstance(init, str) else ""
    try:
        centers = np.array(load_centers(init) if isinstance(init, str) else init, dtype=np.float64)
    except (TypeError, ValueError) as error:
        if isinstance(init, str):
            raise
        raise ValueError(f"The 'init_centers' parameter must be None (k-means||), a file or an array of "
                         f"shape (k, {n_features}). Got {type(init).__name__} instead ({error}).") from None
    if centers.ndim == 1 and n_features == 1:
        centers = centers[:, None]
    finite = bool(np.isfinite(centers).all())
    if centers.ndim != 2 or centers.shape[1] != n_features or len(centers) < 1 or not finite:
        raise ValueError(f"The 'init_centers' parameter{source} must be finite centres of shape "
                         f"(k, {n_features}) with k >= 1. Got shape {centers.shape}"
                         + ("" if finite else " with non-finite values") + " instead.")
    if k is not None and check_int("k", k, minimum=1) != len(centers):
        raise ValueError(f"The 'k' parameter must equal the number of initial centres ({len(centers)}"
                         f"{source}). Got {k!r} instead.")
    digest = hashlib.sha256(np.ascontiguousarray(centers, dtype="<f8").tobytes()).hexdigest()
    return centers, len(centers), f"sha256:{digest}"


#: What k-means (Lloyd passes, no objective gradient) leaves at its default: (parameter, default, why).
KMEANS_FIXED = (
    ("optimizer", None, "Lloyd passes, no optimizer"), ("l2", 0.0, "no penalty"), ("l1", 0.0, "no penalty"),
    ("standardize", False, "no penalty to standardize for"), ("fit_intercept", True, "centres, no intercept"),
    ("warm_start", False, "init_centers gives the starting centres"),
    ("smoothing", None, "not naive Bayes"), ("init", "zeros", "init_centers gives the starting centres"),
    ("gtol", 1e-6, "no gradient: tol stops the Lloyd passes"), ("precondition", True, "no optimizer"),
)
#: What a k-means progress line shows (:class:`mrtrain.engine.loop.Progress` ``labels``): no step.
PROGRESS_LABELS = ("inertia", "max centre shift²", None)
#: k-means' own parameters with their defaults.
KMEANS_PARAMETERS = {"k": None, "seed": 0, "init_centers": None, "init_steps": 2, "n_init": 1}


class KMeansFamily(Family):
    """k-means: k-means|| (or given centres), then Lloyd passes (see the module docstring)."""

    models = ("kmeans",)
    parameters = {**KMEANS_PARAMETERS, "max_iter": 100, "tol": 1e-8,
                  # Fixed at their defaults (KMEANS_FIXED): no gradient, no optimizer.
                  "gtol": 1e-6, "precondition": True}
    allreduce_refused = "one job per pass"
    report_style = "clusters"
    cli_refused = (("optimizer", "l1", "l2", "reg", "elastic_net", "smoothing"),
                   "is trained by Lloyd passes and has no optimizer, penalty or smoothing")
    paths = ("init_centers",)

    def config(self, model, values):
        for name, default, reason in KMEANS_FIXED:
            value = values[name]
            if value != default:
                raise ValueError(f"The {name!r} parameter does not apply to model {model!r} ({reason}); "
                                 f"leave it at {default!r}. Got {value!r} instead.")
        if values["k"] is None and values["init_centers"] is None:
            raise ValueError(f"The 'k' parameter (--k) is required for model {model!r}: the number of "
                             "centres, an int >= 1 (or give 'init_centers', --init-centers FILE). "
                             "Got neither.")
        if values["k"] is not None:
            check_int("k", values["k"], minimum=1)
        check_int("seed", values["seed"], minimum=0)
        check_int("init_steps", values["init_steps"], minimum=1)
        check_int("n_init", values["n_init"], minimum=1)
        if values["n_init"] > 1 and values["init_centers"] is not None:
            raise ValueError(f"The 'n_init' parameter needs k-means|| starts: with 'init_centers' there is "
                             f"one start. Got n_init={values['n_init']!r} instead.")
        check_int("max_iter", values["max_iter"], minimum=1)
        check_number("tol", values["tol"], minimum=0)
        return Config(model, **{name: values[name] for name in self.parameters})

    def add_options(self, groups):
        groups.add(MODEL, "--k", type=int_at_least(1, "k"),
                   help="kmeans: number of centres (at most the rows)")
        add_seed_option(groups)
        groups.add(MODEL, "--init-centers", metavar="FILE",
                   help="kmeans: initial centres instead of k-means||, a .npy array or CSV rows of numbers "
                        "(k x features; --k may be left out)")
        groups.add(MODEL, "--init-steps", type=int_at_least(1, "init_steps"),
                   help="kmeans: k-means|| sampling steps (Spark's initSteps). Default: 2")
        groups.add(MODEL, "--n-init", type=int_at_least(1, "n_init"), metavar="N",
                   help="kmeans: keep the best (lowest inertia) of N k-means|| starts, seeds --seed .. "
                        "--seed + N - 1, their Lloyd passes shared (one pass serves all). Default: 1")
        add_stopping_options(groups)

    def summary(self, result):
        """A k-means model directory's ``inspect`` result: k, the initialisation, the centres and their
        sizes."""
        settings = result["settings"]
        checkpoints = result["checkpoints"]
        status = "converged" if result["converged"] else "stopped before converging"
        init = settings["init_centers"]
        lines = [
            f"model        kmeans, k {settings['k']}, {settings['n_features']} features",
            f"trained on   {settings['data']} (dataset checksum {settings['data_checksum'][:12]})",
            "init         " + (f"k-means|| (seed {settings['seed']}, {settings['init_steps']} steps)"
                                if init == "k-means||" else f"given centres ({init[:19]})")
            + (f"; best of {settings['n_init']} starts: seed {settings['best_seed']}"
               if settings.get("n_init", 1) > 1 and "best_seed" in settings else ""),
            f"result       {status} after {result['iterations']} Lloyd passes ({result['passes']} passes): "
            f"{result['stop_reason']}",
            f"inertia      {result['objective']:.12g} (last pass)",
            f"checkpoints  {len(checkpoints)}" + (f" (iterations {checkpoints[0]}-{checkpoints[-1]})"
                                                 if checkpoints else ""),
            "centres (rows nearest each in the last pass, then the centre):",
        ]
        pairs = zip(result["cluster_sizes"], result["centers"], strict=True)
        lines += [f"  {index:>4}  {size:>10}  " + " ".join(f"{value:.6g}" for value in center)
                  for index, (size, center) in enumerate(pairs)]
        return "\n".join(lines)

    def fit(self, run, config):
        """Train k-means on ``run.dataset`` (see the module docstring).

        Returns
        -------
        FittedModel
        """
        dataset = run.dataset
        d = dataset.n_features
        given, k, init = initial_centers(config.init_centers, config.k, d)
        if k > dataset.n_rows:
            raise ValueError(f"The 'k' parameter must be an int <= the number of rows ({dataset.n_rows}) of "
                             f"{dataset.uri}. Got {k} instead.")
        steps = config.init_steps if given is None else None
        check_training_size(clustering_training_size(k, d, init_steps=steps, starts=config.n_init))
        model = make_model("kmeans", d)
        settings = {
            "model": "kmeans", "optimizer": None, "l2": 0.0, "l1": 0.0, "standardize": False,
            "fit_intercept": True, "n_features": d, "classes": None, "data": dataset.uri,
            "data_checksum": dataset.checksum, "encoding": dataset.encoding_digest, "k": k,
            "seed": config.seed, "init_centers": init, "init_steps": config.init_steps,
            **dataset_names(dataset),
        }
        if config.n_init > 1:
            settings["n_init"] = config.n_init

        def save(status):
            verdict = kmeans_stop_reason(status, config.max_iter)
            meta = training_meta(settings, status.iteration, status.passes, status.history, verdict=verdict,
                                 kmeans={"shift": status.shift, "threshold": status.threshold})
            run.save(status.iteration, {KMEANS_CENTERS: status.centers, KMEANS_SIZES: status.sizes}, meta)

        with run.open(model.spec(), reducers=run.reducers(statistics_length(1, d), "k-means statistics")):
            status = resumed_status(run, settings)
            launcher = run.launcher
            if status is None and config.n_init > 1:
                status, best, inertias = best_of_starts(launcher, dataset, k, config, run.callback)
                settings.update(best_seed=config.seed + best, start_inertias=inertias)
                save(status)
            if status is None:
                if given is None:
                    centers, passes = kmeans_parallel(launcher, dataset, k, config.seed, config.init_steps)
                else:
                    centers, passes = given, 0
                status = KMeansStatus(centers, 0, passes, (), np.zeros(k), None, None)
                save(status)
            while (verdict := kmeans_stop_reason(status, config.max_iter)) is None:
                started = time.perf_counter()
                status = lloyd_step(status, cluster_pass(launcher, status.centers), config.tol,
                                    status.passes + 1, dataset.uri)
                shift = status.shift
                save(status)
                progress = Progress(status.iteration, status.history[-1], shift, shift,
                                    time.perf_counter() - started, status.passes, True,
                                    labels=PROGRESS_LABELS)
                log.info("iteration %d  inertia %.12g  largest squared centre move %.3e  %.2fs",
                         progress.iteration, progress.objective, shift, progress.seconds)
                if run.callback is not None:
                    run.callback(progress)
        reason, converged = verdict
        if not converged:
            log.warning("k-means stopped before converging (%s) after %d Lloyd passes; raise max_iter or "
                        "loosen tol.", reason, status.iteration)
        return FittedModel(model, status.centers.ravel(), l2=0.0, iterations=status.iteration,
                           passes=status.passes, history=status.history, converged=converged,
                           stop_reason=reason, settings=settings, cluster_sizes=status.sizes)


def resumed_status(run, settings):
    """The :class:`KMeansStatus` of the newest valid checkpoint of ``run``, or None (run open).

    Raises
    ------
    SettingsMismatchError
        If that checkpoint was made with other data or settings.
    """
    checkpoint, _ = run.resume(settings, KMEANS_RESUME_KEYS)
    if checkpoint is None:
        return None
    meta = checkpoint.meta
    log.info("resuming from %s (iteration %d)", checkpoint.uri, meta["iteration"])
    return KMeansStatus(checkpoint.arrays[KMEANS_CENTERS], meta["iteration"], meta["passes"],
                        tuple(meta["history"]), checkpoint.arrays[KMEANS_SIZES], meta["kmeans"]["shift"],
                        meta["kmeans"]["threshold"])


def cluster_pass(launcher, centers):
    """One statistics pass at ``centers``: a :class:`ClusterStatistics`.

    Raises
    ------
    OverflowDataError
        If a sum is not finite (squared distances of features beyond about 1e150), naming the partitions.
    """
    vector = launcher.sum_vector(MRKMeans, centers, {"pass": "statistics"})
    dataset = launcher.dataset
    check_finite(f"{dataset.uri}: the k-means statistics (sums of squared distances to {len(centers)} "
                 "centres)", vector, where=non_finite_partitions(launcher, dataset))
    return ClusterStatistics(vector, *centers.shape)


def grouped_cluster_pass(launcher, center_sets):
    """One statistics pass at every set of centres in ``center_sets`` (each (k, d), the same k): one
    :class:`ClusterStatistics` per set, each bitwise that of :func:`cluster_pass` at that set alone."""
    if len(center_sets) == 1:
        return [cluster_pass(launcher, center_sets[0])]
    k, d = center_sets[0].shape
    vector = launcher.sum_vector(MRKMeans, np.concatenate(center_sets),
                                 {"pass": "statistics", "groups": len(center_sets)})
    dataset = launcher.dataset
    check_finite(f"{dataset.uri}: the k-means statistics (sums of squared distances to {len(center_sets)} "
                 f"sets of {k} centres)", vector, where=non_finite_partitions(launcher, dataset))
    return [ClusterStatistics(piece, k, d) for piece in np.split(vector, len(center_sets))]


def lloyd_step(status, statistics, tol, passes, uri):
    """The :class:`KMeansStatus` after a Lloyd pass whose statistics at ``status.centers`` are
    ``statistics``; an :class:`~mrtrain.engine.overflow.OverflowDataError` naming the dataset ``uri`` when the
    new centres, their moves, the inertia or the stopping threshold are not finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        centers, shift = update_centers(statistics, status.centers)
        inertia = float(statistics.inertia.sum())
        threshold = tol * statistics.mean_variance()
    check_finite(f"{uri}: the centres of Lloyd pass {status.iteration + 1}, their moves and inertia", centers,
                 shift, inertia, threshold)
    return KMeansStatus(centers, status.iteration + 1, passes, status.history + (inertia,),
                        statistics.rows.copy(), shift, threshold)


def best_of_starts(launcher, dataset, k, config, callback):
    """``n_init`` k-means|| starts run to their stopping rule with shared Lloyd passes (module docstring,
    3.): ``(the best start's final status, its index, every start's final inertia)``."""
    starts, passes = [], 0
    for i in range(config.n_init):
        centers, used = kmeans_parallel(launcher, dataset, k, config.seed + i, config.init_steps)
        passes += used
        starts.append(KMeansStatus(centers, 0, 0, (), np.zeros(k), None, None))
    while active := [i for i, start in enumerate(starts)
                     if kmeans_stop_reason(start, config.max_iter) is None]:
        started = time.perf_counter()
        passes += 1
        for i, statistics in zip(active, grouped_cluster_pass(launcher, [starts[i].centers for i in active]),
                                 strict=True):
            starts[i] = lloyd_step(starts[i], statistics, config.tol, passes, dataset.uri)
        lowest = min(starts[i].history[-1] for i in active)
        shift = max(starts[i].shift for i in active)
        log.info("Lloyd pass %d of %d running starts: lowest inertia %.12g, largest squared centre move "
                 "%.3e  %.2fs", max(starts[i].iteration for i in active), len(active), lowest, shift,
                 time.perf_counter() - started)
        if callback is not None:
            callback(Progress(max(starts[i].iteration for i in active), lowest, shift, shift,
                              time.perf_counter() - started, passes, True, labels=PROGRESS_LABELS))
    inertias = [float(statistics.inertia.sum())
                for statistics in grouped_cluster_pass(launcher, [start.centers for start in starts])]
    passes += 1
    best = int(np.argmin(inertias))
    log.info("best of %d k-means|| starts: seed %d, inertia %.12g (starts: %s)", config.n_init,
             config.seed + best, inertias[best], ", ".join(f"{value:.6g}" for value in inertias))
    return starts[best]._replace(passes=passes), best, inertias


def sampled_rows(launcher, dataset, centers, task):
    """The rows a map-only ``"sample"`` pass keeps, partitions in order: (m, d)."""
    # One piece per partition, whatever the launcher's reducers: the driver concatenates them.
    records = launcher.run(MRKMeans, centers, {"pass": "sample", "shards": 1, **task}, ["--map-only"],
                           reducers=0)
    tagged = sorted((value for _, value in records), key=lambda item: item[0])
    expected = [part.index for part in dataset.partitions]
    if [partition_id for partition_id, _ in tagged] != expected:
        raise RuntimeError(f"MRKMeans sampled partitions {[i for i, _ in tagged]}; expected {expected}, each "
                           "once.")
    rows = np.concatenate([vector for _, vector in tagged])
    return rows.reshape(-1, dataset.n_features)


def kmeans_parallel(launcher, dataset, k, seed, steps):
    """k-means|| (see the module docstring): ``(centres (k, d), passes)``."""
    partitions = dataset.partitions
    position, row = first_center_row(seed, [part.rows for part in partitions])
    candidates = sampled_rows(launcher, dataset, np.zeros((1, dataset.n_features)),
                              {"pick": [partitions[position].index, row]})
    passes = 1
    for step in range(1, steps + 1):
        phi = float(cluster_pass(launcher, candidates).inertia.sum())
        new = sampled_rows(launcher, dataset, candidates,
                           {"seed": seed, "step": step, "phi": phi, "oversampling": 2.0 * k})
        candidates = np.concatenate([candidates, new])
        passes += 2
        log.info("k-means|| step %d: cost %.12g, %d rows sampled, %d candidates", step, phi, len(new),
                 len(candidates))
    candidates = np.unique(candidates, axis=0)
    weights = cluster_pass(launcher, candidates).weight
    passes += 1
    return reduce_candidates(candidates, weights, k, seed), passes
