"""Diagnosis: from an alert to where and why — the ranked causes of an incident, and the
slice search that finds where an outcome is concentrated."""

from mlwarden.diagnosis.incident import Cause, Diagnosis, diagnose
from mlwarden.diagnosis.slices import Slice, SliceReport, slice_search

__all__ = ["Cause", "Diagnosis", "Slice", "SliceReport", "diagnose", "slice_search"]
