"""The native vector environment: N campaigns on one shared market, stepped in one compiled call."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Sequence
from typing import Any

import gymnasium as gym
import numba
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from numba import typed

from envs import _kernels, _vector_kernels
from envs.campaigns import Campaign, month_of_week, sample_campaign
from envs.matching_env import NO_OFFER, PREFIX, InfluencerMatchingEnv, _State, value_bound
from envs.outcomes import value_scale

#: Autoreset modes the vector env implements (``DISABLED`` is not offered: a finished campaign has no
#: next week to step into).
AUTORESET_MODES: tuple[AutoresetMode, ...] = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)
#: How many of each segment's best a campaign ranks at its start: one prefix, not the single env's
#: ``RANK_DEPTH`` (four prefixes). The candidates are the same at any depth (a prefix that runs out is cut again from
#: the ranked list, then refilled from the segment's members the level can pay, so the first valid entry is
#: always the segment's best valid influencer); a shorter list makes every reset's scan and sort shorter,
#: and measured faster overall (paired runs at load 7: 8.4 against 10.3 us of CPU per env-step for 64).
VECTOR_RANK_DEPTH = PREFIX


class InfluencerMatchingVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` brand campaigns on one shared influencer market, a ``gymnasium.vector.VectorEnv``.

    ``gymnasium.make_vec("influmatch/InfluencerMatching-v1", num_envs=N,
    vectorization_mode="vector_entry_point", **options)`` (or ``-v0``) builds it; ``options`` are those of
    :class:`~envs.matching_env.InfluencerMatchingEnv` (``persistent_market`` excepted), plus
    ``autoreset_mode`` and ``num_threads``. The market (pool, reservoir of newcomers, segmentation,
    precomputations) is built once and shared; each sub-env is a campaign whose state is one row of
    stacked arrays, and a step moves every campaign with one compiled call (:mod:`envs._vector_kernels`).
    Spaces, actions, rewards and dynamics are the single env's.

    Each sub-env equals a single env: sub-env ``i`` has its own ``numpy.random.Generator`` and draws
    from it exactly what a single :class:`~envs.matching_env.InfluencerMatchingEnv` draws, in the same
    order, so ``reset(seed=s)`` gives sub-env ``i`` the trajectory of a single env after
    ``reset(seed=s + i)`` (the mapping of ``SyncVectorEnv``), through autoresets too (a sub-env's
    next campaign continues its generator, as a single env's ``reset()`` without a seed does). A list of
    ``num_envs`` seeds seeds each sub-env with its own; ``seed=None`` draws fresh entropy on the first
    reset and continues the streams afterwards.

    Autoreset: ``metadata["autoreset_mode"]`` declares it (Gymnasium >= 1.1). The default is
    ``AutoresetMode.NEXT_STEP``, Gymnasium's default and that of ``SyncVectorEnv``: the step after a
    sub-env's campaign ended resets it (its action is ignored, reward 0, not terminated or truncated)
    and returns the new campaign's first observation and info. ``autoreset_mode=AutoresetMode.SAME_STEP``
    resets in the step that ended the campaign; the final observation and info are in
    ``info["final_obs"]`` and ``info["final_info"]`` (masked by ``info["_final_obs"]``), as
    ``SyncVectorEnv`` reports them (the Stable-Baselines3 adapter, :mod:`agents.vec_env`, uses it).

    Threads: ``num_threads=2`` (up to numba's ``NUMBA_NUM_THREADS``, the cores) shares each step's and
    each batch of restarts' rows among numba threads, a contiguous share each. A row is computed by the
    same code from its own generator whatever the thread count, so the numbers are the same; the default
    is 1, which leaves the other cores to the caller (a sweep's workers, fitted-Q evaluation). The threads
    are numba's threading layer (``numba.threading_layer()``, often GNU OpenMP from a pip install, which
    is not fork-safe: a process that forks after using threads should start its workers with "spawn" or
    "forkserver", as Stable-Baselines3's ``SubprocVecEnv`` and Ray do).

    Info: the single env's keys, batched like ``SyncVectorEnv`` merges them: ``outcome`` (a dict of
    arrays, one entry per sub-env), ``action_mask`` ``(N, A)`` and ``expected_rewards`` ``(N, A)``, each
    with its ``_key`` mask (all true). ``action_masks()`` returns the ``(N, A)`` valid actions, and
    ``candidate_features()`` the single env's candidate facts, ``(N, A)`` each (what the heuristics read).
    """

    metadata: dict[str, Any] = {
        "render_modes": ["ansi", "rgb_array"],
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        *,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        num_threads: int = 1,
        render_mode: str | None = None,
        **options: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs: expected a whole number >= 1, got {num_envs!r}")
        mode = _autoreset_mode(autoreset_mode)
        threads = _num_threads(num_threads)
        if options.get("persistent_market"):
            raise ValueError(
                "persistent_market: not supported by the native vector env (each sub-env would carry its own "
                "market); use gymnasium.make_vec(..., vectorization_mode='sync')"
            )
        if options.pop("max_episode_steps", None) is not None:
            raise ValueError(
                "max_episode_steps: not supported by the vector env; campaign_weeks sets the length"
            )
        self._setup(InfluencerMatchingEnv(render_mode=render_mode, **options), int(num_envs), mode, threads)

    @classmethod
    def from_env(
        cls,
        env: InfluencerMatchingEnv,
        num_envs: int,
        *,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        num_threads: int = 1,
    ) -> InfluencerMatchingVectorEnv:
        """A vector env of ``num_envs`` campaigns on ``env``'s market (built once already: nothing is
        segmented again) with ``env``'s options; ``env`` itself is left alone."""
        single = getattr(env, "unwrapped", env)
        if not isinstance(single, InfluencerMatchingEnv):
            raise ValueError(f"env: expected an InfluencerMatchingEnv, got {type(single).__name__}")
        if single.persistent_market:
            raise ValueError("persistent_market: not supported by the native vector env")
        vector = cls.__new__(cls)
        vector._setup(single, int(num_envs), _autoreset_mode(autoreset_mode), _num_threads(num_threads))
        return vector

    def _setup(
        self, env: InfluencerMatchingEnv, num_envs: int, mode: AutoresetMode, num_threads: int = 1
    ) -> None:
        render_mode = env.render_mode
        self.env = env
        self.num_envs = int(num_envs)
        self.num_threads = num_threads
        self.autoreset_mode = mode
        self.render_mode = render_mode
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.single_observation_space = self.env.observation_space
        self.single_action_space = self.env.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._generators = [seeding.np_random(None)[0] for _ in range(self.num_envs)]
        self._typed_generators = typed.List(self._generators)
        self._allocate()
        self._campaigns: list[Campaign | None] = [None] * self.num_envs  # given, or built when read
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._started = False

    # ------------------------------------------------------------------------------ state
    def _allocate(self) -> None:
        """The stacked campaign state (one row per sub-env) and the tables the kernels read."""
        env, market, N = self.env, self.env._market, self.num_envs
        S, K, n, weeks = env.n_segments, len(env.offer_levels), len(market.pool), env.campaign_weeks
        A = S * K + 1
        self._week = np.zeros(N, dtype=np.int64)
        self._budget_left = np.zeros(N)
        self._spent = np.zeros(N)
        self._total_reward = np.zeros(N)
        self._premium = np.zeros(N)
        self._n_hired = np.zeros(N, dtype=np.int64)
        self._category = np.zeros(N, dtype=np.int64)
        self._month_list = np.zeros((N, weeks + 1), dtype=np.int64)
        self._consts = np.zeros((N, _kernels.N_CONSTS))
        self._state = (self._week, self._budget_left, self._spent, self._total_reward, self._premium,
                       self._n_hired, self._category, self._month_list, self._consts)  # fmt: skip
        # Join and leave weeks in the smallest integer type that holds "never" (weeks + 1), a byte for
        # campaigns under 127 weeks: the rows are read at every reset and step, and a smaller row stays in
        # cache (in paired runs about 4 % less CPU per env-step than int16 rows).
        self._week_dtype: type = next(
            t for t in (np.int8, np.int16, np.int64) if weeks + 1 <= np.iinfo(t).max
        )
        self._join = np.zeros((N, n), dtype=self._week_dtype)
        self._leave = np.zeros((N, n), dtype=self._week_dtype)
        self._hired = np.zeros((N, n), dtype=bool)
        self._fit = np.zeros((N, n))
        self._value_per_dollar = np.zeros((N, n))
        self._candidate = np.full((N, S, K), -1, dtype=np.int64)
        self._mask = np.zeros((N, A), dtype=bool)
        self._expected = np.zeros((N, A))
        self._observation = np.zeros((N, len(env.feature_specs)), dtype=np.float32)
        self._load_sum = np.zeros((N, weeks, S))
        self._load_count = np.zeros((N, weeks, S))
        self._hires = np.zeros((N, S), dtype=np.int64)
        self._campaign_arrays = (
            np.full((N, S, VECTOR_RANK_DEPTH), -1, dtype=np.int64), np.zeros((N, S), dtype=np.int64),
            np.full((N, S, K, PREFIX), -1, dtype=np.int64), np.zeros((N, S, K), dtype=bool),
            self._join, self._leave, self._hired, market.category_share, market.pool.sponsored_load, self._fit,
            self._value_per_dollar, market.true_rates, np.zeros((N, weeks), dtype=np.int64),
            np.zeros((N, weeks), dtype=np.int64), np.zeros((N, weeks)), self._hires, self._candidate,
            np.zeros((N, S * K, _kernels.N_TERMS)), self._expected, self._mask, self._observation,
            self._load_sum, self._load_count,
        )  # fmt: skip
        self._market_arrays = env._market_arrays
        weeks_range = range(weeks + 1)
        scalars = np.array([env.calibration.reach_post_sd, env.calibration.engagement_post_sd, env._load_decay,
                            1.0 if env._load_recovers else 0.0])  # fmt: skip
        self._tables = (
            env._demand,
            np.array([env.value_factor(w) for w in weeks_range]),
            np.array([env._load_decay**w for w in weeks_range]),
            np.asarray(env._premium, dtype=float),
            scalars,
        )
        self._months_by_start = np.stack([month_of_week(m, np.arange(weeks + 1)) for m in range(12)])
        # The offered influencer's id by offered index + 1 (-1, no offer: "").
        self._ids = np.asarray(["", *market.pool.influencer_id], dtype=object)
        self._audience_fit = np.zeros((N, n))  # each new campaign's audience fit, row b of a batch of resets
        # Each sub-env's drawn campaign, as arrays (see _draw_starts): category, goal, start month, target
        # audience, and annual budget, budget, order value, value per engagement and per 1k reach.
        self._drawn = (np.zeros(N, dtype=np.int64), np.zeros(N, dtype=np.int64), np.zeros(N, dtype=np.int64),
                       np.zeros((N, market.sqrt_audience.shape[1])), np.zeros((N, 5)))  # fmt: skip
        bound, order = self._rank_bounds()
        self._values = (
            env._fit_weights,
            market.value_coef,
            bound,
            order,
            np.take_along_axis(bound, order, axis=-1),
        )
        self._lazy_arrays = self._lazy_tables(N)
        self._lazy = self._lazy_arrays[0].shape[1] == _vector_kernels.DOT_WIDTH and self._blas_rows_known()
        self._lazy_arrays += (self._scan_table(order, _vector_kernels.SCAN_DEPTH if self._lazy else 0),)
        # The calibration's kernel constants; a campaign sets its five (see InfluencerMatchingEnv._kernel_constants).
        self._consts_template = env._kernel_constants(
            sample_campaign(np.random.default_rng(0), env.calibration)
        )
        # What draw_starts reads: the category, goal and budget-bin CDFs (as Calibration.draw builds them),
        # the target audience's Dirichlet parameters by category, the log bounds of the uniform draws, and
        # the churn's population sizes and probability of leaving (as _churn_draws computes them).
        cal = env.calibration
        self._cdfs = tuple(_calibration_cdf(cal, name) for name in ("brand_category_mix", "goal_mix",
                                                                   "budget_bin_shares"))  # fmt: skip
        base = cal.base_audience()
        self._alpha = np.stack([cal.target_concentration * base[c] for c in range(len(base))])
        self._log_ranges = (
            np.array([math.log(edge) for edge in cal.array("budget_bin_edges")]),
            np.array([math.log(v) for v in cal.value_per_engagement_range[:2]]),
            np.array([math.log(v) for v in cal.value_per_1k_reach_range[:2]]),
        )
        n_inc = market.n_incumbents
        p_leave = 1.0 - (1.0 - env.churn_rate) ** (weeks - 1)
        self._churn_params = (float(n_inc), float(n - n_inc), p_leave, env.churn_rate > 0)
        join_template = env._join_template.astype(self._week_dtype)
        leave_template = env._leave_template.astype(self._week_dtype)
        self._join[:], self._leave[:] = join_template, leave_template  # each reset restores what it swapped
        n_reservoir = n - n_inc
        self._churn_templates = (join_template, leave_template, market.load_sum, market.load_count,
                                 market.pool.sponsored_load, market.segment,
                                 np.zeros((N, 2 * n_reservoir), dtype=np.int64), np.zeros(N, dtype=np.int64))  # fmt: skip
        room = N * n_reservoir if env.churn_rate > 0 else 0
        self._swap_buffers = (np.empty(room, dtype=np.int64), np.empty(room, dtype=np.int64), np.empty(room))
        self._out = (
            np.zeros(N), np.zeros(N, dtype=bool), np.zeros(N, dtype=bool), np.full(N, -1, dtype=np.int64),
            np.full(N, -1, dtype=np.int64), np.zeros(N), np.zeros(N, dtype=bool), np.zeros((N, 4), dtype=np.int64),
            np.zeros((N, 3)),
        )  # fmt: skip

    def _rank_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """:func:`envs._kernels.rank_at_start`'s bounds and orders by goal and brand category, (3, 12, n):
        the single env's (:meth:`InfluencerMatchingEnv._rank_bounds`) with the brand category's share in
        place of each influencer's largest share, so the scan reads fewer of each segment. The ranking is
        exact under any upper bound, so it ranks as the single env does."""
        env, market = self.env, self.env._market
        pool, labels, coef = market.pool, market.segment, market.value_coef
        w_category, w_audience = (float(w) for w in env._fit_weights)
        shares = market.category_share  # (12, n)
        index = np.arange(len(labels))
        if w_category < 0 or w_audience < 0:  # no bound: every bound infinite, as the single env's
            bound = np.full((coef.shape[0], len(shares), len(labels)), np.inf)
            order = np.stack([np.stack([np.lexsort((index, labels))] * len(shares))] * coef.shape[0])
            return bound, order
        audience_max = np.sqrt(pool.audience.sum(axis=1))
        bound = np.stack(
            [value_bound(coef, share, share, audience_max, w_category, w_audience) for share in shares],
            axis=1,
        )  # (3, 12, n): the category's share is known, so it is both ends of the share's range
        order = np.stack([[np.lexsort((index, -b, labels)) for b in by_category] for by_category in bound])
        return bound, order

    def _lazy_tables(self, N: int) -> tuple:
        """What :func:`envs._vector_kernels.reset_campaigns` reads to compute a campaign's values only where
        they are read (see its docstring; used only if the market's audiences are the 12 columns
        :func:`envs._vector_kernels._blas_dot` writes out)."""
        env, market = self.env, self.env._market
        audience = np.ascontiguousarray(market.sqrt_audience, dtype=float)
        n, S = len(audience), env.n_segments
        coef = market.value_coef  # (3, 2, n)
        finite = np.isfinite(coef).all(axis=1)  # (3, n)
        counts = (~finite).sum(axis=1)
        not_finite = np.full((3, max(int(counts.max()), 1)), -1, dtype=np.int64)
        for goal in range(3):
            bad = np.flatnonzero(~finite[goal])
            not_finite[goal, : len(bad)] = bad
        # |fit| <= |w_c| max share + |w_a| max audience fit (Cauchy-Schwarz: the target sums to 1), widened.
        w = np.abs(np.asarray(env._fit_weights, dtype=float))
        fit_max = (
            w[0] * market.category_share.max() + w[1] * np.sqrt(market.pool.audience.sum(axis=1)).max()
        ) * 1.01
        magnitude = np.array([
            float(np.max(np.where(finite[g], np.abs(coef[g, 0]) + np.abs(coef[g, 1]) * fit_max, 0.0), initial=0.0))
            * 2.0 for g in range(3)
        ])  # fmt: skip
        incumbents = np.bincount(market.segment[: market.n_incumbents], minlength=S).astype(np.int64)
        self._dot_kind = np.full(n, -1, dtype=np.int64)
        return (audience, self._dot_kind, np.zeros((N, audience.shape[1])),
                np.zeros(N, dtype=bool), np.zeros(N), np.asarray(env._fit_weights, dtype=float), not_finite,
                magnitude, incumbents, int(market.n_incumbents))  # fmt: skip

    def _scan_table(self, order: np.ndarray, depth: int) -> np.ndarray:
        """What the lazy ranking (:func:`envs._vector_kernels._rank_lazily`) reads of the first ``depth``
        influencers of each segment in each scan order, side by side in that order, (3, 12, S, depth, 16):
        per goal, brand category, segment and place in the scan, the influencer's square-rooted audience
        (12 columns), category share, value coefficients a and b, and audience-product kernel. The same
        numbers as the market's arrays, read in sequence instead of at random (a scan rarely goes deeper)."""
        market, S = self.env._market, self.env.n_segments
        audience, kind = self._lazy_arrays[0], self._dot_kind
        segment_start = self.env._market_arrays[1]
        table = np.zeros((3, len(market.category_share), S, depth, 16))
        for s in range(S):
            lo = int(segment_start[s])
            index = order[:, :, lo : min(lo + depth, int(segment_start[s + 1]))]  # (3, 12, m)
            m = index.shape[2]
            table[:, :, s, :m, :12] = audience[index]
            for c in range(len(market.category_share)):
                table[:, c, s, :m, 12] = market.category_share[c][index[:, c]]
            for goal in range(3):
                table[goal, :, s, :m, 13] = market.value_coef[goal, 0][index[goal]]
                table[goal, :, s, :m, 14] = market.value_coef[goal, 1][index[goal]]
            table[:, :, s, :m, 15] = kind[index]
        return table

    def _blas_rows_known(self, probes: int = 48, check: bool = False) -> bool:
        """Whether every row of the single env's audience product (numpy's ``sqrt_audience @ sqrt(target)``,
        one BLAS call) is summed by one of :func:`envs._vector_kernels._blas_dot`'s kernels, found by
        comparing them with numpy on ``probes`` random targets (a private generator: no env's stream moves),
        or with ``check`` whether the kernels found before still agree. Which kernel sums a row depends on
        the BLAS build and its threads, so :meth:`reset` checks again."""
        audience = self._lazy_arrays[0]
        rng = np.random.default_rng([probes, int(check)])
        targets = rng.dirichlet(np.ones(audience.shape[1]), size=probes) ** rng.uniform(0.3, 3.0, (probes, 1))
        targets /= targets.sum(axis=1, keepdims=True)
        roots = np.sqrt(targets)
        products = np.stack([self.env._market.sqrt_audience @ root for root in roots])
        test = _vector_kernels.rows_agree if check else _vector_kernels.classify_rows
        return bool(test(audience, roots, products, self._dot_kind))

    def _start_campaigns(self, rows: np.ndarray, given: Sequence[Campaign | None] | None = None) -> None:
        """New campaigns in ``rows``: drawn by one compiled call with each row's generator (the campaign,
        then the churn, as :meth:`InfluencerMatchingEnv.reset`), set up by another. A campaign in
        ``given`` (one entry per row) replaces the drawn one, as ``options["campaign"]`` does in the single
        env's reset (which draws one all the same, so the churn and outcomes draw the same numbers).

        The drawn campaigns stay arrays (one row per campaign, :attr:`_drawn`); their
        :class:`~envs.campaigns.Campaign` objects are built only when read (:attr:`campaigns`)."""
        env, market, k = self.env, self.env._market, _kernels
        drawn, swaps = self._draw_starts(rows)
        category, goal, month0, target, scalars = drawn
        for row in rows.tolist():
            self._campaigns[row] = None  # built from self._drawn when read
        if given is not None:
            for b, own in enumerate(given):
                if own is not None:
                    row = int(rows[b])
                    self._campaigns[row] = own
                    category[b], goal[b], month0[b] = int(own.category), int(own.goal), int(own.start_month)
                    target[b] = own.target_audience
                    scalars[b] = (float(own.annual_budget), float(own.budget), float(own.order_value),
                                  float(own.value_per_engagement), float(own.value_per_1k_reach))  # fmt: skip
        self._drawn[0][rows], self._drawn[1][rows], self._drawn[2][rows] = category, goal, month0
        self._drawn[3][rows], self._drawn[4][rows] = target, scalars
        budget, order_value, per_engagement, per_1k_reach = (scalars[:, j] for j in range(1, 5))
        scale = value_scale(goal, month0, order_value, per_engagement, per_1k_reach, env.calibration)
        audience_fit = self._audience_fit[: len(rows)]  # reused: a fresh buffer would fault in its pages
        if not self._lazy:
            for b in range(len(rows)):
                np.matmul(market.sqrt_audience, np.sqrt(target[b]), out=audience_fit[b])
        # The campaigns' scalars, row by row as InfluencerMatchingEnv.reset sets them.
        self._category[rows] = category
        self._month_list[rows] = self._months_by_start[month0]
        self._budget_left[rows] = budget
        self._premium[rows] = env._premium[month0]
        consts = np.repeat(self._consts_template[None], len(rows), axis=0)
        consts[:, k.C_GOAL] = goal
        consts[:, k.C_BUDGET], consts[:, k.C_ORDER_VALUE] = budget, order_value
        consts[:, k.C_VALUE_PER_ENGAGEMENT], consts[:, k.C_VALUE_PER_1K_REACH] = per_engagement, per_1k_reach
        self._consts[rows] = consts
        observation = np.zeros((len(rows), self._observation.shape[1]), dtype=np.float32)
        everyone = np.arange(len(rows))
        observation[everyone, category] = 1.0
        observation[everyone, 12 + goal] = 1.0
        observation[:, 15] = [math.log10(max(b, 1.0)) for b in budget.tolist()]  # libm's, as the single env
        self._observation[rows] = observation
        offsets, churn = swaps
        if self._lazy:  # the single env's np.sqrt(target_audience), row by row
            self._lazy_arrays[2][rows] = np.sqrt(target)
        self._kernel(_vector_kernels.reset_campaigns, _vector_kernels.reset_campaigns_threaded, rows, offsets, churn,
                     self._churn_templates, audience_fit, scale, self._values, self._state, self._tables,
                     self._campaign_arrays, self._market_arrays, self._lazy, self._lazy_arrays)  # fmt: skip

    def _draw_starts(self, rows: np.ndarray) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, tuple]]:
        """The campaigns of ``rows`` as arrays ``(category, goal, start_month, target_audience, scalars)``
        (``scalars``: annual budget, budget, order value, value per engagement and per 1k reach) and their
        churn swaps (``offsets`` and ``(leavers, joiners, when)``), from
        :func:`envs._vector_kernels.draw_starts`' raw draws finished as :func:`envs.campaigns.sample_campaign`
        and :meth:`InfluencerMatchingEnv._churn_draws` finish theirs: the same operations on the same numbers
        (Python's ``math.exp`` and ``round`` on each number; numpy's row sums, divisions and products
        elementwise, which give each row's bits), so the same campaigns."""
        env, cal = self.env, self.env.calibration
        ints, floats, gammas, offsets, leavers, joiners, uniforms = self._kernel(
            _vector_kernels.draw_starts, _vector_kernels.draw_starts_threaded, rows, self._typed_generators,
            self._cdfs, self._alpha, self._log_ranges, self._churn_params, self._swap_buffers,
        )  # fmt: skip
        category, goal, month0 = ints[:, 0].copy(), ints[:, 1].copy(), ints[:, 3].copy()
        total = gammas.sum(axis=1)
        empty = ~(total > 0)
        target = gammas / np.where(empty, 1.0, total)[:, None]
        if empty.any():
            alpha = self._alpha[category[empty]]
            target[empty] = alpha / alpha.sum(axis=1, keepdims=True)
        exp, share = math.exp, cal.campaign_budget_share
        median, log_sd = cal.order_value_median, cal.order_value_log_sd
        scalars = np.empty((len(rows), 5))
        annual = [round(exp(x), 2) for x in floats[:, 0].tolist()]
        scalars[:, 0] = annual
        scalars[:, 1] = [round(a * share, 2) for a in annual]
        scalars[:, 2] = [median * exp(log_sd * z) for z in floats[:, 1].tolist()]
        scalars[:, 3] = [exp(x) for x in floats[:, 2].tolist()]
        scalars[:, 4] = [exp(x) for x in floats[:, 3].tolist()]
        when = np.empty(len(uniforms), dtype=np.int64)
        if env.churn_rate > 0:  # _churn_draws' operations, on every row's uniforms at once (elementwise:
            # the same bits as row by row; checked on 3,000 random batches with numpy's AVX-512 loops)
            p_leave, weeks = self._churn_params[2], env.campaign_weeks
            at = 1 + np.floor(np.log1p(-uniforms * p_leave) / math.log1p(-env.churn_rate)).astype(np.int64)
            when = np.minimum(at, weeks - 1)
        return (category, goal, month0, target, scalars), (offsets, (leavers, joiners, when))

    def _campaign(self, i: int) -> Campaign | None:
        """Sub-env ``i``'s campaign: the one given to :meth:`reset`, or the drawn one built from its arrays
        (the fields :func:`envs.campaigns.sample_campaign` would have given it)."""
        if self._campaigns[i] is None and self._started:
            category, goal, month0, target, scalars = (part[i] for part in self._drawn)
            annual, budget, order_value, per_engagement, per_1k_reach = scalars.tolist()
            self._campaigns[i] = Campaign(
                category=int(category), goal=int(goal), target_audience=target.copy(), annual_budget=annual,
                budget=budget, order_value=order_value, start_month=int(month0),
                value_per_engagement=per_engagement, value_per_1k_reach=per_1k_reach,
            )  # fmt: skip
        return self._campaigns[i]

    # ---------------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new campaign in every sub-env; ``seed`` as in the class docstring.
        ``options={"campaigns": [...]}`` gives one :class:`~envs.campaigns.Campaign` per sub-env (None:
        drawn), as the single env's ``options={"campaign": ...}``; autoresets draw their own."""
        given = self._given_campaigns(options)
        seeds = self._seeds(seed)
        if isinstance(seed, (int, np.integer)):
            super().reset(seed=int(seed))
        for i, s in enumerate(seeds):
            if s is not None or not self._started:
                self._generators[i].bit_generator.state = seeding.np_random(s)[0].bit_generator.state
        self._started = True
        if self._lazy and not self._blas_rows_known(probes=2, check=True):
            self._lazy = False  # the BLAS sums some row differently now (its threads changed): every value
        rows = np.arange(self.num_envs)
        self._start_campaigns(rows, given)
        self._autoreset[:] = False
        self._no_offer(rows)
        return self._observation.copy(), self._info()

    def _given_campaigns(self, options: dict[str, Any] | None) -> list[Campaign | None] | None:
        """``options["campaigns"]``: one :class:`~envs.campaigns.Campaign` (or None: drawn) per sub-env."""
        if not options:
            return None
        unknown = sorted(set(options) - {"campaigns"})
        if unknown:
            raise ValueError(f"options: the vector env takes only 'campaigns', got {unknown}")
        given = options["campaigns"]
        if (
            not isinstance(given, (list, tuple))
            or len(given) != self.num_envs
            or not all(c is None or isinstance(c, Campaign) for c in given)
        ):
            raise ValueError(
                f"options['campaigns']: expected a list of {self.num_envs} envs.campaigns.Campaign (or None), "
                f"got {type(given).__name__} {given!r:.60}"
            )
        return list(given)

    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds: list[int | None] = [None if s is None else int(s) for s in seed]  # type: ignore[union-attr]
        if len(seeds) != self.num_envs:
            raise ValueError(f"seed: expected an int or {self.num_envs} seeds, got {len(seeds)}")
        return seeds

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One week of every campaign (see the class docstring for the autoreset)."""
        if not self._started:
            raise RuntimeError("call reset() before using the environment")
        actions = self._check_actions(actions)
        reward, terminated, truncated = self._out[0], self._out[1], self._out[2]
        if self.autoreset_mode == AutoresetMode.NEXT_STEP and self._autoreset.any():
            restart = np.flatnonzero(self._autoreset)
            stepping = np.flatnonzero(~self._autoreset)
            self._kernel(_vector_kernels.step_campaigns, _vector_kernels.step_campaigns_threaded, stepping,
                         actions[stepping], *self._step_arrays)  # fmt: skip
            self._start_campaigns(restart)
            self._no_offer(restart)
            reward[restart], terminated[restart], truncated[restart] = 0.0, False, False
        else:
            self._kernel(_vector_kernels.step_campaigns, _vector_kernels.step_campaigns_threaded,
                         np.arange(self.num_envs), actions, *self._step_arrays)  # fmt: skip
        done = terminated | truncated
        self._autoreset = done.copy()
        info = self._info()
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            final_obs = np.empty(self.num_envs, dtype=object)
            rows = np.flatnonzero(done)
            for i in rows:
                final_obs[i] = self._observation[i].copy()
            final_info = info
            self._start_campaigns(rows)
            self._autoreset[:] = False
            info = self._info()
            for key, value in info["outcome"].items():  # the new campaigns have made no offer yet
                if not key.startswith("_"):
                    value[rows] = NO_OFFER[key]
            info.update(
                final_obs=final_obs, _final_obs=done.copy(), final_info=final_info, _final_info=done.copy()
            )
        return self._observation.copy(), reward.copy(), terminated.copy(), truncated.copy(), info

    @property
    def _step_arrays(self) -> tuple:
        """What :func:`envs._vector_kernels.step_campaigns` takes after the rows and their actions."""
        return (self._typed_generators, self._state, self._tables, self._campaign_arrays, self._market_arrays,
                self._out, self._lazy, self._lazy_arrays, self._values)  # fmt: skip

    def _kernel(self, serial: Any, threaded: Any, rows: np.ndarray, *args: Any) -> Any:
        """``serial(rows, *args)``, or with :attr:`num_threads` > 1 and rows to share,
        ``threaded(num_threads, rows, *args)`` on that many threads (the same numbers)."""
        if self.num_threads > 1 and len(rows) > 1:
            with _threads(self.num_threads):
                return threaded(self.num_threads, rows, *args)
        return serial(rows, *args)

    def _check_actions(self, actions: Any) -> np.ndarray:
        array = np.asarray(actions)
        if array.shape != (self.num_envs,) or not np.issubdtype(array.dtype, np.integer):
            if (
                array.shape == (self.num_envs,)
                and np.issubdtype(array.dtype, np.floating)
                and np.all(array == np.round(array))
            ):
                array = array.astype(np.int64)
            else:
                raise ValueError(f"actions: expected {self.num_envs} integers, got {actions!r}")
        array = array.astype(np.int64, copy=False)
        if array.min() < 0 or array.max() > self.env.wait_action:
            raise ValueError(f"actions: expected integers in [0, {self.env.wait_action}], got {actions!r}")
        return array

    def _no_offer(self, rows: np.ndarray) -> None:
        out = self._out
        out[3][rows], out[4][rows], out[5][rows], out[6][rows] = -1, -1, 0.0, False
        out[7][rows], out[8][rows] = 0, 0.0

    def _info(self) -> dict[str, Any]:
        """The batched info, as ``SyncVectorEnv`` merges the single env's (every key with its mask)."""
        offered, segment, ratio, accepted, counts, amounts = self._out[3:]
        ids = self._ids[offered + 1]
        everyone = np.ones(self.num_envs, dtype=bool)
        columns = {
            "influencer_id": ids,
            "segment": segment.copy(),
            "offer_ratio": ratio.copy(),
            "accepted": accepted.copy(),
            "reach": counts[:, _vector_kernels.OUT_REACH].copy(),
            "engagements": counts[:, _vector_kernels.OUT_ENGAGEMENTS].copy(),
            "clicks": counts[:, _vector_kernels.OUT_CLICKS].copy(),
            "conversions": counts[:, _vector_kernels.OUT_CONVERSIONS].copy(),
            "cost": amounts[:, _vector_kernels.OUT_COST].copy(),
            "revenue": amounts[:, _vector_kernels.OUT_REVENUE].copy(),
            "value": amounts[:, _vector_kernels.OUT_VALUE].copy(),
        }
        outcome: dict[str, np.ndarray] = {}
        for key, value in columns.items():
            outcome[key], outcome[f"_{key}"] = value, everyone
        return {
            "outcome": outcome,
            "_outcome": everyone,
            "action_mask": self._mask.copy(),
            "_action_mask": everyone,
            "expected_rewards": self._expected.copy(),
            "_expected_rewards": everyone,
        }

    def action_masks(self) -> np.ndarray:
        """Valid actions of every sub-env, ``(num_envs, n_actions)`` bool (the sb3-contrib convention)."""
        return self._mask.copy()

    def candidate_features(self, fields: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Every sub-env's :meth:`InfluencerMatchingEnv.candidate_features`, batched: each field
        ``(num_envs, n_actions)`` (NaN for waiting and invalid actions), the same numbers (what the
        heuristics decide from); ``fields`` picks some (default all)."""
        env, market, N = self.env, self.env._market, self.num_envs
        A = env.wait_action + 1
        wanted = list(
            CANDIDATE_FEATURES if fields is None else [fields] if isinstance(fields, str) else fields
        )
        unknown = sorted(set(wanted) - set(CANDIDATE_FEATURES))
        if unknown:
            raise ValueError(f"fields: expected some of {list(CANDIDATE_FEATURES)}, got {unknown}")
        flat = self._candidate.reshape(N, -1)
        valid = flat >= 0
        index = np.where(valid, flat, 0)
        pool = market.pool
        out: dict[str, np.ndarray] = {}
        if "fit" in wanted or "value_per_dollar" in wanted:
            out["fit"], out["value_per_dollar"] = np.full((N, A), np.nan), np.full((N, A), np.nan)
            _vector_kernels.candidate_values(np.arange(N), self._candidate, self._category, self._consts,
                                             market.category_share, self._fit, self._value_per_dollar, self._lazy,
                                             self._lazy_arrays, self._values[1], out["fit"],
                                             out["value_per_dollar"])  # fmt: skip
        columns = {
            "followers": lambda: pool.followers[index],
            "price": lambda: env._price[index],
            "cost": lambda: env.offer_levels[env._action_level] * env._price[index] * self._premium[:, None],
            "engagement_rate": lambda: pool.engagement_rate[index],
            "category_share": lambda: pool.category_mix[index, self._category[:, None]],
        }
        for key, column in columns.items():
            if key in wanted:
                out[key] = np.full((N, A), np.nan)
                out[key][:, :-1] = np.where(valid, column(), np.nan)
        if "segment" in wanted:
            out["segment"] = np.broadcast_to(np.append(env._action_segment, -1), (N, A)).copy()
        if "offer_ratio" in wanted:
            levels = np.append(env.offer_levels[env._action_level], np.nan)
            out["offer_ratio"] = np.broadcast_to(levels, (N, A)).copy()
        return {key: out[key] for key in CANDIDATE_FEATURES if key in wanted}

    def expected_rewards(self) -> np.ndarray:
        """Exact expected reward of every action of every sub-env, ``(num_envs, n_actions)``, thousands
        of USD (as the single env's ``expected_rewards()``)."""
        return self._expected.copy()

    @property
    def campaigns(self) -> list[Campaign | None]:
        """Each sub-env's current campaign."""
        return [self._campaign(i) for i in range(self.num_envs)]

    @property
    def budget_left(self) -> np.ndarray:
        """Each sub-env's budget left, USD."""
        return self._budget_left.copy()

    @property
    def week(self) -> np.ndarray:
        """Each sub-env's week."""
        return self._week.copy()

    def render(self) -> tuple[Any, ...] | None:
        """Each sub-env's frame or text (``render_mode`` "rgb_array" or "ansi"), else None."""
        if self.render_mode is None:
            return None
        return tuple(self.sub_env(i).render() for i in range(self.num_envs))

    def sub_env(self, i: int) -> InfluencerMatchingEnv:
        """A single env showing sub-env ``i``'s current state, to read and not to step: ``render()``,
        ``campaign``, ``candidate_ids()``, ``sponsored_load_now()``, ``hired_ids()``. Read candidate facts
        from :meth:`candidate_features` (where this env computes the fit and value per dollar only where
        it reads them, the view's rows of them are not filled)."""
        if not 0 <= i < self.num_envs:
            raise IndexError(f"sub_env: expected an index in [0, {self.num_envs}), got {i!r}")
        env = self.env
        campaign = self._campaign(i)
        if campaign is None:
            raise RuntimeError("call reset() before using the environment")
        arrays = self._campaign_arrays
        view = _State(
            campaign=campaign, month_list=self._month_list[i].tolist(), category_share=arrays[7][self._category[i]],
            week=int(self._week[i]), budget_left=float(self._budget_left[i]), premium=float(self._premium[i]),
            rates=arrays[11], load=arrays[8], consts=self._consts[i], value_per_dollar=self._value_per_dollar[i],
            fit=self._fit[i], join=self._join[i], leave=self._leave[i], hired=self._hired[i], ranked=arrays[0][i],
            n_eligible=arrays[1][i], prefix=arrays[2][i], complete=arrays[3][i], candidate=self._candidate[i],
            terms=arrays[17][i], expected=self._expected[i], mask=self._mask[i], hires=self._hires[i],
            hired_index=arrays[12][i][: self._n_hired[i]].tolist(), hired_array=arrays[12][i],
            hired_segment=arrays[13][i], hired_load=arrays[14][i], observation=self._observation[i],
            load_sum=self._load_sum[i], load_count=self._load_count[i], followers=None, extra_load=None,
            spent=float(self._spent[i]), total_reward=float(self._total_reward[i]),
        )  # fmt: skip
        single = copy.copy(env)
        single._state = view
        return single


#: The fields of :meth:`InfluencerMatchingVectorEnv.candidate_features`, in the single env's order.
CANDIDATE_FEATURES = ("followers", "price", "cost", "engagement_rate", "category_share", "fit", "value_per_dollar",
                      "segment", "offer_ratio")  # fmt: skip


def _calibration_cdf(cal: Any, name: str) -> np.ndarray:
    """The cumulative shares :meth:`envs.calibration.Calibration.draw` searches (the last one +inf)."""
    cdf = np.cumsum(cal.probabilities(name))
    cdf[-1] = np.inf
    return cdf


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """numba's thread count for this thread's parallel kernels set to ``n``, then restored."""
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _num_threads(value: Any) -> int:
    """``num_threads``: a whole number from 1 to numba's thread limit (``NUMBA_NUM_THREADS``, the cores)."""
    limit: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # set from the environment at import
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= limit:
        raise ValueError(
            f"num_threads: expected a whole number from 1 to {limit} (NUMBA_NUM_THREADS), got {value!r}"
        )
    return int(value)


def _autoreset_mode(value: str | AutoresetMode) -> AutoresetMode:
    try:
        mode = AutoresetMode(value)
    except ValueError:
        mode = None
    if mode not in AUTORESET_MODES:
        names = [m.value for m in AUTORESET_MODES]
        raise ValueError(f"autoreset_mode: expected one of {names}, got {value!r}")
    return mode
