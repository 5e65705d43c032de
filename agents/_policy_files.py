"""The JSON file of the reference policies, the heuristics and the bandit (``save`` / ``load``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The ``format`` field of the file. It names the module these classes were first written in; it stays
#: so that files saved before they moved still load (and new files stay byte-identical to old ones).
SAVE_FORMAT = "influmatch.agents.baselines"
SAVE_VERSION = 1


def write_policy_file(path: str | Path, class_name: str, body: dict[str, Any]) -> None:
    """Write ``body`` (``params``, ``state``...) under the format header for class ``class_name``."""
    data = {"format": SAVE_FORMAT, "version": SAVE_VERSION, "class": class_name, **body}
    Path(path).write_text(
        json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8"
    )


def read_policy_file(path: str | Path, expected_class: str) -> dict[str, Any]:
    """The content of a file written by :func:`write_policy_file` for ``expected_class``; ``ValueError``
    naming the file if it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a saved influmatch policy ({err})") from err
    if not isinstance(data, dict) or data.get("format") != SAVE_FORMAT:
        raise ValueError(f"{path}: not a saved influmatch policy (expected format {SAVE_FORMAT!r})")
    if data.get("version") != SAVE_VERSION:
        raise ValueError(f"{path}: unsupported file version {data.get('version')!r}")
    if data.get("class") != expected_class:
        raise ValueError(f"{path}: holds a {data.get('class')}, not a {expected_class}")
    return data
