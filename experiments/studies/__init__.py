"""Studies behind figures and tables the README quotes; each is a script a user can rerun
(``python -m experiments.studies.<name>``) and writes its results as CSV/markdown. None replaces results
of an earlier run without ``--overwrite``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    """The ``--overwrite`` flag of a study."""
    parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run")


def refuse_existing(
    parser: argparse.ArgumentParser, out: Path, names: Sequence[str], overwrite: bool
) -> None:
    """Stop with one line (the parser's usage error) where :func:`experiments.files.check_output`
    refuses: ``out`` is not a folder, or a file the study writes into it holds an earlier run's results
    and ``overwrite`` is not given."""
    from experiments.files import check_output

    try:
        check_output(out, True, folder=True)
        for name in names:
            check_output(out / name, overwrite, folder=False)
    except (OSError, ValueError) as err:
        parser.error(str(err))
