"""Synthetic influencer frames and brand-fit embeddings for the matching tests (no dependency on envs or
experiments)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from matching.features import AUDIENCE_COLUMNS, CATEGORIES, CATEGORY_COLUMNS, PLATFORMS, brand_queries


def planted_frame(n_groups: int, n_per_group: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Influencers in ``n_groups`` well-separated groups, and the group of every row.

    Group g has its own platform, primary category (pure category mix), follower level (one decade apart),
    engagement level and audience profile, with little spread inside the group.
    """
    if n_groups > len(CATEGORIES):
        raise ValueError("at most twelve planted groups")
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(n_groups), n_per_group)
    n = truth.size
    followers = np.round(10.0 ** (3.0 + 0.75 * (truth % 6) + 0.05 * rng.standard_normal(n)))
    engagement = np.clip(0.01 * (1 + truth % 4) * np.exp(0.05 * rng.standard_normal(n)), 1e-4, 0.9)
    price = followers * 0.01 * np.exp(0.05 * rng.standard_normal(n))
    mix = np.eye(len(CATEGORIES))[truth]
    audience_alpha = np.full((n_groups, len(AUDIENCE_COLUMNS)), 0.5)
    audience_alpha[np.arange(n_groups), np.arange(n_groups) % len(AUDIENCE_COLUMNS)] = 40.0
    audience = np.vstack([rng.dirichlet(audience_alpha[g] * 5) for g in truth])
    frame = pd.DataFrame(
        {
            "influencer_id": [f"t{i:05d}" for i in range(n)],
            "platform": np.asarray(PLATFORMS, dtype=object)[truth % len(PLATFORMS)],
            "followers": followers.astype(np.int64),
            "engagement_rate": engagement,
            "primary_category": np.asarray(CATEGORIES, dtype=object)[truth],
            "price": price,
        }
    )
    frame[list(CATEGORY_COLUMNS)] = mix
    frame[list(AUDIENCE_COLUMNS)] = audience
    # Shuffle so that the planted groups are not contiguous.
    order = rng.permutation(n)
    return frame.iloc[order].reset_index(drop=True), truth[order]


@pytest.fixture
def make_planted():
    """The :func:`planted_frame` factory."""
    return planted_frame


@pytest.fixture
def planted() -> tuple[pd.DataFrame, np.ndarray]:
    """Six planted groups of 60 influencers."""
    return planted_frame(6, 60, seed=1)


def fit_data(n_influencers: int, n_queries: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Brand-fit embeddings of ``n_influencers`` influencers and ``n_queries`` brands, shaped like a market.

    Influencers: a uniform primary category, a category mix Dirichlet(0.15 + 3 on the primary) and an
    audience Dirichlet(20 x the category's base audience); brands: a uniform category and a target
    Dirichlet(10 x its base). The base audiences are one Dirichlet draw per category. Rows are
    ``[mix (12), sqrt(audience) (12)]`` and :func:`matching.features.brand_queries`, so
    ``queries @ X.T`` is the brand fit.
    """
    n_categories, n_cells = len(CATEGORIES), len(AUDIENCE_COLUMNS)
    base = rng.dirichlet(np.full(n_cells, 2.0), size=n_categories)
    primary = rng.integers(n_categories, size=n_influencers)
    mix = _dirichlet_rows(0.15 + 3.0 * np.eye(n_categories)[primary], rng)
    audience = _dirichlet_rows(20.0 * base[primary], rng)
    brand_category = rng.integers(n_categories, size=n_queries)
    target = _dirichlet_rows(10.0 * base[brand_category], rng)
    return np.hstack([mix, np.sqrt(audience)]), brand_queries(brand_category, target)


def _dirichlet_rows(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    draws = rng.gamma(alpha)
    return draws / draws.sum(axis=1, keepdims=True)


@pytest.fixture
def make_fit_data():
    """The :func:`fit_data` factory."""
    return fit_data
