"""A small defect model on the generated production line, shared by the tests of explanations,
feedback and their dashboard pages: rows without missing readings, the model, and its scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from sklearn.ensemble import GradientBoostingClassifier

from mlwarden.datasets import production_line

FEATURES = ["temperature_c", "pressure_bar", "vibration_mm_s", "line_speed_m_min", "humidity_pct"]
ROLES = {"defect": "target", "defect_score": "score", "prediction": "prediction"}


def line_rows(n: int, **kwargs: Any) -> pl.DataFrame:
    """Rows of the production line without missing readings (the model takes no NaN)."""
    return production_line(n, **kwargs).with_columns(pl.col(FEATURES).fill_null(strategy="mean"))


def fit_model(frame: pl.DataFrame, depth: int = 3) -> GradientBoostingClassifier:
    model = GradientBoostingClassifier(n_estimators=30, max_depth=depth, random_state=0)
    return model.fit(frame.select(FEATURES).to_numpy(), frame["defect"].to_numpy())


def scored(model: GradientBoostingClassifier, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the model's ``defect_score`` and thresholded ``prediction``."""
    score = model.predict_proba(frame.select(FEATURES).to_numpy())[:, 1]
    return frame.with_columns(
        defect_score=pl.Series(score), prediction=pl.Series((score > 0.5).astype(np.int8))
    )
