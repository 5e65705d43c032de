"""Influencer segmentation: k-means segments of a pool, and COP-KMeans with pairwise constraints.

- :class:`InfluencerSegmenter` turns an influencer frame into ``n_segments`` segments (fixed, or chosen
  by silhouette) with :class:`~matching.features.InfluencerFeatures` and :class:`sklearn.cluster.KMeans`.
- :class:`ConstrainedKMeans` is COP-KMeans (Wagstaff, Cardie, Rogers and Schroedl, "Constrained K-means
  Clustering with Background Knowledge", ICML 2001) as a scikit-learn estimator: every must-link and
  cannot-link constraint holds in ``labels_``, and an infeasible set raises
  :class:`InfeasibleConstraintsError`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.metrics import silhouette_score
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import ThreadpoolController

from matching.features import InfluencerFeatures

logger = logging.getLogger(__name__)

RandomStateLike = int | np.random.Generator | np.random.RandomState | None

# Distances are computed by blocks of this many rows: small enough to stay in cache and below the size
# at which OpenBLAS starts threads for a thin product (several times slower on two cores).
_ROWS_PER_BLOCK = 1024


# k-means on fewer rows than this runs on one OpenMP thread (see single_threaded_below).
_THREADED_MIN_ROWS = 50_000


@functools.cache
def _thread_pools() -> ThreadpoolController:
    # Inspecting the loaded libraries takes milliseconds, so it is done once (numpy's BLAS and
    # scikit-learn's OpenMP runtime are loaded by the imports of this module).
    return ThreadpoolController()


def single_threaded_below(n_rows: int) -> contextlib.AbstractContextManager:
    """Context that runs scikit-learn's k-means on one OpenMP thread when ``n_rows`` is small.

    On small data the threads save little, and on a busy machine (parallel tests, sweeps) OpenMP's
    waiting threads made a 2,000-influencer fit 3-25 times slower here. The limit is lifted on exit.
    """
    if n_rows < _THREADED_MIN_ROWS:
        return _thread_pools().limit(limits=1, user_api="openmp")
    return contextlib.nullcontext()


def one_blas_thread() -> contextlib.AbstractContextManager:
    """Context that runs BLAS on one thread, for many mid-sized matrix products in a row.

    On a busy two-core machine OpenBLAS's threads made such loops 3-8 times slower than one thread, and
    on an idle one a second thread gained little for them. The limit is lifted on exit.
    """
    return _thread_pools().limit(limits=1, user_api="blas")


def random_state_of(random_state: RandomStateLike) -> np.random.RandomState:
    """A :class:`numpy.random.RandomState` for scikit-learn from an int, a Generator, a RandomState or None.

    A :class:`numpy.random.Generator` is consumed once (one 32-bit draw) to seed the RandomState, so a
    generator spawned from the run's :class:`numpy.random.SeedSequence` gives reproducible results.
    """
    if isinstance(random_state, np.random.Generator):
        return np.random.RandomState(int(random_state.integers(0, 2**32 - 1)))
    return check_random_state(random_state)


def _draw_seed(rs: np.random.RandomState) -> int:
    return int(rs.randint(np.iinfo(np.int32).max))


def _nearest_centre(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (squared Euclidean) of every row of ``X``, by row blocks.

    Ties go to the lowest centre index.
    """
    scaled = -2.0 * centers.T
    center_sq_norms = np.einsum("ij,ij->i", centers, centers)
    n = X.shape[0]
    labels = np.empty(n, dtype=np.int64)
    for start in range(0, n, _ROWS_PER_BLOCK):
        stop = min(start + _ROWS_PER_BLOCK, n)
        distances = X[start:stop] @ scaled
        distances += center_sq_norms
        labels[start:stop] = distances.argmin(axis=1)
    return labels


