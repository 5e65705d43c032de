"""``KEY=VALUE`` options from the command line: environment options and agent hyperparameters.

Values are read as YAML scalars or lists (``64``, ``0.3``, ``3e-4``, ``true``, ``[64, 64]``, ``null``).
Shared by ``influmatch train`` (``--env``, ``--hp``), ``influmatch log`` and ``influmatch ope`` (``--env``),
with the ``--epsilon`` argument type of the last two.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["check_env_options", "epsilon_argument", "parse_assignments", "parse_env_options"]

#: A number in scientific notation, which YAML 1.1 (PyYAML) reads as a string unless it has a dot.
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_assignments(items: Sequence[str] | None, option: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict, each value read as YAML; ``ValueError`` naming the bad one."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(
                f"{option} '{item}': expected KEY=VALUE with a name as KEY, e.g. {option} gamma=0.9"
            )
        if not text.strip():
            raise ValueError(f"{option} {key}: expected a value after '=', got nothing")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ValueError(f"{option} {key}: cannot read '{text}' as a YAML value ({problem})") from None
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            value = float(value)
        if key in out:
            raise ValueError(f"{option} {key}: given twice")
        out[key] = value
    return out


def check_env_options(keys: Sequence[str], where: str) -> None:
    """``ValueError`` naming the first key that is not an option of the environment
    (:data:`envs.matching_env.ENV_OPTIONS`); ``where`` prefixes the message (``--env``, ``env``)."""
    from envs.matching_env import ENV_OPTIONS

    for key in keys:
        if key not in ENV_OPTIONS:
            raise ValueError(
                f"{where}: unknown environment option '{key}' (known: {', '.join(sorted(ENV_OPTIONS))})"
            )


def parse_env_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["n_segments=4", "offer_levels=[0.8, 1.0]"]`` -> options (values read as YAML, as
    ``influmatch train --env`` reads them); unknown keys raise ``ValueError`` naming them."""
    options = parse_assignments(list(pairs or ()), "--env")
    check_env_options(list(options), "--env")
    return options


def epsilon_argument(text: str) -> float | None:
    """argparse type: a number in [0, 1], or ``own`` (None)."""
    if text.strip().lower() == "own":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1] or 'own', got '{text}'") from None
    if not 0 <= value <= 1 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1] or 'own', got '{text}'")
    return value
