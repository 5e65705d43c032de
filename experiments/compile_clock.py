"""Wall-clock accounting of a run: the seconds numba spends compiling, apart from training and
evaluation (a first run after an install compiles the environment's and CQI's kernels)."""

from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["CompileClock"]


class CompileClock:
    """Seconds numba spends compiling while the clock is entered (``numba:compile`` events, nested ones
    counted once), so that a run's first, compiling call is not counted as training or evaluation."""

    def __init__(self) -> None:
        self.total = 0.0
        self._stack: Any = None

    def _add(self, seconds: float) -> None:
        self.total += seconds

    def __enter__(self) -> CompileClock:
        from numba.core import event

        self._stack = contextlib.ExitStack()
        self._stack.enter_context(event.install_timer("numba:compile", self._add))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None
