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
    """Stop with one line (the parser's usage error) when a file the study writes into ``out`` exists,
    unless ``overwrite``; also when ``out`` is a file."""
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out}: a file of that name exists; expected a folder")
    existing = [name for name in names if (out / name).exists()]
    if existing and not overwrite:
        parser.error(f"--out {out}: {existing[0]} exists (an earlier run); pass --overwrite to replace it")
