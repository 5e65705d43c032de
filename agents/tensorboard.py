"""TensorBoard for every agent through the one logger they share (Stable-Baselines3's ``Logger``).

SB3 agents and the agents on :class:`agents.base.BaseAgent` (CQI, the logistic bandit, ...) all take
``set_logger``, and all record the same scalars through it (``rollout/ep_rew_mean``,
``rollout/ep_len_mean``, ``time/fps``, plus what each algorithm adds), so one call gives any agent a
TensorBoard folder: ``agent.set_logger(tensorboard_logger(folder, run_name))``. Needs the
``tensorboard`` package (what SB3's TensorBoard output imports).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stable_baselines3.common.logger import Logger

__all__ = ["require_tensorboard", "tensorboard_logger"]


def require_tensorboard() -> None:
    """Check that the ``tensorboard`` package (what SB3's TensorBoard output imports) is installed.

    Raises
    ------
    ValueError
        If it is not, with the command that installs it.
    """
    try:
        import tensorboard  # noqa: F401 - SB3's TensorBoard output needs it
    except ImportError as err:
        raise ValueError("tensorboard: the package is not installed (pip install tensorboard)") from err


def tensorboard_logger(folder: str | Path, run_name: str, *, stdout: bool = False) -> Logger:
    """An SB3 ``Logger`` writing TensorBoard events to ``folder / run_name`` (and its table to stdout
    when ``stdout``). ``run_name`` keeps runs apart in one folder (``"ppo_seed0"``), as
    ``tensorboard --logdir folder`` shows them side by side.

    Raises
    ------
    ValueError
        If the ``tensorboard`` package is missing, or ``run_name`` is empty or not a plain name.
    """
    if not run_name or Path(run_name).name != run_name:
        raise ValueError(f"run_name: expected a plain folder name, got {run_name!r}")
    require_tensorboard()
    from stable_baselines3.common.logger import configure

    return configure(str(Path(folder) / run_name), ["tensorboard", *(["stdout"] if stdout else [])])
