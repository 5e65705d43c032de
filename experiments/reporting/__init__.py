"""What a product team reads: figures drawn from saved files, the HTML report of a sweep, and a tree's
rules in plain language.

- :mod:`~experiments.reporting.figures`: segment figures, learning curves, final scores, CQI's
  size-score trade-off, off-policy estimates;
- :mod:`~experiments.reporting.trees`: a run's CQI tree, read from its files and drawn;
- :mod:`~experiments.reporting.rules`: a tree's tests and actions in plain words (features read through
  their typed specs);
- :mod:`~experiments.reporting.report`: the self-contained HTML report of a sweep.
"""
