"""Diagnosis: from an alert to where and why (slice search; more causes follow)."""

from mlwarden.diagnosis.slices import Slice, SliceReport, slice_search

__all__ = ["Slice", "SliceReport", "slice_search"]
