"""The files of a fitted segmentation: labels with map coordinates, profiles, and their two figures.

Written by ``influmatch segment`` and into every sweep folder (``segments/``, for the report):

- ``labels.csv``: ``influencer_id``, ``segment``, and ``pc1``, ``pc2`` (the first two principal
  components of the standardised feature matrix, for the map);
- ``profiles.csv``: one row per segment (:func:`matching.profiles.segment_profiles`);
- ``segment_map.png`` and ``segment_profiles.png``, drawn from those two CSV files by
  :mod:`experiments.reporting.figures` (so they can be redrawn without segmenting again).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from sklearn.decomposition import PCA

from experiments.reporting.figures import plot_segment_map, plot_segment_profiles
from matching.profiles import segment_profiles
from matching.segmentation import InfluencerSegmenter

__all__ = ["LABELS_FILE", "MAP_FILE", "PROFILES_FIGURE", "PROFILES_FILE", "write_segment_files"]

LABELS_FILE = "labels.csv"
PROFILES_FILE = "profiles.csv"
MAP_FILE = "segment_map.png"
PROFILES_FIGURE = "segment_profiles.png"


def write_segment_files(
    frame: pd.DataFrame,
    segmenter: InfluencerSegmenter,
    out: Path,
    tier_edges: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Write labels (with 2-D map coordinates), profiles and both figures of a fitted segmentation of
    ``frame`` into the folder ``out``; returns the profiles. ``tier_edges`` (the calibration's) name
    the segments as the environment names them."""
    out = Path(out)
    profiles = (
        segment_profiles(frame, segmenter.labels_)
        if tier_edges is None
        else segment_profiles(frame, segmenter.labels_, tier_edges=tier_edges)
    )
    coordinates = PCA(n_components=2, svd_solver="covariance_eigh").fit_transform(segmenter.transform(frame))
    labels = pd.DataFrame(
        {
            "influencer_id": frame["influencer_id"],
            "segment": segmenter.labels_,
            "pc1": coordinates[:, 0],
            "pc2": coordinates[:, 1],
        }
    )
    labels.to_csv(out / LABELS_FILE, index=False, float_format="%.6g")
    profiles.to_csv(out / PROFILES_FILE, index=False)
    plot_segment_map(out / LABELS_FILE, out / PROFILES_FILE, out / MAP_FILE)
    plot_segment_profiles(out / PROFILES_FILE, out / PROFILES_FIGURE)
    return profiles
