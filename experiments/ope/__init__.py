"""Off-policy evaluation: what a candidate match policy would earn, estimated from logged matches.

- :mod:`~experiments.ope.logs`: the logged-data format, reading, writing and validation;
- :mod:`~experiments.ope.policies`: policies with exact action probabilities (logging and target);
- :mod:`~experiments.ope.generation`: logs generated in the simulator;
- :mod:`~experiments.ope.config`: the estimators' options;
- :mod:`~experiments.ope.models`: cross-fitted reward models and fitted-Q evaluation;
- :mod:`~experiments.ope.estimators`: IPS, SNIPS, DM, DR (one class each) with bootstrap intervals and
  the brand, goal and segment breakdown;
- :mod:`~experiments.ope.truth`: the true value in the simulator;
- :mod:`~experiments.ope.pipeline`: all of it end to end, as ``influmatch ope`` runs it.
"""
