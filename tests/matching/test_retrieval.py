import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching.retrieval import SegmentIndex, exact_search, recall_at_k


def brute_force(X, queries, k):
    """Reference: the full score matrix, each row sorted by score desc then index asc."""
    scores = queries @ X.T
    order = np.array([np.lexsort((np.arange(X.shape[0]), -row))[:k] for row in scores])
    return np.take_along_axis(scores, order, axis=1), order


def test_exact_search_equals_brute_force_including_ties():
    rng = np.random.default_rng(0)
    # Small integer embeddings: many exact ties, and every product is exact in floating point.
    X = rng.integers(0, 3, size=(3_000, 4)).astype(float)
    queries = rng.integers(0, 3, size=(40, 4)).astype(float)
    scores, indices = exact_search(X, queries, k=25)
    ref_scores, ref_indices = brute_force(X, queries, 25)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_array_equal(scores, ref_scores)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 300),
    m=st.integers(1, 5),
    d=st.integers(1, 4),
    k_share=st.floats(0.0, 1.0),
)
def test_exact_search_property(seed, n, m, d, k_share):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 4, size=(n, d)).astype(float)
    queries = rng.integers(0, 4, size=(m, d)).astype(float)
    k = max(1, round(k_share * n))
    scores, indices = exact_search(X, queries, k)
    ref_scores, ref_indices = brute_force(X, queries, k)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_array_equal(scores, ref_scores)


def test_exact_search_on_continuous_data_across_blocks(make_fit_data):
    X, queries = make_fit_data(70_000, 30, np.random.default_rng(1))
    scores, indices = exact_search(X, queries, k=10)
    ref_scores, ref_indices = brute_force(X, queries, 10)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-12)
    assert scores.shape == indices.shape == (30, 10)
    assert indices.dtype == np.int64
    assert (np.diff(scores, axis=1) <= 0).all()


def test_recall_rises_to_one_as_n_probe_reaches_n_lists(make_fit_data):
    X, queries = make_fit_data(6_000, 60, np.random.default_rng(2))
    _, exact = exact_search(X, queries, k=10)
    for probe_by in ("centroid", "bound"):
        index = SegmentIndex(n_lists=32, random_state=0, probe_by=probe_by).fit(X)
        recalls = []
        for n_probe in (1, 2, 4, 8, 16, 32):
            scores, indices = index.search(queries, k=10, n_probe=n_probe)
            assert scores.shape == indices.shape == (60, 10)
            recalls.append(recall_at_k(indices, exact))
        assert all(a <= b for a, b in zip(recalls, recalls[1:], strict=False)), recalls
        assert recalls[-1] == 1.0
        assert recalls[0] < 1.0
        # With every list probed the result is the exact one, order included.
        np.testing.assert_array_equal(index.search(queries, k=10, n_probe=32)[1], exact)


def test_index_ties_are_ordered_like_exact_search():
    rng = np.random.default_rng(3)
    X = rng.integers(0, 2, size=(500, 6)).astype(float)
    queries = rng.integers(0, 2, size=(20, 6)).astype(float)
    index = SegmentIndex(n_lists=8, random_state=0).fit(X)
    np.testing.assert_array_equal(
        index.search(queries, k=30, n_probe=8)[1], exact_search(X, queries, k=30)[1]
    )


def test_index_layout_and_upper_bounds(make_fit_data):
    X, queries = make_fit_data(2_000, 10, np.random.default_rng(4))
    index = SegmentIndex(n_lists=16, random_state=0).fit(X)
    assert index.list_offsets_[-1] == 2_000
    np.testing.assert_array_equal(np.sort(index.item_ids_), np.arange(2_000))
    for lst in range(index.n_lists_):
        members = index.item_ids_[index.list_offsets_[lst] : index.list_offsets_[lst + 1]]
        assert (np.diff(members) > 0).all()
        if members.size:
            # The per-list bound is an upper bound on every member's score (non-negative data).
            assert ((queries @ X[members].T) <= (queries @ index.upper_bounds_[lst])[:, None] + 1e-12).all()


def test_k_larger_than_the_pool_is_refused_and_small_lists_are_padded(make_fit_data):
    X, queries = make_fit_data(50, 3, np.random.default_rng(5))
    with pytest.raises(ValueError, match="k=51 exceeds the number of indexed influencers"):
        exact_search(X, queries, k=51)
    index = SegmentIndex(n_lists=10, random_state=0).fit(X)
    with pytest.raises(ValueError, match="k=51"):
        index.search(queries, k=51)
    # One probed list holds fewer than 40 influencers: the rest of the row is padding.
    scores, indices = index.search(queries, k=40, n_probe=1)
    assert scores.shape == (3, 40)
    assert (indices[:, -1] == -1).all()
    assert np.isneginf(scores[:, -1]).all()
    assert (indices[:, 0] >= 0).all()
    # k = n with every list probed returns everyone.
    _, everyone = index.search(queries, k=50, n_probe=10)
    np.testing.assert_array_equal(np.sort(everyone, axis=1), np.tile(np.arange(50), (3, 1)))


def test_bad_arguments_are_refused(make_fit_data):
    X, queries = make_fit_data(100, 2, np.random.default_rng(6))
    index = SegmentIndex(n_lists=4, random_state=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        index.search(queries)
    index.fit(X)
    with pytest.raises(ValueError, match="dimensions"):
        index.search(queries[:, :10])
    with pytest.raises(ValueError, match="n_probe"):
        index.search(queries, n_probe=0)
    with pytest.raises(ValueError, match="probe_by"):
        SegmentIndex(probe_by="magic").fit(X)


def test_recall_at_k():
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(np.array([[3, 9, 1], [7, 8, 9]]), exact) == pytest.approx(1 / 3)
    assert recall_at_k(np.array([[-1, -1, -1], [6, 5, 4]]), exact) == 0.5


def test_fit_embedding_scores_are_brand_fits(make_fit_data):
    X, queries = make_fit_data(1_000, 50, np.random.default_rng(7))
    assert X.shape == (1_000, 24) and queries.shape == (50, 24)
    np.testing.assert_allclose(X[:, :12].sum(axis=1), 1.0)
    np.testing.assert_allclose((X[:, 12:] ** 2).sum(axis=1), 1.0)
    scores = queries @ X.T
    assert (scores >= 0).all() and (scores <= 1.0 + 1e-12).all()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_lists_left_empty_are_never_probed():
    # Three distinct influencers repeated: k-means finds fewer distinct centroids than lists.
    X = np.repeat(np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), 10, axis=0)
    queries = np.array([[1.0, 0.0], [0.2, 0.8]])
    index = SegmentIndex(n_lists=8, random_state=0).fit(X)
    assert (np.diff(index.list_offsets_) == 0).any()
    exact = exact_search(X, queries, k=12)
    for n_probe in (1, 3, 8):
        scores, indices = index.search(queries, k=12, n_probe=n_probe)
        assert not np.isnan(scores).any()
    np.testing.assert_array_equal(index.search(queries, k=12, n_probe=3)[1], exact[1])
