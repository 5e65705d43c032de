"""Benchmarks of the matching layer: cluster-first retrieval against an exact scan, and COP-KMeans
against scikit-learn's KMeans. Used by :mod:`experiments.bench.benchmarks` (``influmatch bench``); the
synthetic data are shaped like the calibrated market, whose shares come from
:class:`envs.calibration.Calibration` (one home for them; sources in ``docs/calibration.md``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus
from threadpoolctl import threadpool_limits

from envs.calibration import Calibration
from matching.features import AUDIENCE_COLUMNS, CATEGORIES, brand_queries
from matching.retrieval import PROBE_RANKINGS, SegmentIndex, exact_search, recall_at_k
from matching.segmentation import ConstrainedKMeans, constraint_violations, one_blas_thread

__all__ = ["benchmark_cop_kmeans", "benchmark_retrieval", "synthetic_fit_data"]


def _best_time(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(best wall-clock seconds of ``repeats`` calls, the last call's result)."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def _dirichlet_rows(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One Dirichlet draw per row of ``alpha`` (vectorised through Gamma variates)."""
    draws = rng.gamma(alpha)
    return draws / draws.sum(axis=1, keepdims=True)


def synthetic_fit_data(
    n_influencers: int,
    n_queries: int,
    rng: np.random.Generator,
    calibration: Calibration | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic influencer embeddings and brand queries shaped like the calibrated market.

    Influencers: a primary category with the calibration's ``influencer_category_mix``, a category mix
    Dirichlet(``category_mix_base_alpha`` + ``category_mix_primary_alpha`` on the primary), an audience
    Dirichlet(``audience_concentration`` × base) around the category-tilted base audience
    (:meth:`~envs.calibration.Calibration.base_audience`). Brands: a category with the
    ``brand_category_mix`` and a target Dirichlet(``target_concentration`` × base).

    Parameters
    ----------
    n_influencers, n_queries : int
    rng : numpy.random.Generator
    calibration : Calibration, optional
        Default: ``Calibration()``.

    Returns
    -------
    X : ndarray of shape (n_influencers, 24)
        Category mix and the square root of the audience shares (the brand-fit embedding).
    queries : ndarray of shape (n_queries, 24)
    """
    cal = Calibration() if calibration is None else calibration
    n_categories = len(CATEGORIES)
    base = cal.base_audience()
    assert base.shape == (n_categories, len(AUDIENCE_COLUMNS))

    primary = rng.choice(n_categories, size=n_influencers, p=cal.probabilities("influencer_category_mix"))
    mix_alpha = cal.category_mix_base_alpha + cal.category_mix_primary_alpha * np.eye(n_categories)[primary]
    mix = _dirichlet_rows(mix_alpha, rng)
    audience = _dirichlet_rows(cal.audience_concentration * base[primary], rng)
    X = np.hstack([mix, np.sqrt(audience)])

    brand_category = rng.choice(n_categories, size=n_queries, p=cal.probabilities("brand_category_mix"))
    target = _dirichlet_rows(cal.target_concentration * base[brand_category], rng)
    return X, brand_queries(brand_category, target)


def benchmark_retrieval(
    n_influencers: int = 1_000_000,
    n_queries: int = 1_000,
    k: int = 10,
    *,
    n_lists: int = 256,
    n_probes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64),
    probe_by: tuple[str, ...] = PROBE_RANKINGS,
    repeats: int = 3,
    random_state: int = 0,
) -> list[dict[str, Any]]:
    """Recall and speed of :class:`~matching.retrieval.SegmentIndex` against
    :func:`~matching.retrieval.exact_search` on synthetic brand fits.

    Data from :func:`synthetic_fit_data`. The index is built once per probe ranking (its build time is
    reported, not counted in the search time); every search answers all ``n_queries`` queries in one
    call, and each time is the best of ``repeats`` runs.

    Returns
    -------
    list of dict
        One row per (probe ranking, n_probe): ``probe_by``, ``n_probe``, ``n_lists``, ``recall_at_k``,
        ``k``, ``seconds`` (search), ``exact_seconds``, ``speedup`` (exact ÷ search time),
        ``build_seconds``, ``n_influencers``, ``n_queries``.
    """
    rng = np.random.default_rng(random_state)
    X, queries = synthetic_fit_data(n_influencers, n_queries, rng)
    exact_seconds, (_, exact_indices) = _best_time(lambda: exact_search(X, queries, k), repeats)
    rows = []
    for ranking in probe_by:
        start = time.perf_counter()
        index = SegmentIndex(n_lists, random_state=random_state, probe_by=ranking).fit(X)
        build_seconds = time.perf_counter() - start
        for n_probe in n_probes:
            seconds, (_, indices) = _best_time(functools.partial(index.search, queries, k, n_probe), repeats)
            rows.append(
                {
                    "probe_by": ranking,
                    "n_probe": int(n_probe),
                    "n_lists": index.n_lists_,
                    "k": k,
                    "recall_at_k": recall_at_k(indices, exact_indices),
                    "seconds": seconds,
                    "exact_seconds": exact_seconds,
                    "speedup": exact_seconds / seconds,
                    "build_seconds": build_seconds,
                    "n_influencers": n_influencers,
                    "n_queries": n_queries,
                }
            )
    return rows


def _blob_constraints(
    truth: np.ndarray, n_clusters: int, n_constraints: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Half must-link pairs inside a blob, half cannot-link pairs across blobs (a feasible set)."""
    n_samples = len(truth)
    n_ml = n_constraints // 2
    n_cl = n_constraints - n_ml
    order = np.argsort(truth, kind="stable")
    starts = np.searchsorted(truth[order], np.arange(n_clusters))
    sizes = np.bincount(truth, minlength=n_clusters)
    blob = rng.integers(n_clusters, size=n_ml)
    must_link = np.column_stack(
        [order[starts[blob] + rng.integers(sizes[blob])], order[starts[blob] + rng.integers(sizes[blob])]]
    )
    a = rng.integers(n_samples, size=4 * n_cl)
    b = rng.integers(n_samples, size=4 * n_cl)
    across = np.flatnonzero(truth[a] != truth[b])[:n_cl]
    cannot_link = np.column_stack([a[across], b[across]])
    return must_link, cannot_link


def benchmark_cop_kmeans(
    n_samples: int = 100_000,
    n_features: int = 16,
    n_clusters: int = 8,
    n_constraints: int = 1_000,
    *,
    n_init: int = 5,
    max_iter: int = 300,
    tol: float = 1e-4,
    cluster_std: float = 4.0,
    repeats: int = 3,
    random_state: int = 0,
) -> dict[str, Any]:
    """Time :class:`~matching.segmentation.ConstrainedKMeans` with constraints against plain
    :class:`sklearn.cluster.KMeans`.

    Data: ``n_clusters`` Gaussian blobs (``sklearn.datasets.make_blobs``, centres in a box of side 20,
    spread ``cluster_std``; the default 4.0 makes blobs touch, so runs take several iterations).
    Constraints: half must-link pairs inside a blob, half cannot-link pairs across blobs, drawn at random
    (so the set is feasible). Settings are made comparable: for each of ``n_init`` runs both estimators
    start from the same k-means++ centres (drawn beforehand, not timed) and run Lloyd iterations with the
    same ``max_iter`` and ``tol``; each fit is timed as the best of ``repeats``, and the times are summed
    over the runs. (With their own random starts the two would converge in very different numbers of
    iterations, which says nothing about speed.) Both run on one core: our loop is single-threaded, and
    KMeans's OpenMP threads would make the ratio measure the machine's second core (on a shared one it
    moved between 0.25 and 0.43); KMeans on all cores is reported beside it.

    Returns
    -------
    dict
        ``name``, ``value`` (our fit time, s), ``unit``, ``reference``, ``reference_value`` (KMeans fit
        time, s), ``ratio`` (KMeans time ÷ our time: higher is better), ``goal`` (1/3: at most three times
        KMeans's time), and details: sizes, iterations of both, and the number of violated constraints
        (ours must be 0).
    """
    from sklearn.datasets import make_blobs

    rng = np.random.default_rng(random_state)
    X, truth = make_blobs(
        n_samples=n_samples,
        n_features=n_features,
        centers=n_clusters,
        cluster_std=cluster_std,
        random_state=random_state,
    )
    must_link, cannot_link = _blob_constraints(truth, n_clusters, n_constraints, rng)

    our_seconds = reference_seconds = threaded_seconds = 0.0
    our_iterations = reference_iterations = 0
    violations = reference_violations = 0
    for run in range(n_init):
        init, _ = kmeans_plusplus(X, n_clusters, random_state=random_state + run)
        ours = ConstrainedKMeans(n_clusters, init=init, n_init=1, max_iter=max_iter, tol=tol)
        with one_blas_thread():  # (its blocks stay below OpenBLAS's threading size anyway)
            fit = functools.partial(ours.fit, X, must_link=must_link, cannot_link=cannot_link)
            our_seconds += _best_time(fit, repeats)[0]
        reference = KMeans(n_clusters, init=init, n_init=1, max_iter=max_iter, tol=tol, algorithm="lloyd")
        with threadpool_limits(limits=1, user_api="openmp"):  # the same one core as ours
            reference_seconds += _best_time(functools.partial(reference.fit, X), repeats)[0]
        threaded_seconds += _best_time(functools.partial(reference.fit, X), repeats)[0]
        our_iterations += int(ours.n_iter_)
        reference_iterations += int(reference.n_iter_)
        violations += sum(constraint_violations(ours.labels_, must_link, cannot_link))
        reference_violations += sum(constraint_violations(reference.labels_, must_link, cannot_link))
    return {
        "name": "cop_kmeans_fit",
        "value": our_seconds,
        "unit": "s",
        "reference": "sklearn KMeans (lloyd, one thread like ours) without constraints, same data and starts",
        "reference_value": reference_seconds,
        "reference_all_cores_seconds": threaded_seconds,
        "ratio": reference_seconds / our_seconds,
        "goal": 1.0 / 3.0,
        "n_samples": n_samples,
        "n_features": n_features,
        "n_clusters": n_clusters,
        "n_must_link": int(len(must_link)),
        "n_cannot_link": int(len(cannot_link)),
        "n_init": n_init,
        "n_iter": our_iterations,
        "reference_n_iter": reference_iterations,
        "violated_constraints": violations,
        "reference_violated_constraints": reference_violations,
    }
