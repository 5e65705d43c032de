"""docs/calibration.md documents every field of Calibration, and the env's docstring states the defaults."""

import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from envs.calibration import Calibration
from envs.matching_env import ENV_OPTIONS, NO_OFFER, InfluencerMatchingEnv

DOC = Path(__file__).resolve().parents[2] / "docs" / "calibration.md"
TAGS = {"IND", "ACA", "FIT", "ASM"}


def documented_fields() -> dict[str, tuple[str, str]]:
    """Field name -> (default cell, tag cell) of every table row that starts with a backticked name."""
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"\| `(\w+)` \| (.+?) \| (\w+) \| .+ \|$", line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} documented twice"
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def test_every_calibration_field_is_documented_with_its_default_and_a_tag():
    rows = documented_fields()
    fields = [f.name for f in dataclasses.fields(Calibration)]
    assert sorted(rows) == sorted(fields)
    assert list(rows) == fields, "docs/calibration.md lists the fields in the dataclass's order"
    defaults = Calibration()
    for name, (cell, tag) in rows.items():
        assert tag in TAGS, (name, tag)
        assert ast.literal_eval(cell) == getattr(defaults, name), (name, cell)


def test_no_docstring_points_outside_the_repository():
    root = DOC.parents[1]
    for package in ("envs", "matching"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text()
            for outside in ("CALIBRATION.md", "DESIGN.md", "shared/"):
                assert outside not in text, (path.name, outside)


def _env_doc() -> str:
    return inspect.getdoc(InfluencerMatchingEnv) or ""


@pytest.mark.parametrize(
    ("field", "stated"),
    [
        ("price_month_premium", lambda c: f"+{round((c.price_month_premium[10] - 1) * 100):g} % prices"),
        ("overlap_range", lambda c: f"{c.overlap_range[0] * 100:g}-{c.overlap_range[1] * 100:g} %"),
        ("load_half_life_days", lambda c: f"halving every {c.load_half_life_days:g} days"),
        ("reputation_burn", lambda c: f"{c.reputation_burn * 100:g} %"),
    ],
)
def test_env_docstring_states_the_calibration_defaults(field, stated):
    """The docstring names the field beside each number it quotes, and the number is the default's."""
    text = " ".join(_env_doc().split())
    assert f"{stated(Calibration())} (``{field}``)" in text


def test_env_docstring_names_real_fields_and_every_option():
    text = _env_doc()
    fields = {f.name for f in dataclasses.fields(Calibration)}
    named = set(re.findall(r"``(\w+)``", text))
    options = set(ENV_OPTIONS) | {"render_mode"}
    methods = {name for name in dir(InfluencerMatchingEnv) if not name.startswith("_")}
    attributes = set(re.findall(r"self\.(\w+) =", inspect.getsource(InfluencerMatchingEnv.__init__)))
    info_keys = {"outcome", "action_mask", "expected_rewards", *NO_OFFER}
    unknown = named - fields - options - methods - attributes - info_keys
    assert not unknown, f"the env docstring names unknown fields or options: {sorted(unknown)}"
    # The Arguments section lists every option with its default.
    signature = " ".join(text.split("## Arguments")[1].split("*")[0].split())
    params = inspect.signature(InfluencerMatchingEnv.__init__).parameters
    for name in (*ENV_OPTIONS, "render_mode"):
        default = params[name].default
        if isinstance(default, int) and not isinstance(default, bool):
            shown = f"{default:_}"
        elif isinstance(default, str):
            shown = f'"{default}"'
        else:
            shown = repr(default)
        assert f"{name}={shown}" in signature, name
