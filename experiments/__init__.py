"""Experiments: training runs, sweeps, evaluation, statistics, off-policy evaluation, reports, benchmarks.

The core, at the top of this package: :mod:`~experiments.config` (experiment configs),
:mod:`~experiments.runner` (one run folder), :mod:`~experiments.sweep` (many runs, resumably),
:mod:`~experiments.evaluation` (fixed evaluation campaigns, the normalised score),
:mod:`~experiments.stats` (IQM, bootstrap intervals, probability of improvement),
:mod:`~experiments.files` (output folders, atomic writes), :mod:`~experiments.options` (``KEY=VALUE``
options) and :mod:`~experiments.segments` (the files of a segmentation).

Subpackages: :mod:`experiments.ope` (off-policy evaluation from logged matches),
:mod:`experiments.reporting` (figures, the HTML report, a tree's rules in plain language),
:mod:`experiments.bench` (the speed benchmarks) and :mod:`experiments.cli` (the ``influmatch``
commands, one thin module each; nothing else imports it).
"""
