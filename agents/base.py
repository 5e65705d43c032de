"""The agent protocol (what every influmatch policy offers, the interface SB3 models already have)."""

from __future__ import annotations

import inspect
from typing import Any


def accepts_action_masks(agent: Any) -> bool:
    """Whether ``agent.predict`` takes ``action_masks=`` (MaskablePPO, CQI, the heuristics...)."""
    try:
        return "action_masks" in inspect.signature(agent.predict).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False
