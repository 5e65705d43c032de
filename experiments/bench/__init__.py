"""Speed benchmarks, each measured against a reference in the same run (``influmatch bench``).

- :mod:`~experiments.bench.benchmarks`: every benchmark of the project and the records they return;
- :mod:`~experiments.bench.matching`: the matching layer's benchmarks (retrieval, COP-KMeans) and their
  synthetic data.
"""
