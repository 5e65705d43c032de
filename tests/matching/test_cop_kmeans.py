import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import KMeans
from sklearn.utils.estimator_checks import parametrize_with_checks

from matching.segmentation import (
    ConstrainedKMeans,
    InfeasibleConstraintsError,
    constraint_violations,
)


def _expected_failed_checks(estimator):
    # Every applicable check passes. (check_array_api_input skips itself unless SCIPY_ARRAY_API=1:
    # the estimator converts its input to a numpy array with validate_data, like KMeans.)
    return {}


@parametrize_with_checks(
    [ConstrainedKMeans(n_clusters=3, n_init=2, random_state=0)],
    expected_failed_checks=_expected_failed_checks,
    xfail_strict=True,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def two_blobs(n_per_blob: int = 50, seed: int = 0) -> np.ndarray:
    """Two tight, far-apart blobs: points 0..n-1 on the left, n..2n-1 on the right."""
    rng = np.random.default_rng(seed)
    left = rng.normal([0.0, 0.0], 0.5, size=(n_per_blob, 2))
    right = rng.normal([20.0, 0.0], 0.5, size=(n_per_blob, 2))
    return np.vstack([left, right])


def test_constraints_hold_where_plain_kmeans_breaks_them():
    X = two_blobs()
    # Tie a left point to a right point, and separate two left points.
    must_link = [(0, 50), (1, 51)]
    cannot_link = [(2, 3), (4, 5)]
    plain = KMeans(2, n_init=5, random_state=0).fit(X)
    assert sum(constraint_violations(plain.labels_, must_link, cannot_link)) > 0

    model = ConstrainedKMeans(2, n_init=5, random_state=0).fit(
        X, must_link=must_link, cannot_link=cannot_link
    )
    assert constraint_violations(model.labels_, must_link, cannot_link) == (0, 0)
    # Unconstrained points still follow the blobs.
    left = np.setdiff1d(np.arange(50), [0, 1, 2, 3, 4, 5])
    assert np.unique(model.labels_[left]).size == 1
    assert model.labels_.dtype == np.int64
    assert model.inertia_ > plain.inertia_


def test_must_link_chains_end_in_one_cluster():
    X = two_blobs()
    chain = [(0, 60), (60, 10), (10, 70), (70, 99)]
    model = ConstrainedKMeans(2, n_init=3, random_state=1).fit(X, must_link=chain)
    members = [0, 60, 10, 70, 99]
    assert np.unique(model.labels_[members]).size == 1


def test_cannot_link_inside_a_must_link_chain_is_refused_naming_the_pair():
    X = two_blobs()
    with pytest.raises(InfeasibleConstraintsError, match=r"cannot-link \(0, 2\)") as info:
        ConstrainedKMeans(2, random_state=0).fit(X, must_link=[(0, 1), (1, 2)], cannot_link=[(0, 2)])
    assert info.value.pair == (0, 2)
    assert isinstance(info.value, ValueError)
    with pytest.raises(InfeasibleConstraintsError, match=r"\(7, 7\)"):
        ConstrainedKMeans(2).fit(X, cannot_link=[(7, 7)])


def test_more_mutually_separated_points_than_clusters_is_refused():
    X = two_blobs()
    with pytest.raises(InfeasibleConstraintsError, match="cannot-link") as info:
        ConstrainedKMeans(2, n_init=3, random_state=0).fit(X, cannot_link=[(0, 1), (1, 2), (0, 2)])
    assert set(info.value.pair) <= {0, 1, 2}


def test_same_seed_same_labels_and_predict_uses_nearest_centre():
    X = np.random.default_rng(5).normal(size=(300, 3))
    constraints = {"must_link": [(0, 1), (2, 3)], "cannot_link": [(0, 2), (4, 5)]}
    a = ConstrainedKMeans(4, n_init=3, random_state=7).fit(X, **constraints)
    b = ConstrainedKMeans(4, n_init=3, random_state=7).fit(X, **constraints)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    new = np.random.default_rng(6).normal(size=(50, 3))
    distances = ((new[:, None, :] - a.cluster_centers_[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(a.predict(new), distances.argmin(axis=1))


def test_without_constraints_matches_kmeans_from_the_same_start():
    X = two_blobs(seed=3)
    init = np.array([[0.0, 0.0], [20.0, 0.0]])
    ours = ConstrainedKMeans(2, init=init).fit(X)
    theirs = KMeans(2, init=init, n_init=1).fit(X)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_)
    np.testing.assert_allclose(ours.inertia_, theirs.inertia_)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"must_link": [(0, 100)]}, r"must_link pair \(0, 100\)"),
        ({"cannot_link": [(-1, 3)]}, r"cannot_link pair \(-1, 3\)"),
        ({"must_link": [(0, 1, 2)]}, "index pairs"),
        ({"cannot_link": [(0.5, 1)]}, "integer"),
    ],
)
def test_malformed_constraints_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConstrainedKMeans(2).fit(two_blobs(), **kwargs)


def test_constraints_as_arrays_and_generator_random_state():
    X = two_blobs()
    ml = np.array([[0, 50]])
    cl = np.array([[0, 1]])
    model = ConstrainedKMeans(2, n_init=2, random_state=np.random.default_rng(0)).fit(
        X, must_link=ml, cannot_link=cl
    )
    assert constraint_violations(model.labels_, ml, cl) == (0, 0)
    assert model.fit_predict(X, must_link=ml, cannot_link=cl).shape == (100,)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_ml=st.integers(0, 15),
    n_cl=st.integers(0, 15),
    k=st.integers(2, 5),
)
def test_labels_never_violate_a_constraint(seed, n_ml, n_cl, k):
    """Property: for random constraints, the fit either satisfies all of them or refuses clearly."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 2))
    must_link = rng.integers(60, size=(n_ml, 2))
    cannot_link = rng.integers(60, size=(n_cl, 2))
    try:
        model = ConstrainedKMeans(k, n_init=2, random_state=seed).fit(
            X, must_link=must_link, cannot_link=cannot_link
        )
    except InfeasibleConstraintsError as error:
        assert error.pair is not None
        return
    assert constraint_violations(model.labels_, must_link, cannot_link) == (0, 0)
    assert model.labels_.min() >= 0
    assert model.labels_.max() < k