def _nearest_centre_with_sums(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_nearest_centre` plus the per-centre sums of the rows assigned to it, in one pass over X."""
    k = centers.shape[0]
    scaled = -2.0 * centers.T
    center_sq_norms = np.einsum("ij,ij->i", centers, centers)
    one_hot = np.eye(k)
    n = X.shape[0]
    labels = np.empty(n, dtype=np.int64)
    sums = np.zeros((k, X.shape[1]))
    for start in range(0, n, _ROWS_PER_BLOCK):
        stop = min(start + _ROWS_PER_BLOCK, n)
        block = X[start:stop]
        distances = block @ scaled
        distances += center_sq_norms
        block_labels = distances.argmin(axis=1)
        labels[start:stop] = block_labels
        sums += one_hot[block_labels].T @ block
    return labels, sums


def _squared_distances_to(X: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Squared distance of every row of ``X`` to its own centre ``centers[labels]``, by row blocks."""
    out = np.empty(X.shape[0])
    step = 16 * _ROWS_PER_BLOCK
    for start in range(0, X.shape[0], step):
        stop = min(start + step, X.shape[0])
        diff = X[start:stop] - centers[labels[start:stop]]
        out[start:stop] = np.einsum("ij,ij->i", diff, diff)
    return out


def _inertia(X: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> float:
    """Sum of squared distances of the rows of ``X`` to their centres."""
    return float(_squared_distances_to(X, centers, labels).sum())


# ----------------------------------------------------------------------------------- COP-KMeans


class InfeasibleConstraintsError(ValueError):
    """The must-link and cannot-link constraints cannot all hold.

    Attributes
    ----------
    pair : tuple of int or None
        A cannot-link pair of point indices that could not be satisfied.
    """

    def __init__(self, message: str, pair: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.pair = pair


def _as_pairs(pairs: Iterable[Sequence[int]] | np.ndarray, n_samples: int, kind: str) -> np.ndarray:
    """Constraint pairs as an int64 array of shape (m, 2), checked against ``n_samples``."""
    array = np.asarray(pairs if isinstance(pairs, np.ndarray) else list(pairs))
    if array.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(
            f"{kind} must be a sequence of (i, j) index pairs, got an array of shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.integer):
        if not (np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0)):
            raise ValueError(f"{kind} must hold integer sample indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    bad = (array < 0) | (array >= n_samples)
    if bad.any():
        i, j = array[np.flatnonzero(bad.any(axis=1))[0]]
        raise ValueError(f"{kind} pair ({i}, {j}) refers to a sample outside [0, {n_samples})")
    return array


@dataclass(frozen=True)
class _Constraints:
    """Must-link groups (transitive closure) and the cannot-link graph between them.

    ``points`` are the constrained sample indices (sorted) and ``group_of_point`` their group: a group is
    a connected component of the must-link graph (a point that is only cannot-linked is a group of one).
    ``order`` lists the groups that have cannot-link neighbours, most constrained first; the other groups
    go to their nearest centre in one vectorised step.
    """

    points: np.ndarray
    group_of_point: np.ndarray
    n_groups: int
    membership: sparse.csr_matrix  # (n_groups, n_samples), 1 where the sample is in the group
    group_size: np.ndarray
    order: tuple[int, ...]
    neighbours: dict[int, tuple[int, ...]]
    example_pair: dict[int, tuple[int, int]]

    @classmethod
    def build(cls, n_samples: int, must_link: Any, cannot_link: Any) -> _Constraints:
        ml = _as_pairs(must_link, n_samples, "must_link")
        cl = _as_pairs(cannot_link, n_samples, "cannot_link")
        points = np.unique(np.concatenate([ml.ravel(), cl.ravel()]))
        n_points = points.size
        ml_local = np.searchsorted(points, ml)
        graph = sparse.coo_matrix(
            (np.ones(len(ml_local)), (ml_local[:, 0], ml_local[:, 1])), shape=(n_points, n_points)
        )
        n_groups, group_of_point = connected_components(graph, directed=False)
        group_of_point = group_of_point.astype(np.int64)
        membership = sparse.csr_matrix(
            (np.ones(n_points), (group_of_point, points)), shape=(n_groups, n_samples)
        )
        group_size = np.bincount(group_of_point, minlength=n_groups).astype(np.float64)

        cl_groups = group_of_point[np.searchsorted(points, cl)]
        inside = np.flatnonzero(cl_groups[:, 0] == cl_groups[:, 1])
        if inside.size:
            i, j = (int(v) for v in cl[inside[0]])
            if i == j:
                message = f"cannot-link ({i}, {j}) asks point {i} to be apart from itself"
            else:
                message = (
                    f"cannot-link ({i}, {j}) is infeasible: points {i} and {j} are joined by a chain of "
                    "must-link constraints"
                )
            raise InfeasibleConstraintsError(message, pair=(i, j))

        neighbours: dict[int, set[int]] = {}
        example_pair: dict[int, tuple[int, int]] = {}
        for (a, b), (i, j) in zip(cl_groups.tolist(), cl.tolist(), strict=True):
            neighbours.setdefault(a, set()).add(b)
            neighbours.setdefault(b, set()).add(a)
            example_pair.setdefault(a, (i, j))
            example_pair.setdefault(b, (i, j))
        order = tuple(sorted(neighbours, key=lambda g: (-len(neighbours[g]), g)))
        return cls(
            points=points,
            group_of_point=group_of_point,
            n_groups=int(n_groups),
            membership=membership,
            group_size=group_size,
            order=order,
            neighbours={g: tuple(sorted(h)) for g, h in neighbours.items()},
            example_pair=example_pair,
        )


class _GreedyFailure(Exception):
    def __init__(self, group: int) -> None:
        super().__init__(group)
        self.group = group


@dataclass(frozen=True)
class _FitData:
    """Arrays computed once per fit and shared by every initialisation."""

    X: np.ndarray
    constraints: _Constraints
    group_sum: np.ndarray  # (n_groups, n_features)
    group_sq_norm: np.ndarray  # (n_groups,)
    tol: float


class ConstrainedKMeans(ClusterMixin, BaseEstimator):
    """COP-KMeans: k-means in which must-link and cannot-link constraints always hold.

    Lloyd's algorithm (Wagstaff et al., ICML 2001), where the assignment step respects the constraints:

    1. Must-link constraints are closed transitively: must-linked points form a group (a connected
       component of the must-link graph, i.e. union-find) that is assigned as a unit, to the centre that
       minimises the group's summed squared distance. A cannot-link inside one group is infeasible.
    2. Cannot-links are lifted to the groups. Groups that take part in a cannot-link are assigned greedily,
       most constrained first (then by lowest point index), each to its closest centre not already taken by
       a cannot-linked group. If a group finds no such centre, this initialisation fails and the next one
       is tried; if all ``n_init`` fail, :class:`InfeasibleConstraintsError` names the group and a pair.
    3. All other points go to their nearest centre in one vectorised step (distances by row blocks).

    The greedy order is a deviation from the paper, which visits points in data order; visiting the most
    constrained groups first fails less often. The update step is the mean; a centre left without points
    moves to the unconstrained point farthest from its centre. :meth:`predict` assigns new points to the
    nearest centre (constraints refer to training samples only).

    Parameters
    ----------
    n_clusters : int, default=8
    init : "k-means++" or array of shape (n_clusters, n_features), default="k-means++"
        Initial centres: k-means++ (:func:`sklearn.cluster.kmeans_plusplus`), or given centres, in which
        case a single run is made whatever ``n_init`` says.
    max_iter : int, default=300
        Maximum Lloyd iterations per initialisation.
    n_init : int, default=10
        Number of k-means++ initialisations; the feasible run with the lowest inertia is kept.
    tol : float, default=1e-4
        Convergence when the summed squared centre shift is at most ``tol`` times the mean feature
        variance (as in :class:`sklearn.cluster.KMeans`), or when the labels no longer change.
    random_state : int, RandomState, Generator or None, default=None

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray of shape (n_samples,), int64
    inertia_ : float
        Sum of squared distances of the samples to their centre.
    n_iter_ : int
        Iterations of the kept run.
    n_features_in_ : int
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray = "k-means++",
        max_iter: int = 300,
        n_init: int = 10,
        tol: float = 1e-4,
        random_state: RandomStateLike = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.n_init = n_init
        self.tol = tol
        self.random_state = random_state

    def _check_params(self, n_features: int) -> np.ndarray | None:
        for name in ("n_clusters", "max_iter", "n_init"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.tol, bool) or not isinstance(self.tol, (int, float, np.floating)) or self.tol < 0:
            raise ValueError(f"tol must be a number >= 0, got {self.tol!r}")
        if isinstance(self.init, str):
            if self.init != "k-means++":
                raise ValueError(f"init must be 'k-means++' or an array of centres, got {self.init!r}")
            return None
        init = np.asarray(self.init, dtype=np.float64)
        if init.shape != (self.n_clusters, n_features) or not np.all(np.isfinite(init)):
            raise ValueError(
                f"init must be finite with shape (n_clusters, n_features) = ({self.n_clusters}, {n_features}), "
                f"got shape {init.shape}"
            )
        return init

    def fit(
        self,
        X: Any,
        y: object = None,
        *,
        must_link: Iterable[Sequence[int]] | np.ndarray = (),
        cannot_link: Iterable[Sequence[int]] | np.ndarray = (),
    ) -> ConstrainedKMeans:
        """Cluster ``X`` so that every constraint holds.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        must_link, cannot_link : sequence of (i, j) pairs or int array of shape (m, 2)
            Row indices into ``X`` that must share a cluster / must not.

        Returns
        -------
        self

        Raises
        ------
        InfeasibleConstraintsError
            When a cannot-link joins two points of one must-link chain, or when no initialisation finds an
            assignment that satisfies every cannot-link.
        """
        X = validate_data(self, X, dtype=np.float64, order="C")
        given_init = self._check_params(X.shape[1])
        n_samples = X.shape[0]
        if n_samples < self.n_clusters:
            raise ValueError(f"n_samples={n_samples} should be >= n_clusters={self.n_clusters}.")
        constraints = _Constraints.build(n_samples, must_link, cannot_link)
        data = _FitData(
            X=X,
            constraints=constraints,
            group_sum=constraints.membership @ X,
            group_sq_norm=constraints.membership @ np.einsum("ij,ij->i", X, X),
            tol=float(self.tol) * float(np.mean(np.var(X, axis=0))),
        )
        rs = random_state_of(self.random_state)
        x_sq_norms = None
        best: tuple[np.ndarray, np.ndarray, float, int] | None = None
        failure: _GreedyFailure | None = None
        for run in range(1 if given_init is not None else self.n_init):
            if given_init is not None:
                centers = given_init.copy()
            else:
                if x_sq_norms is None:
                    x_sq_norms = np.einsum("ij,ij->i", X, X)
                centers, _ = kmeans_plusplus(
                    X, self.n_clusters, x_squared_norms=x_sq_norms, random_state=_draw_seed(rs)
                )
            try:
                labels, centers, n_iter = self._lloyd(data, centers)
            except _GreedyFailure as exc:
                failure = exc
                logger.debug("COP-KMeans initialisation %d found no feasible assignment", run)
                continue
            inertia = _inertia(X, centers, labels)
            if best is None or inertia < best[2]:
                best = (labels, centers, inertia, n_iter)
        if best is None:
            assert failure is not None
            members = constraints.points[constraints.group_of_point == failure.group]
            pair = constraints.example_pair[failure.group]
            shown = ", ".join(str(int(m)) for m in members[:5]) + (", ..." if members.size > 5 else "")
            raise InfeasibleConstraintsError(
                f"no assignment of points [{shown}] to {self.n_clusters} clusters satisfies the cannot-link "
                f"constraints (e.g. cannot-link {pair}) in any of {self.n_init} initialisations",
                pair=pair,
            )
        self.labels_, self.cluster_centers_, self.inertia_, self.n_iter_ = best
        return self

    def _lloyd(self, data: _FitData, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """One run of constrained Lloyd iterations; raises _GreedyFailure when a group cannot be placed."""
        labels, sums = self._assign(data, centers)
        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            new_centers = self._update(data, labels, sums, centers)
            shift = float(np.sum((new_centers - centers) ** 2))
            centers = new_centers
            new_labels, sums = self._assign(data, centers)
            unchanged = np.array_equal(new_labels, labels)
            labels = new_labels
            if unchanged or shift <= data.tol:
                break
        return labels, centers, n_iter

    def _assign(self, data: _FitData, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Constrained assignment step: labels and the per-cluster sums of the assigned rows."""
        labels, sums = _nearest_centre_with_sums(data.X, centers)
        constraints = data.constraints
        if constraints.n_groups == 0:
            return labels, sums
        # Summed squared distance of every group to every centre.
        center_sq_norms = np.einsum("ij,ij->i", centers, centers)
        cost = data.group_sum @ centers.T
        cost *= -2.0
        cost += constraints.group_size[:, None] * center_sq_norms[None, :]
        cost += data.group_sq_norm[:, None]
        group_label = cost.argmin(axis=1)
        if constraints.order:
            group_label = self._greedy(cost, group_label, constraints)
        points = constraints.points
        free_label = labels[points]
        bound_label = group_label[constraints.group_of_point]
        moved = np.flatnonzero(free_label != bound_label)
        if moved.size:
            rows = data.X[points[moved]]
            np.subtract.at(sums, free_label[moved], rows)
            np.add.at(sums, bound_label[moved], rows)
        labels[points] = bound_label
        return labels, sums

    @staticmethod
    def _greedy(cost: np.ndarray, group_label: np.ndarray, constraints: _Constraints) -> np.ndarray:
        """Assign cannot-linked groups one by one to their best centre not taken by a neighbour.

        Most groups keep their nearest centre; only a group whose nearest centre is taken by an already
        placed neighbour looks further down its ranking.
        """
        nearest = group_label.tolist()
        assigned = list(nearest)
        order = constraints.order
        for g in order:
            assigned[g] = -1
        neighbours = constraints.neighbours
        for g in order:
            c = nearest[g]
            linked = neighbours[g]
            if all(assigned[h] != c for h in linked):
                assigned[g] = c
                continue
            taken = {assigned[h] for h in linked}
            for c in np.argsort(cost[g], kind="stable").tolist():
                if c not in taken:
                    assigned[g] = c
                    break
            else:
                raise _GreedyFailure(g)
        return np.asarray(assigned, dtype=np.int64)

    def _update(
        self, data: _FitData, labels: np.ndarray, sums: np.ndarray, centers: np.ndarray
    ) -> np.ndarray:
        """Update step: cluster means; an empty cluster's centre moves onto a far, unconstrained point."""
        counts = np.bincount(labels, minlength=self.n_clusters)
        new_centers = sums / np.maximum(counts, 1)[:, None]
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            distance = _squared_distances_to(data.X, centers, labels)
            points = data.constraints.points
            if data.X.shape[0] - points.size >= empty.size:
                distance[points] = -np.inf
            farthest = np.argsort(-distance, kind="stable")[: empty.size]
            new_centers[empty] = data.X[farthest]
            logger.debug("COP-KMeans: relocated %d empty cluster(s)", empty.size)
        return new_centers

    def fit_predict(
        self,
        X: Any,
        y: object = None,
        *,
        must_link: Iterable[Sequence[int]] | np.ndarray = (),
        cannot_link: Iterable[Sequence[int]] | np.ndarray = (),
    ) -> np.ndarray:
        """Fit and return ``labels_`` (see :meth:`fit`)."""
        return self.fit(X, must_link=must_link, cannot_link=cannot_link).labels_

    def predict(self, X: Any) -> np.ndarray:
        """Nearest fitted centre of every row of ``X`` (no constraints apply to new points).

        Returns
        -------
        ndarray of shape (n_samples,), int64
        """
        check_is_fitted(self, "cluster_centers_")
        X = validate_data(self, X, dtype=np.float64, order="C", reset=False)
        return _nearest_centre(X, self.cluster_centers_)


def constraint_violations(
    labels: np.ndarray,
    must_link: Iterable[Sequence[int]] | np.ndarray = (),
    cannot_link: Iterable[Sequence[int]] | np.ndarray = (),
) -> tuple[int, int]:
    """Number of violated must-link and cannot-link pairs in ``labels``."""
    labels = np.asarray(labels)
    ml = _as_pairs(must_link, labels.size, "must_link")
    cl = _as_pairs(cannot_link, labels.size, "cannot_link")
    return (
        int(np.count_nonzero(labels[ml[:, 0]] != labels[ml[:, 1]])),
        int(np.count_nonzero(labels[cl[:, 0]] == labels[cl[:, 1]])),
    )


# --------------------------------------------------------------------------- influencer segments


class InfluencerSegmenter(BaseEstimator):
    """Segments of an influencer pool: :class:`~matching.features.InfluencerFeatures` + k-means.

    Segments are numbered by decreasing size (segment 0 is the largest). Fitting and prediction are
    deterministic for a fixed integer ``random_state``.

    Parameters
    ----------
    n_segments : int or "auto", default=8
        Number of segments. ``"auto"`` tries every k in ``auto_range`` (default 4..12, inclusive) with
        k-means on a random sample of ``selection_sample_size`` influencers (default 5,000) and keeps the
        k with the highest silhouette score on that sample (the smaller k on a tie).
    random_state : int, RandomState, Generator or None, default=None
    n_init : int, default=4
        k-means++ initialisations of every k-means fit.
    auto_range : (int, int), default=(4, 12)
        Smallest and largest k tried by ``"auto"``.
    selection_sample_size : int, default=5000
        Sample size for the silhouette (the score costs O(sample²)).
    max_fit_samples : int, default=200_000
        Pools larger than this fit k-means on a random sample of this size, then assign every influencer
        to its nearest centre; the feature scaling is always learned from the whole pool. With ~30
        features a pool of 1M influencers segments in about 10 s on two busy cores (20 s with "auto").
    block_weights : mapping, optional
        Passed to :class:`~matching.features.InfluencerFeatures`.

    Attributes
    ----------
    features_ : InfluencerFeatures
        The fitted feature transformer (``cluster_centers_`` live in its output space).
    n_segments_ : int
    labels_ : ndarray of shape (n,), int64
    cluster_centers_ : ndarray of shape (n_segments_, n_features)
    inertia_ : float
        Sum of squared distances of all influencers to their segment centre, in feature units.
    silhouette_scores_ : dict of int to float
        Silhouette per k tried (empty unless ``n_segments="auto"``).
    """

    def __init__(
        self,
        n_segments: int | str = 8,
        *,
        random_state: RandomStateLike = None,
        n_init: int = 4,
        auto_range: tuple[int, int] = (4, 12),
        selection_sample_size: int = 5_000,
        max_fit_samples: int = 200_000,
        block_weights: dict[str, float] | None = None,
    ) -> None:
        self.n_segments = n_segments
        self.random_state = random_state
        self.n_init = n_init
        self.auto_range = auto_range
        self.selection_sample_size = selection_sample_size
        self.max_fit_samples = max_fit_samples
        self.block_weights = block_weights

    def _select_k(self, X: np.ndarray, rs: np.random.RandomState) -> int:
        low, high = (int(v) for v in self.auto_range)
        if low < 2 or high < low:
            raise ValueError(f"auto_range must be (low, high) with 2 <= low <= high, got {self.auto_range!r}")
        n = X.shape[0]
        size = min(n, int(self.selection_sample_size))
        sample = X[np.sort(rs.choice(n, size=size, replace=False))] if size < n else X
        self.silhouette_scores_ = {}
        for k in range(low, min(high, sample.shape[0] - 1) + 1):
            with single_threaded_below(sample.shape[0]):
                labels = KMeans(k, n_init=self.n_init, random_state=_draw_seed(rs)).fit_predict(sample)
            if np.unique(labels).size < 2:
                continue
            self.silhouette_scores_[k] = float(silhouette_score(sample, labels))
        if not self.silhouette_scores_:
            raise ValueError(
                f"n_segments='auto' needs more influencers than {n} to compare k in {low}..{high}"
            )
        best = max(self.silhouette_scores_, key=lambda k: (self.silhouette_scores_[k], -k))
        logger.info("silhouette by k: %s; chose k=%d", self.silhouette_scores_, best)
        return best

    def fit(self, frame: pd.DataFrame, y: object = None) -> InfluencerSegmenter:
        """Learn the feature scaling and the segments of the influencers in ``frame``.

        Parameters
        ----------
        frame : DataFrame
            Influencer frame (CSV contract columns; hidden columns are ignored).
        y : ignored

        Returns
        -------
        self
        """
        rs = random_state_of(self.random_state)
        self.features_ = InfluencerFeatures(block_weights=self.block_weights).fit(frame)
        X = self.features_.transform(frame)
        n = X.shape[0]
        self.silhouette_scores_ = {}
        if isinstance(self.n_segments, str):
            if self.n_segments != "auto":
                raise ValueError(f"n_segments must be an integer >= 1 or 'auto', got {self.n_segments!r}")
            k = self._select_k(X, rs)
        else:
            k = self.n_segments
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
                raise ValueError(f"n_segments must be an integer >= 1 or 'auto', got {k!r}")
            if k > n:
                raise ValueError(f"n_segments={k} exceeds the number of influencers ({n})")
        if n > self.max_fit_samples:
            rows = np.sort(rs.choice(n, size=int(self.max_fit_samples), replace=False))
            logger.info("fitting k-means on a sample of %d of %d influencers", rows.size, n)
            fit_X = X[rows]
        else:
            fit_X = X
        with single_threaded_below(fit_X.shape[0]):
            kmeans = KMeans(int(k), n_init=self.n_init, random_state=_draw_seed(rs)).fit(fit_X)
        raw_labels = _nearest_centre(X, kmeans.cluster_centers_)
        sizes = np.bincount(raw_labels, minlength=int(k))
        by_size = np.argsort(-sizes, kind="stable")
        self.cluster_centers_ = kmeans.cluster_centers_[by_size]
        # Recomputed from the reordered centres so that predict(frame) gives exactly these labels.
        self.labels_ = _nearest_centre(X, self.cluster_centers_)
        self.n_segments_ = int(k)
        self.inertia_ = _inertia(X, self.cluster_centers_, self.labels_)
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The standardised feature matrix of ``frame`` (the space of ``cluster_centers_``)."""
        check_is_fitted(self, "features_")
        return self.features_.transform(frame)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Segment of every influencer in ``frame`` (e.g. newcomers joining the pool): the nearest centre.

        Returns
        -------
        ndarray of shape (n,), int64
        """
        check_is_fitted(self, "cluster_centers_")
        return _nearest_centre(self.transform(frame), self.cluster_centers_)
