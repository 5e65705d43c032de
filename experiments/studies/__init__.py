"""Studies behind figures and tables the README quotes; each is a script a user can rerun
(``python -m experiments.studies.<name>``) and writes its results as CSV/markdown."""
