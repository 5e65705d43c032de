"""Off-policy evaluation: what a candidate match policy would earn, estimated from logged matches.

(This module is over 600 lines because it holds every estimator, one short class each over one base,
with the bootstrap and effective-sample code they share; split by estimator, each file would import
the same helpers and the list of estimators would have no home.)

Given logs of decisions made by a logging policy (the format of :mod:`experiments.ope.logs`) and a
target policy's action probabilities at every logged context, :func:`estimate` returns the classic
estimators (one :class:`OffPolicyEstimator` subclass each, listed in :data:`ESTIMATORS`), each with a bootstrap confidence interval and the effective sample size of its weights,
at two scopes:

**Per decision** (each week as a contextual bandit). The estimand is the expected reward of one
decision by the target policy at the contexts the logging policy met,
``V = E_x[sum_a pi(a|x) q(x, a)]`` with ``q`` the expected reward (thousands of USD per decision).
With ``w_i = pi(a_i|x_i) / propensity_i``:

- ``IPS``: ``mean(w_i r_i)``;
- ``SNIPS``: ``sum(w_i r_i) / sum(w_i)`` (self-normalised);
- ``DM``: ``mean(sum_a pi(a|x_i) q_hat(x_i, a))`` with ``q_hat`` a reward model;
- ``DR``: ``DM + mean(w_i (r_i - q_hat(x_i, a_i)))`` (doubly robust).

**Per campaign** (the value of a whole campaign, thousands of USD per campaign, the episode return).
Per-decision importance weighting over the campaign: ``rho_t = prod_{s <= t} w_s`` weights the reward
of week ``t``. After a campaign ends its reward is 0 and its weight stays ``rho_T`` (an absorbing state).

- ``IPS``: per-decision importance sampling, ``mean_c sum_t rho_ct r_ct`` (Precup et al. 2000);
- ``SNIPS``: weighted per-decision IS, ``sum_t (sum_c rho_ct r_ct / sum_c rho_ct)``;
- ``DM``: ``mean_c V_hat(x_c0)``, fitted-Q evaluation of the target policy (see below);
- ``DR``: step-wise doubly robust (Jiang & Li 2016; Thomas & Brunskill 2016),
  ``mean_c sum_t [rho_ct (r_ct - Q_hat(x_ct, a_ct)) + rho_c,t-1 V_hat(x_ct)]``.

**Per campaign, with models that learn action effects or the fitted market** (the importance weights of
a whole campaign are degenerate unless the target is close to the logging policy, so per campaign the
model carries the estimate):

- ``DM-AF`` / ``DR-AF``: DM and step-wise DR with fitted-Q evaluation on action features and pooled
  weeks (:func:`~experiments.ope.models.fitted_q_action_features`);
- ``MB``: the model-based estimate, the target run in the market fitted to the logs on the logged
  campaigns (:mod:`experiments.ope.model_based`), with an interval from parameter draws and
  simulation noise (not the bootstrap);
- ``MB-DR``: step-wise DR whose Q-model is the fitted market
  (:func:`~experiments.ope.model_based.model_based_q`).

``logged`` rows give the logging policy's own value (the mean logged reward per decision and per
campaign): what the current policy earns, beside which the candidate is judged.

**Clipping.** ``clip=c`` caps every importance weight at ``c``: ``min(w_i, c)`` per decision and
``min(rho_t, c)`` per campaign (the cumulative product is clipped, not its factors). Clipping trades
bias (towards zero for the clipped mass) for variance; the default is no clipping. Over a 26-week
campaign cumulative weights explode unless the target is close to the logging policy, which the
effective sample size shows.

**Models.** The reward model of DM/DR per decision and fitted-Q evaluation per campaign are
cross-fitted over campaigns (:mod:`experiments.ope.models`).

**Intervals.** (``MB`` aside, see above.) Percentile bootstrap over *campaigns* (decisions of one campaign are dependent):
``n_bootstrap`` resamples drawn from a seeded generator, every estimator's sums recomputed from the same
resampled campaign counts in one matrix product. The models are not refitted per resample.

**What-if breakdowns** (``breakdown=True``): the same estimates per brand category and per goal (from
the context's one-hot columns, found by their :class:`~envs.observation.FeatureSpec`; a campaign
belongs to one group) and per segment of the action (the part
of the value earned by offers to that segment; the parts over segments and waiting add up to the
total), with the target's share of decisions going to each segment. Per campaign, segments get IPS,
SNIPS and logged values only (DM/DR would need one fitted-Q model per segment).

**Ground truth** (``influmatch ope --truth``, simulated logs only): :mod:`experiments.ope.truth`.

**Adding an estimator** adds one subclass of :class:`OffPolicyEstimator` (its ``per_decision`` and
``per_campaign`` terms) and its entry in :data:`ESTIMATORS`; :func:`estimate` and the bootstrap need no
change.

References: Open Bandit Pipeline (Saito et al. 2021) and SCOPE-RL (Kiyohara et al. 2023) for the set
of estimators; Dudik, Langford & Li (2011) for DR; Chernozhukov et al. (2018) for cross-fitting.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd

from envs.observation import FeatureSpec, find
from experiments.ope.config import DEFAULT_CONFIG, SCOPES, OPEConfig
from experiments.ope.logs import LoggedData
from experiments.ope.policies import StochasticPolicy

__all__ = [
    "DM",
    "DMActionFeatures",
    "DR",
    "DRActionFeatures",
    "ESTIMATORS",
    "IPS",
    "MB",
    "ModelBasedDR",
    "SCOPES",
    "SNIPS",
    "Group",
    "Logged",
    "OffPolicyEstimator",
    "action_segments",
    "campaign_groups",
    "estimate",
    "importance_weights",
    "segment_order",
    "target_probabilities",
]

#: Rows of the bootstrap count matrix built at once.
_BOOTSTRAP_CHUNK = 250
#: The context fields whose one-hot columns split campaigns into groups: (group_by, field).
GROUP_FIELDS = (("brand", "brand_category"), ("goal", "goal"))


# --------------------------------------------------------------------------------- target policy
def target_probabilities(policy: StochasticPolicy, data: LoggedData, chunk: int = 16_384) -> np.ndarray:
    """The target policy's action probabilities at every logged context, shape (n, A).

    A heuristic decides from the logs' candidate facts (:attr:`LoggedData.candidates
    <experiments.ope.logs.LoggedData>`). Raises :class:`~experiments.ope.policies.PolicyError` for a
    policy that reads the simulator's hidden state, or candidate facts the logs do not record.
    """
    policy.check_dimensions(len(data.feature_names), data.n_actions, f"the logs ({data.source})")
    out = np.empty((data.n_decisions, data.n_actions))
    reads_candidates = getattr(policy, "reads_candidates", False)
    for start in range(0, data.n_decisions, chunk):
        stop = start + chunk
        candidates = {k: v[start:stop] for k, v in data.candidates.items()} if reads_candidates else None
        out[start:stop] = policy.probabilities(
            data.context[start:stop], data.action_mask[start:stop], candidates=candidates
        )
    return out


def importance_weights(data: LoggedData, target_probs: np.ndarray, clip: float | None = None) -> np.ndarray:
    """``pi(a_i|x_i) / propensity_i`` for every decision, capped at ``clip`` if given."""
    w = target_probs[np.arange(data.n_decisions), data.action] / data.propensity
    return np.minimum(w, clip) if clip is not None else w


# ------------------------------------------------------------------------------------- groups
@dataclasses.dataclass(frozen=True, eq=False)
class Group:
    """Who an estimate is about: 0/1 indicators of the member decisions (``rows``, shape (n,)) and
    campaigns (``campaigns``, shape (C,)); with ``segment``, only the value of that segment's actions
    counts (``-1``: waiting). ``share`` is the target's share of decisions going to the segment."""

    group_by: str
    label: str
    rows: np.ndarray
    campaigns: np.ndarray
    segment: int | None = None
    share: float = math.nan


def campaign_groups(
    data: LoggedData, feature_specs: Sequence[FeatureSpec] | None = None
) -> list[tuple[str, str, np.ndarray]]:
    """(group_by, label, campaign indicator) of every brand category and goal that some campaign has,
    read from the one-hot context columns at each campaign's first decision. The columns are found by
    their spec (``field`` ``brand_category`` / ``goal``, label ``value``), never by their name."""
    specs = data.specs() if feature_specs is None else tuple(feature_specs)
    if len(specs) != len(data.feature_names):
        raise ValueError(f"feature_specs: expected {len(data.feature_names)} specs, got {len(specs)}")
    first = data.campaign_first_rows()
    out = []
    for group_by, field in GROUP_FIELDS:
        columns = [j for j in find(specs, field) if specs[j].kind == "one_hot"]
        if not columns:
            continue
        which = data.context[np.ix_(first, np.asarray(columns))].argmax(axis=1)
        for position, j in enumerate(columns):
            member = which == position
            if member.any():
                out.append((group_by, str(specs[j].value), member.astype(np.float64)))
    return out


def action_segments(n_actions: int, n_segments: int) -> np.ndarray:
    """Segment of every action (``-1`` for waiting, the last action): ``a // K`` with
    ``K = (n_actions - 1) / n_segments`` offer levels."""
    levels = (n_actions - 1) // n_segments
    if levels * n_segments != n_actions - 1:
        raise ValueError(f"{n_actions} actions do not fit {n_segments} segments plus waiting")
    return np.append(np.repeat(np.arange(n_segments), levels), -1)


def segment_order(segments: np.ndarray) -> list[int]:
    """The segments of the breakdown in table order: the segments in increasing order, then waiting."""
    return [*sorted(set(segments[segments >= 0].tolist())), -1]


def segment_label(segment: int, segment_names: Sequence[str] | None) -> str:
    """``seg 3 · NAME`` (or ``seg 3``), ``wait`` for -1: the ``group`` of a segment row."""
    if segment < 0:
        return "wait"
    return f"seg {segment}" + (f" · {segment_names[segment]}" if segment_names is not None else "")


def _groups(
    data: LoggedData,
    target_probs: np.ndarray,
    segments: np.ndarray | None,
    segment_names: Sequence[str] | None,
    feature_specs: Sequence[FeatureSpec] | None,
    breakdown: bool,
) -> Iterator[Group]:
    """Everyone, then (with ``breakdown``) every brand category, goal and segment of the action."""
    n, everyone = data.n_decisions, np.ones(data.n_campaigns)
    yield Group("all", "all", np.ones(n), everyone)
    if not breakdown:
        return
    for group_by, label, member in campaign_groups(data, feature_specs):
        yield Group(group_by, label, member[data.campaign], member)
    if segments is not None:
        for s in segment_order(segments):
            share = float(target_probs[:, segments == s].sum() / n)
            yield Group("segment", segment_label(s, segment_names), np.ones(n), everyone, s, share)


# ------------------------------------------------------------------------------------ estimators
class Term(NamedTuple):
    """One estimate as sums over campaigns: ``sum_j sum_c numerator[c, j] / sum_c denominator[c, j]``
    (arrays of shape (C, k)), and the effective sample size of its weights (NaN when it has none).
    An estimate with an interval of its own (``MB``) gives ``summary`` = (estimate, low, high, standard
    error) instead, and its sums are not used."""

    numerator: np.ndarray
    denominator: np.ndarray
    ess: float
    summary: tuple[float, float, float, float] | None = None


def _ess(weights: np.ndarray) -> float:
    total = weights.sum()
    squares = (weights**2).sum()
    return float(total**2 / squares) if squares > 0 else 0.0


class Inputs:
    """The arrays every estimator reads, computed once per :func:`estimate` call.

    Per decision: importance weights ``w`` (clipped), rewards ``r``, and with a reward model the DM
    value ``dm_rows`` and DR value ``dr_rows`` of every decision. Per campaign, arrays (C, H): the
    cumulative weights ``rho`` (carried forward after a campaign ends, clipped), ``rho_prev`` (one week
    earlier), rewards ``r_pad`` (0 after the end), and per Q-model (``models``: ``"fqe"``, ``"fqe_af"``,
    ``"mb"``) the DR sum ``dr_campaign[key]`` and ``V_hat`` at every campaign's first decision
    (``v_first[key]``); ``model_based``: the simulated campaigns of ``MB``.
    """

    def __init__(
        self,
        data: LoggedData,
        target_probs: np.ndarray,
        q_hat: np.ndarray | None,
        fqe: tuple[np.ndarray, np.ndarray] | None,
        config: OPEConfig,
        segments: np.ndarray | None,
        models: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
        model_based: Any = None,
    ) -> None:
        n, A, C = data.n_decisions, data.n_actions, data.n_campaigns
        self.data, self.target_probs, self.segments = data, target_probs, segments
        self.config, self.model_based = config, model_based
        self.w = importance_weights(data, target_probs, config.clip)
        self.r = data.reward
        self.q_hat: np.ndarray | None = None
        self.q_used: np.ndarray | None = None
        self.q_logged: np.ndarray | None = None
        self.dm_rows: np.ndarray | None = None
        self.dr_rows: np.ndarray | None = None
        if q_hat is not None:
            if np.shape(q_hat) != (n, A):
                raise ValueError(f"q_hat: expected shape {(n, A)}, got {np.shape(q_hat)}")
            q_used = np.where(target_probs > 0, q_hat, 0.0)
            self.q_logged = q_hat[np.arange(n), data.action]
            if np.isnan(q_used).any() or np.isnan(self.q_logged).any():
                raise ValueError("q_hat: missing values where the target policy acts or at a logged action")
            self.q_hat, self.q_used = q_hat, q_used
            self.dm_rows = (target_probs * q_used).sum(axis=1)
            self.dr_rows = self.dm_rows + self.w * (self.r - self.q_logged)
        rho = np.cumprod(data.padded(importance_weights(data, target_probs), fill=1.0), axis=1)
        if config.clip is not None:
            rho = np.minimum(rho, config.clip)
        self.rho = rho
        self.rho_prev = np.hstack([np.ones((C, 1)), rho[:, :-1]])
        self.r_pad = data.padded(self.r)
        all_models = dict(models or {})
        if fqe is not None:
            all_models["fqe"] = fqe
        self.has_fqe = "fqe" in all_models
        self.v_first: dict[str, np.ndarray] = {}
        self.dr_campaign: dict[str, np.ndarray] = {}
        for key, (q_logged, v_hat) in all_models.items():
            self.v_first[key] = v_hat[data.campaign_first_rows()]
            self.dr_campaign[key] = (
                self.rho * (self.r_pad - data.padded(q_logged)) + self.rho_prev * data.padded(v_hat)
            ).sum(axis=1)

    # ------------------------------------------------------------------------- per decision
    def row_filter(self, group: Group) -> np.ndarray | None:
        """0/1 per decision: the logged action is of the group's segment (None: every action counts)."""
        if group.segment is None:
            return None
        assert self.segments is not None, "a segment group needs the segments of the actions"
        return (self.segments[self.data.action] == group.segment).astype(np.float64)

    def kept_rows(self, group: Group) -> np.ndarray:
        """The member decisions whose logged reward counts (of the group's segment, if any)."""
        row_filter = self.row_filter(group)
        return group.rows if row_filter is None else group.rows * row_filter

    def decision_sums(self, values: np.ndarray) -> np.ndarray:
        """Per-decision ``values`` summed per campaign, shape (C, 1)."""
        return self.data.per_campaign(values)[:, None]

    def decision_ess(self, group: Group) -> float:
        return _ess(self.w[group.rows > 0])

    def dm_part(self, group: Group) -> np.ndarray:
        """DM value of every decision (of the group's segment's actions only, if any)."""
        assert self.dm_rows is not None and self.q_used is not None, "DM needs a reward model"
        if group.segment is None:
            return self.dm_rows
        assert self.segments is not None, "a segment group needs the segments of the actions"
        in_segment = self.segments[None, :] == group.segment
        return (self.target_probs * np.where(in_segment, self.q_used, 0.0)).sum(axis=1)

    def dr_part(self, group: Group) -> np.ndarray:
        """DR value of every decision (of the group's segment's actions only, if any)."""
        assert self.dr_rows is not None and self.q_logged is not None, "DR needs a reward model"
        row_filter = self.row_filter(group)
        if row_filter is None:
            return self.dr_rows
        return self.dm_part(group) + self.w * (self.r - self.q_logged) * row_filter

    # ------------------------------------------------------------------------- per campaign
    def campaign_rewards(self, group: Group) -> np.ndarray:
        """(C, H) rewards that count (of the group's segment's actions only, if any)."""
        row_filter = self.row_filter(group)
        return self.r_pad if row_filter is None else self.data.padded(self.r * row_filter)

    def campaign_ess(self, group: Group) -> float:
        return _ess(self.rho[group.campaigns > 0, -1])


class OffPolicyEstimator:
    """One estimator at both scopes (as Open Bandit Pipeline's ``BaseOffPolicyEstimator``).

    A subclass names itself (``name``, the ``estimator`` column) and returns its :class:`Term` for a
    group at each scope, or None where it does not apply (no reward model, a segment of a per-campaign
    model-based estimate).
    """

    name: ClassVar[str]

    def per_decision(self, inputs: Inputs, group: Group) -> Term | None:
        """The estimate per decision (thousands of USD per decision), or None."""
        return None

    def per_campaign(self, inputs: Inputs, group: Group) -> Term | None:
        """The estimate per campaign (thousands of USD per campaign), or None."""
        return None


class IPS(OffPolicyEstimator):
    """Inverse propensity scoring: ``mean(w_i r_i)`` per decision; per-decision importance sampling
    ``mean_c sum_t rho_ct r_ct`` per campaign (Precup et al. 2000)."""

    name = "IPS"

    def per_decision(self, inputs: Inputs, group: Group) -> Term:
        numerator = inputs.decision_sums(inputs.w * inputs.r * inputs.kept_rows(group))
        return Term(numerator, inputs.decision_sums(group.rows), inputs.decision_ess(group))

    def per_campaign(self, inputs: Inputs, group: Group) -> Term:
        returns = (inputs.rho * inputs.campaign_rewards(group)).sum(axis=1)
        return Term(
            (returns * group.campaigns)[:, None], group.campaigns[:, None], inputs.campaign_ess(group)
        )


class SNIPS(OffPolicyEstimator):
    """Self-normalised IPS: ``sum(w_i r_i) / sum(w_i)`` per decision; weighted per-decision importance
    sampling ``sum_t (sum_c rho_ct r_ct / sum_c rho_ct)`` per campaign."""

    name = "SNIPS"

    def per_decision(self, inputs: Inputs, group: Group) -> Term:
        numerator = inputs.decision_sums(inputs.w * inputs.r * inputs.kept_rows(group))
        denominator = inputs.decision_sums(inputs.w * group.rows)
        return Term(numerator, denominator, inputs.decision_ess(group))

    def per_campaign(self, inputs: Inputs, group: Group) -> Term:
        column = group.campaigns[:, None]
        numerator = inputs.rho * inputs.campaign_rewards(group) * column
        return Term(numerator, inputs.rho * column, inputs.campaign_ess(group))


class DM(OffPolicyEstimator):
    """The direct method: ``mean(sum_a pi(a|x_i) q_hat(x_i, a))`` per decision (a reward model);
    ``mean_c V_hat(x_c0)`` per campaign (fitted-Q evaluation, one model per week on a one-hot action)."""

    name = "DM"
    #: The per-campaign Q-model (a key of ``Inputs.v_first``).
    model: ClassVar[str] = "fqe"

    def per_decision(self, inputs: Inputs, group: Group) -> Term | None:
        if inputs.dm_rows is None:
            return None
        numerator = inputs.decision_sums(inputs.dm_part(group) * group.rows)
        return Term(numerator, inputs.decision_sums(group.rows), math.nan)

    def per_campaign(self, inputs: Inputs, group: Group) -> Term | None:
        v_first = inputs.v_first.get(self.model)
        if v_first is None or group.segment is not None:
            return None
        return Term((v_first * group.campaigns)[:, None], group.campaigns[:, None], math.nan)


class DR(OffPolicyEstimator):
    """Doubly robust: ``DM + mean(w_i (r_i - q_hat(x_i, a_i)))`` per decision (Dudik, Langford & Li
    2011); step-wise DR ``mean_c sum_t [rho_ct (r_ct - Q_hat(x_ct, a_ct)) + rho_c,t-1 V_hat(x_ct)]``
    per campaign (Jiang & Li 2016; Thomas & Brunskill 2016)."""

    name = "DR"
    #: The per-campaign Q-model (a key of ``Inputs.dr_campaign``).
    model: ClassVar[str] = "fqe"

    def per_decision(self, inputs: Inputs, group: Group) -> Term | None:
        if inputs.dr_rows is None:
            return None
        numerator = inputs.decision_sums(inputs.dr_part(group) * group.rows)
        return Term(numerator, inputs.decision_sums(group.rows), inputs.decision_ess(group))

    def per_campaign(self, inputs: Inputs, group: Group) -> Term | None:
        dr_campaign = inputs.dr_campaign.get(self.model)
        if dr_campaign is None or group.segment is not None:
            return None
        numerator = (dr_campaign * group.campaigns)[:, None]
        return Term(numerator, group.campaigns[:, None], inputs.campaign_ess(group))


class DMActionFeatures(DM):
    """Per campaign: ``mean_c V_hat(x_c0)`` of fitted-Q evaluation with action features and pooled
    weeks (:func:`~experiments.ope.models.fitted_q_action_features`)."""

    name = "DM-AF"
    model = "fqe_af"

    def per_decision(self, inputs: Inputs, group: Group) -> Term | None:
        return None


class DRActionFeatures(DR):
    """Per campaign: step-wise DR on fitted-Q evaluation with action features and pooled weeks."""

    name = "DR-AF"
    model = "fqe_af"

    def per_decision(self, inputs: Inputs, group: Group) -> Term | None:
        return None


class ModelBasedDR(DR):
    """Per campaign: step-wise DR whose Q-model is the fitted market
    (:func:`~experiments.ope.model_based.model_based_q`)."""

    name = "MB-DR"
    model = "mb"

    def per_decision(self, inputs: Inputs, group: Group) -> Term | None:
        return None


class MB(OffPolicyEstimator):
    """Per campaign: the target run in the market fitted to the logs, on the logged campaigns
    (:mod:`experiments.ope.model_based`); the interval holds parameter uncertainty and simulation noise
    (:meth:`~experiments.ope.model_based.ModelBasedValues.summary`), not the bootstrap."""

    name = "MB"

    def per_campaign(self, inputs: Inputs, group: Group) -> Term | None:
        if inputs.model_based is None or group.segment is not None:
            return None
        summary = inputs.model_based.summary(group.campaigns, inputs.config.confidence)
        C = len(group.campaigns)
        return Term(np.zeros((C, 1)), np.ones((C, 1)), math.nan, summary)


class Logged(OffPolicyEstimator):
    """The logging policy's own value: the mean logged reward per decision and per campaign (what the
    current policy earns, beside which the candidate is judged)."""

    name = "logged"

    def per_decision(self, inputs: Inputs, group: Group) -> Term:
        numerator = inputs.decision_sums(inputs.r * inputs.kept_rows(group))
        return Term(numerator, inputs.decision_sums(group.rows), math.nan)

    def per_campaign(self, inputs: Inputs, group: Group) -> Term:
        returns = inputs.campaign_rewards(group).sum(axis=1)
        return Term((returns * group.campaigns)[:, None], group.campaigns[:, None], math.nan)


#: The estimators, in table order (``logged`` last).
ESTIMATORS: tuple[OffPolicyEstimator, ...] = (
    IPS(), SNIPS(), DM(), DR(), DMActionFeatures(), DRActionFeatures(), MB(), ModelBasedDR(), Logged(),
)  # fmt: skip


@dataclasses.dataclass
class _Term:
    """One line of the table: a :class:`Term` with the group and estimator it belongs to."""

    scope: str
    group_by: str
    group: str
    estimator: str
    numerator: np.ndarray  # (C, k)
    denominator: np.ndarray  # (C, k)
    ess: float
    n_decisions: int
    n_campaigns: int
    target_share: float = math.nan
    summary: tuple[float, float, float, float] | None = None


def estimate(
    data: LoggedData,
    target_probs: np.ndarray,
    *,
    q_hat: np.ndarray | None = None,
    fqe: tuple[np.ndarray, np.ndarray] | None = None,
    config: OPEConfig = DEFAULT_CONFIG,
    segments: np.ndarray | None = None,
    segment_names: Sequence[str] | None = None,
    breakdown: bool = False,
    feature_specs: Sequence[FeatureSpec] | None = None,
    estimators: Sequence[OffPolicyEstimator] = ESTIMATORS,
    models: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    model_based: Any = None,
) -> pd.DataFrame:
    """Every estimate of the target policy's value, with bootstrap intervals.

    Parameters
    ----------
    data : LoggedData
    target_probs : numpy.ndarray, shape (n, A)
        The target policy's probabilities at every logged context (:func:`target_probabilities`).
    q_hat : numpy.ndarray, shape (n, A), optional
        Reward model (:func:`~experiments.ope.models.cross_fitted_reward_model`, or any other); without
        it, no per-decision DM/DR.
    fqe : (numpy.ndarray, numpy.ndarray), optional
        ``(Q_hat(x_i, a_i), V_hat(x_i))`` of :func:`~experiments.ope.models.fitted_q_evaluation`;
        without it, no per-campaign DM/DR.
    config : OPEConfig
        Clipping, bootstrap size, confidence and seed.
    segments : numpy.ndarray of int, shape (A,), optional
        Segment of every action, -1 for waiting (:func:`action_segments`); needed for the segment
        breakdown.
    segment_names : sequence of str, optional
        Readable segment names for the breakdown.
    breakdown : bool
        Add the per-brand, per-goal and per-segment rows.
    feature_specs : sequence of FeatureSpec, optional
        The specs of the context columns, which locate the brand and goal columns of the breakdown
        (``env.unwrapped.feature_specs``; default: :meth:`~experiments.ope.logs.LoggedData.specs`).
    estimators : sequence of OffPolicyEstimator
        Default: :data:`ESTIMATORS`.
    models : mapping, optional
        More per-campaign Q-models ``(Q_hat(x_i, a_i), V_hat(x_i))`` by key: ``"fqe_af"`` (``DM-AF``,
        ``DR-AF``), ``"mb"`` (``MB-DR``).
    model_based : experiments.ope.model_based.ModelBasedValues, optional
        The simulated campaigns of ``MB``.

    Returns
    -------
    pandas.DataFrame
        One row per (scope, group_by, group, estimator): ``estimate``, ``low``, ``high`` (the
        interval), ``std_error`` (bootstrap), ``ess`` (effective sample size of the weights: decisions
        per decision, campaigns per campaign), ``n_decisions``, ``n_campaigns``, ``target_share``
        (segment rows: the target's share of decisions going to the segment). Values in thousands of
        USD per decision or per campaign. ``group_by`` is ``all`` for the overall estimates.
    """
    n, A = data.n_decisions, data.n_actions
    if np.shape(target_probs) != (n, A):
        raise ValueError(f"target_probs: expected shape {(n, A)}, got {np.shape(target_probs)}")
    if breakdown and segments is not None:
        segments = np.asarray(segments)
        if segments.shape != (A,):
            raise ValueError(f"segments: expected shape ({A},), got {segments.shape}")
    inputs = Inputs(data, target_probs, q_hat, fqe, config, segments, models, model_based)
    terms: list[_Term] = []
    for group in _groups(data, target_probs, segments, segment_names, feature_specs, breakdown):
        n_rows, n_camp = int(group.rows.sum()), int(group.campaigns.sum())
        for scope in SCOPES:
            for estimator in estimators:
                term = getattr(estimator, scope)(inputs, group)
                if term is not None:
                    terms.append(_Term(scope, group.group_by, group.label, estimator.name, term.numerator,
                                       term.denominator, term.ess, n_rows, n_camp, group.share,
                                       term.summary))  # fmt: skip
    return _bootstrap_table(terms, data.n_campaigns, config)


def _bootstrap_table(terms: list[_Term], n_campaigns: int, config: OPEConfig) -> pd.DataFrame:
    """Point estimates and percentile intervals of every term from one set of campaign resamples."""
    _, boot_rng, _ = config.streams()
    widths = [t.numerator.shape[1] for t in terms]
    numerators = np.hstack([t.numerator for t in terms])
    denominators = np.hstack([t.denominator for t in terms])
    starts = np.r_[0, np.cumsum(widths)[:-1]]
    point = _sum_ratios(numerators.sum(axis=0)[None], denominators.sum(axis=0)[None], starts)[0]
    boots = []
    B, C = config.n_bootstrap, n_campaigns
    for start in range(0, B, _BOOTSTRAP_CHUNK):
        b = min(_BOOTSTRAP_CHUNK, B - start)
        draws = boot_rng.integers(C, size=(b, C))
        counts = np.bincount((draws + C * np.arange(b)[:, None]).ravel(), minlength=b * C).reshape(b, C)
        counts = counts.astype(np.float64)
        boots.append(_sum_ratios(counts @ numerators, counts @ denominators, starts))
    boot = np.vstack(boots)
    alpha = 1.0 - config.confidence
    with np.errstate(invalid="ignore"), _quiet_nan_warnings():
        low = np.nanpercentile(boot, 100 * alpha / 2, axis=0)
        high = np.nanpercentile(boot, 100 * (1 - alpha / 2), axis=0)
        std = np.nanstd(boot, axis=0, ddof=1) if B > 1 else np.full(len(terms), np.nan)
    for j, t in enumerate(terms):
        if t.summary is not None:
            point[j], low[j], high[j], std[j] = t.summary
    return pd.DataFrame(
        {
            "scope": [t.scope for t in terms],
            "group_by": [t.group_by for t in terms],
            "group": [t.group for t in terms],
            "estimator": [t.estimator for t in terms],
            "estimate": point,
            "low": low,
            "high": high,
            "std_error": std,
            "ess": [t.ess for t in terms],
            "n_decisions": [t.n_decisions for t in terms],
            "n_campaigns": [t.n_campaigns for t in terms],
            "target_share": [t.target_share for t in terms],
        }
    )


def _sum_ratios(num_sums: np.ndarray, den_sums: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``sum over a term's columns of num / den`` for every row of (b, k) sums -> (b, n_terms); term
    ``j`` owns the columns from ``starts[j]`` to the next start.

    A column whose denominator is 0 contributes 0 when its numerator is 0 too (a week that no
    resampled campaign reached) and makes the term NaN otherwise (a group with no campaign)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        empty = den_sums <= 0
        ratio = np.where(
            empty, np.where(num_sums == 0, 0.0, np.nan), num_sums / np.where(empty, 1.0, den_sums)
        )
        # a group absent from a resample: every column empty -> undefined, not 0
        absent = np.add.reduceat(~empty, starts, axis=1) == 0
    out = np.add.reduceat(ratio, starts, axis=1)
    out[absent] = np.nan
    return out


class _quiet_nan_warnings:
    def __enter__(self) -> _quiet_nan_warnings:
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)
