"""Drift detection: one registry of drift tests, calibrated alarms, multivariate detectors.

Importing this package imports every drift-test module, which registers it; adding a test is
one new file here plus its import below.
"""

from __future__ import annotations

from mlwarden.drift import chi2, hellinger, jensen_shannon, ks, linf, psi, wasserstein
from mlwarden.drift.base import DriftOutcome, DriftTest, available_tests, get_test, make_test
from mlwarden.drift.comparison import ColumnDrift, DriftReport, compare
from mlwarden.drift.domain_classifier import DomainClassifier, DomainClassifierResult
from mlwarden.drift.monitor import DriftMonitor, DriftSeries
from mlwarden.drift.pca import PCAReconstruction, PCAResult
from mlwarden.drift.reference import Reference

__all__ = [
    "ColumnDrift",
    "DomainClassifier",
    "DomainClassifierResult",
    "DriftMonitor",
    "DriftOutcome",
    "DriftReport",
    "DriftSeries",
    "DriftTest",
    "PCAReconstruction",
    "PCAResult",
    "Reference",
    "available_tests",
    "chi2",
    "compare",
    "get_test",
    "hellinger",
    "jensen_shannon",
    "ks",
    "linf",
    "make_test",
    "psi",
    "wasserstein",
]
