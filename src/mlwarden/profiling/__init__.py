"""Mergeable profiles and the sketches they are made of."""

from __future__ import annotations

from mlwarden.profiling.column import ColumnProfile, GapSummary, ProfileConfig
from mlwarden.profiling.histogram import AlignedHistogram, FixedHistogram
from mlwarden.profiling.hll import HyperLogLog
from mlwarden.profiling.items import FrequentItems
from mlwarden.profiling.kll import KLLSketch, rank_error_bound
from mlwarden.profiling.moments import Moments
from mlwarden.profiling.table import FORMAT_VERSION, Profile, profile

__all__ = [
    "FORMAT_VERSION",
    "AlignedHistogram",
    "ColumnProfile",
    "FixedHistogram",
    "FrequentItems",
    "GapSummary",
    "HyperLogLog",
    "KLLSketch",
    "Moments",
    "Profile",
    "ProfileConfig",
    "profile",
    "rank_error_bound",
]
