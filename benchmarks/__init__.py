"""Benchmarks of mrtrain against scikit-learn and Spark MLlib: ``python3 -m benchmarks.run [--quick]``.

``data`` makes the seeded datasets, ``objective`` scores any system's coefficients with mrtrain's own
objective, ``systems`` trains each system to the common target, ``mapper`` and ``overhead`` measure the map
task and the local runner's per-pass cost, ``report`` prints the table and writes the JSON.
"""
