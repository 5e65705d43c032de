"""``KEY=VALUE`` options from the command line: environment options and agent hyperparameters.

Values are read as YAML scalars or lists (``64``, ``0.3``, ``3e-4``, ``true``, ``[64, 64]``, ``null``).
Shared by ``influmatch train`` (``--env``, ``--hp``), ``influmatch log`` and ``influmatch ope`` (``--env``),
with the ``--epsilon`` argument type of the last two.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "add_assignment_argument",
    "add_env_argument",
    "add_progress_argument",
    "check_env_options",
    "check_pool_size",
    "epsilon_argument",
    "parse_assignments",
    "parse_env_options",
]

#: Peak memory per influencer of generating, segmenting and writing a pool (measured: about 1.3 kB with
#: ``influmatch market``; the environment's per-influencer arrays about as much again).
BYTES_PER_INFLUENCER = 3_000

#: A number in scientific notation, which YAML 1.1 (PyYAML) reads as a string unless it has a dot.
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_assignments(items: Sequence[str] | None, option: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict, each value read as YAML; ``ValueError`` naming the bad one."""
    from experiments.files import shorten
    from experiments.strict_yaml import load_yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(
                f"{option} '{shorten(item)}': expected KEY=VALUE with a name as KEY, e.g. {option} gamma=0.9"
            )
        if not text.strip():
            raise ValueError(f"{option} {key}: expected a value after '=', got nothing")
        source = f"{option} {key}"
        try:
            value = load_yaml(text, source=source)
        except ValueError as err:
            problem = str(err).removeprefix(f"{source}: ")
            raise ValueError(f"{source}: cannot read '{shorten(text)}' as a YAML value ({problem})") from None
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            value = float(value)
        if _non_finite(value):
            raise ValueError(f"{option} {key}: expected a finite number, got {shorten(text.strip())}")
        if key in out:
            raise ValueError(f"{option} {key}: given twice")
        out[key] = value
    return out


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable`` on Linux, else physical memory)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):  # pragma: no cover - not POSIX
        return 2**62


def check_pool_size(n: int, where: str) -> None:
    """``ValueError`` if a pool of ``n`` influencers cannot fit in the memory available now, before
    anything is allocated; the message gives the limit."""
    limit = available_memory() // BYTES_PER_INFLUENCER
    if n > limit:
        raise ValueError(
            f"{where} {n:,}: a pool that size needs about {n * BYTES_PER_INFLUENCER / 1e9:,.0f} GB of memory; "
            f"{available_memory() / 1e9:.1f} GB are available, enough for about {limit:,} influencers"
        )


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return any(_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    return False


def add_env_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--env KEY=VALUE ...``, the same in every command: several values after one ``--env``, or
    ``--env`` repeated, or both."""
    parser.add_argument("--env", action="extend", nargs="+", default=[], metavar="KEY=VALUE", help=help_text)


def add_assignment_argument(parser: argparse.ArgumentParser, flag: str, help_text: str) -> None:
    """A ``KEY=VALUE`` option read like ``--env`` (``--hp``)."""
    parser.add_argument(flag, action="extend", nargs="+", default=[], metavar="KEY=VALUE", help=help_text)


def add_progress_argument(parser: argparse.ArgumentParser, default: bool) -> None:
    """``--progress`` / ``--no-progress``, the same in every command (defaults differ: a sweep shows
    its bar, a single run does not)."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=default,
        help=f"show a progress bar (default: {'shown' if default else 'hidden'})",
    )


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
