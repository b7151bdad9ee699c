"""k-means on the higgs data (1M x 28): mrtrain's k-means|| and Lloyd passes against scikit-learn's KMeans.

Run ``python3 -m benchmarks.kmeans [--k K] [--max-iter N] [--quick]`` (full size: about a minute on 2 cores).
mrtrain trains on the local runner with map-only jobs (``--reducers 0``) and evaluates the inertia of its
final centres with the evaluate job; scikit-learn's ``KMeans(algorithm="lloyd", n_init=1)`` runs in memory
on the same rows with the same ``k``, ``max_iter`` and ``tol`` (its k-means++ initialisation). Prints one
line per system: seconds, passes (mrtrain) or iterations, and the inertia.
"""

import argparse
import time

from sklearn.cluster import KMeans

from benchmarks.data import FULL, QUICK, ensure_dataset
from mrtrain.engine.trainer import Trainer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--quick", action="store_true", help="the 20,000-row higgs data")
    args = parser.parse_args(argv)
    problem = next(p for p in (QUICK if args.quick else FULL) if p.name == "higgs")
    dataset = ensure_dataset(problem)
    started = time.perf_counter()
    fitted = Trainer("kmeans", k=args.k, seed=0, max_iter=args.max_iter, tol=args.tol, runner="local",
                     reducers=0).fit(dataset.uri)
    seconds = time.perf_counter() - started
    metrics = fitted.evaluate(dataset.uri, runner="local", reducers=0)
    print(f"mrtrain local k={args.k}: {seconds:.1f} s, {fitted.n_passes_} passes ({fitted.n_iter_} Lloyd, "
          f"{fitted.stop_reason_}), inertia {metrics['inertia']:.6g}")
    X, _, _ = dataset.read_all()
    started = time.perf_counter()
    reference = KMeans(args.k, n_init=1, random_state=0, algorithm="lloyd", max_iter=args.max_iter,
                       tol=args.tol).fit(X)
    print(f"scikit-learn KMeans n_init=1: {time.perf_counter() - started:.1f} s, {reference.n_iter_} "
          f"iterations, inertia {reference.inertia_:.6g}")


if __name__ == "__main__":
    main()
