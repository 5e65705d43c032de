"""The result of a market fit: estimates, covariance, the fitted calibration and its files."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from envs.calibration import Calibration
from envs.fit.likelihoods import (
    NOT_ESTIMATED,
    PARAMETER_COLUMNS,
    Z95,
    BlockFit,
    _get,
    _Parameter,
    _with_values,
    parameter_field,
)

#: Parameters whose calibration field is bounded to [0, 1].
_UNIT_INTERVAL = ("price_quality_correlation",)
#: Parameters whose calibration field cannot be negative by its meaning: a fatigue is a decline of
#: engagement with the sponsored load, exp(-fatigue x load). The estimate is poorly identified (on
#: 3,000 uniform campaigns -0.08 +- 0.09 where the market's is 0.05), and a negative value made every
#: policy that hires busy influencers look better in the fitted market (best_value_per_dollar +37 %;
#: +6 % held at 0). The estimate in parameters.csv is left as fitted; the calibration takes it at 0.
_NON_NEGATIVE = ("engagement_fatigue",)


@dataclasses.dataclass(frozen=True)
class MarketFit:
    """Estimates of the outcome parameters from logged offers (made by :func:`envs.fit.fit_market`).

    Attributes
    ----------
    parameters : pandas.DataFrame
        One row per parameter with columns ``parameter, estimate, std_error, ci_low, ci_high, default,
        n_obs, identified`` (95 % Wald intervals, on the log scale for positive rates). Unidentified
        parameters carry their default (or the caller's fixed value) as estimate and NaN errors.
    covariance : pandas.DataFrame
        Covariance of the identified estimates (calibration scale, delta method). Blocks are fitted
        separately, so entries across blocks are 0 (the engagement block's use of the fitted reach rate
        is not propagated).
    calibration : Calibration
        ``base`` with the identified estimates (and ``fixed`` values) put in.
    base : Calibration
        The defaults.
    notes : dict[str, str]
        Per parameter: "fitted", or why it is unidentified.
    n_offers : int
        Offers fitted.
    blocks : tuple[BlockFit, ...]
        The GLMs, with link-scale coefficients and covariances (what :meth:`draw_calibrations` samples).
    dynamics : str
        The market dynamics the logs came from (``"v0"`` or ``"v1"``; see :func:`envs.fit.fit_market`).
    """

    parameters: pd.DataFrame
    covariance: pd.DataFrame
    calibration: Calibration
    base: Calibration
    notes: dict[str, str]
    n_offers: int
    blocks: tuple[BlockFit, ...]
    dynamics: str = "v0"

    # -------------------------------------------------------------------------------- building
    @classmethod
    def from_blocks(
        cls,
        blocks: Sequence[BlockFit],
        *,
        base: Calibration,
        fixed: Mapping[str, float],
        n_offers: int,
        min_obs: int,
        reasons: Mapping[str, str] | None = None,
    ) -> MarketFit:
        """Assemble the tables and the calibration from fitted blocks (``reasons``: why a held parameter
        could not be fitted, said in its note instead of "held by the caller")."""
        rows: list[dict[str, Any]] = []
        notes: dict[str, str] = {}
        fitted: dict[str, float] = {}
        cov_parts: list[tuple[list[str], np.ndarray]] = []
        for block in blocks:
            names, gradient = [], []
            for p in block.parameters:
                row, grad = _parameter_row(block, p, base, fixed, set(reasons or ()))
                rows.append(row)
                notes[p.name] = (reasons or {}).get(p.name) or _note(block, p, row, fixed, min_obs)
                if row["identified"]:
                    fitted[p.name] = _clip(p.name, row["estimate"])
                    names.append(p.name)
                    gradient.append(grad)
            if names:
                g = np.array(gradient)
                cov_parts.append((names, g @ block.cov @ g.T))
        reported = {row["parameter"] for row in rows}
        for name, reason in NOT_ESTIMATED.items():
            if name in reported:  # estimated on request (envs.fit.fit_market's fit_slopes)
                continue
            held = fixed.get(name, _get(base, name))
            rows.append({"parameter": name, "estimate": held, "std_error": math.nan,
                         "ci_low": math.nan, "ci_high": math.nan, "default": _get(base, name), "n_obs": 0,
                         "identified": False})  # fmt: skip
            notes[name] = reason
        names = [n for part, _ in cov_parts for n in part]
        cov = np.zeros((len(names), len(names)))
        at = 0
        for part, c in cov_parts:
            cov[at : at + len(part), at : at + len(part)] = c
            at += len(part)
        calibration = _with_values(base, {**fixed, **fitted})
        table = pd.DataFrame(rows, columns=list(PARAMETER_COLUMNS))
        table["identified"] = table["identified"].astype(bool)
        table["n_obs"] = table["n_obs"].astype(np.int64)
        return cls(table, pd.DataFrame(cov, index=names, columns=names), calibration, base, notes,
                   n_offers, tuple(blocks))  # fmt: skip

    # --------------------------------------------------------------------------------- queries
    def estimate(self, name: str) -> pd.Series:
        """The row of parameter ``name`` in :attr:`parameters`."""
        rows = self.parameters[self.parameters["parameter"] == name]
        if rows.empty:
            raise KeyError(f"no parameter '{name}' (see MarketFit.parameters)")
        return rows.iloc[0]

    def identified(self) -> list[str]:
        """Names of the identified parameters."""
        return self.parameters.loc[self.parameters["identified"], "parameter"].tolist()

    def draw_calibrations(self, n: int, rng: np.random.Generator) -> list[Calibration]:
        """``n`` calibrations with the identified parameters drawn from the estimates' asymptotic normal.

        Each block's estimated coefficients are drawn from their multivariate normal on the link scale
        (log rates, logit slopes), so drawn rates stay positive; every parameter of the draw follows
        from the coefficients as the estimate does. Unidentified parameters stay at their values in
        :attr:`calibration`.
        """
        out = []
        identified = set(self.identified())
        for _ in range(n):
            values: dict[str, float] = {}
            for block in self.blocks:
                if not block.estimated:
                    continue
                mean = np.array([block.coef[k] for k in block.estimated])
                draw = rng.multivariate_normal(mean, block.cov, method="eigh")
                coef = {**block.coef, **dict(zip(block.estimated, draw.tolist(), strict=True))}
                for p in block.parameters:
                    if p.name in identified:
                        values[p.name] = _clip(p.name, p.value(coef))
            out.append(_with_values(self.calibration, values))
        return out

    # ----------------------------------------------------------------------------------- files
    def to_yaml(self, path: str | Path) -> Path:
        """Write the fitted calibration as YAML, loadable by :meth:`Calibration.from_yaml`.

        Every estimable field is written (fitted values, or defaults marked "default-unidentified" with
        the reason), then any other field where :attr:`calibration` differs from ``Calibration()``.
        """
        path = Path(path)
        lines = [
            f"# Market calibration fitted by envs.fit.fit_market from {self.n_offers} logged offers.",
            "# Each parameter says 'fitted estimate ± standard error' or 'default-unidentified (why)'.",
        ]
        by_field: dict[str, list[str]] = {}
        for row in self.parameters.itertuples(index=False):
            field, _ = parameter_field(str(row.parameter))
            by_field.setdefault(field, []).append(self._comment(row))
        for field, comments in by_field.items():
            lines += [f"# {c}" for c in comments]
            lines.append(f"{field}: {_yaml_value(getattr(self.calibration, field))}")
        defaults = Calibration()
        others = [
            f.name
            for f in dataclasses.fields(Calibration)
            if f.name not in by_field and getattr(self.calibration, f.name) != getattr(defaults, f.name)
        ]
        if others:
            lines.append("# From the base calibration (not estimated):")
            lines += [f"{name}: {_yaml_value(getattr(self.calibration, name))}" for name in others]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(path)
        return path

    def _comment(self, row: Any) -> str:
        name = str(row.parameter)
        if bool(row.identified):
            note = self.notes.get(name, "fitted")
            extra = f"; {note.removeprefix('fitted, ')}" if note != "fitted" else ""
            return f"{name}: fitted {row.estimate:.6g} ± {row.std_error:.3g} (n_obs {row.n_obs}{extra})"
        return f"{name}: default-unidentified at {row.estimate:.6g} ({self.notes.get(name, '')})"

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``parameters.csv``, ``calibration.yaml`` and ``covariance.csv`` into ``out_dir``.

        Returns
        -------
        dict[str, pathlib.Path]
            The paths written, by file stem.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"parameters": out / "parameters.csv", "covariance": out / "covariance.csv"}
        self.parameters.to_csv(paths["parameters"], index=False)
        self.covariance.to_csv(paths["covariance"], index=True, index_label="parameter")
        paths["calibration"] = self.to_yaml(out / "calibration.yaml")
        return paths


# ------------------------------------------------------------------------------------ helpers
def _parameter_row(
    block: BlockFit, p: _Parameter, base: Calibration, fixed: Mapping[str, float], withheld: set[str]
) -> tuple[dict[str, Any], np.ndarray]:
    """The table row of one parameter and its gradient in the block's estimated coefficients
    (``withheld``: parameters reported unidentified whatever the block estimated)."""
    default = _get(base, p.name)
    n_obs = block.n_obs.get(p.needs[0], 0) if p.needs else 0
    identified = p.name not in fixed and p.name not in withheld and all(k in block.estimated for k in p.needs)
    row = {"parameter": p.name, "estimate": float(fixed.get(p.name, default)), "std_error": math.nan,
           "ci_low": math.nan, "ci_high": math.nan, "default": default, "n_obs": n_obs,
           "identified": identified}  # fmt: skip
    grad = np.zeros(len(block.estimated))
    if not identified:
        return row, grad
    estimate = p.value(block.coef)
    for k, name in enumerate(block.estimated):
        h = 1e-6 * max(1.0, abs(block.coef[name]))
        up = p.value({**block.coef, name: block.coef[name] + h})
        down = p.value({**block.coef, name: block.coef[name] - h})
        grad[k] = (up - down) / (2 * h)
    se = float(math.sqrt(max(float(grad @ block.cov @ grad), 0.0)))
    if p.positive and estimate > 0:
        half = Z95 * se / estimate
        low, high = estimate * math.exp(-half), estimate * math.exp(half)
    else:
        low, high = estimate - Z95 * se, estimate + Z95 * se
    row.update(estimate=estimate, std_error=se, ci_low=low, ci_high=high)
    return row, grad


def _note(
    block: BlockFit, p: _Parameter, row: Mapping[str, Any], fixed: Mapping[str, float], min_obs: int
) -> str:
    """Why a parameter is (un)identified, in a few words."""
    if row["identified"]:
        return f"fitted, {p.note}" if p.note else "fitted"
    if p.name in fixed:
        return f"held at {fixed[p.name]:g} by the caller"
    if row["n_obs"] < min_obs:
        return f"{row['n_obs']} rows inform it, fewer than min_obs={min_obs}"
    if p.name.startswith("acceptance_month_shift"):
        return "reference month of the acceptance shifts (held at its default) or collinear"
    if block.name in ("reach", "engagement"):
        return (
            f"{block.name} block: fewer than min_influencers distinct influencers inform it (their hidden "
            "quality would not average out), or its regressor does not vary or is collinear"
        )
    return f"{block.name} block: its regressor does not vary in the logs or is collinear with the others"


def _clip(name: str, value: float) -> float:
    """Keep a value inside its calibration field's bounds (a correlation in [0, 1], a fatigue >= 0)."""
    if name in _NON_NEGATIVE:
        return max(value, 0.0)
    return min(max(value, 0.0), 1.0) if name in _UNIT_INTERVAL else value


def _yaml_value(value: Any) -> str:
    """A field's value as YAML that :meth:`Calibration.from_yaml` reads back exactly."""
    if isinstance(value, tuple):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        if exponent and "." not in mantissa:  # YAML 1.1 reads 1e-05 as a string; 1.0e-05 as a float
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)
