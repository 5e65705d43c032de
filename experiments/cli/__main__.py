"""``python -m experiments.cli COMMAND ...``: the ``influmatch`` command line."""

from experiments.cli import main

raise SystemExit(main())
