"""Multivariate drift: quiet without drift, and catching changes per-column tests cannot see."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from scipy import stats

from mlwarden.drift._features import FeatureEncoder
from mlwarden.drift.domain_classifier import DomainClassifier, DomainClassifierResult
from mlwarden.drift.pca import PCAReconstruction, PCAResult
from mlwarden.exceptions import InputError, NotFittedError, ParameterError


def plant(
    n: int,
    seed: int,
    *,
    coupling: float = 0.8,
    pressure_shift: float = 0.0,
    recipes: tuple[float, float, float] = (0.5, 0.3, 0.2),
) -> pl.DataFrame:
    """A process line: pressure follows flow (correlation ``coupling``), plus independent signals.

    ``pressure_shift`` moves pressure by that many standard deviations.
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    pressure = coupling * z[:, 0] + np.sqrt(1 - coupling**2) * z[:, 1] + pressure_shift
    return pl.DataFrame(
        {
            "flow_m3h": 10 + 2 * z[:, 0],
            "pressure_bar": 5 + 0.5 * pressure,
            "temperature_c": 60 + 3 * z[:, 2],
            "vibration_mm_s": 1 + 0.2 * z[:, 3],
            "recipe": rng.choice(["A", "B", "C"], n, p=list(recipes)),
            "line_running": rng.random(n) < 0.9,
        }
    )


@pytest.fixture(scope="module")
def reference() -> pl.DataFrame:
    return plant(2_000, 0)


@pytest.fixture(scope="module")
def classifier(reference: pl.DataFrame) -> DomainClassifier:
    return DomainClassifier(calibration_rounds=5).fit(reference)


@pytest.fixture(scope="module")
def pca(reference: pl.DataFrame) -> PCAReconstruction:
    return PCAReconstruction().fit(reference)


def top(ranking: tuple[tuple[str, float], ...], k: int) -> set[str]:
    return {column for column, _ in ranking[:k]}


def without_timing(result: DomainClassifierResult) -> dict[str, Any]:
    d = result.to_dict()
    del d["seconds"]
    return d


# --- no drift ---------------------------------------------------------------------------------


def test_no_false_alarms_without_drift_over_seeds(
    classifier: DomainClassifier, pca: PCAReconstruction
) -> None:
    classifier_alarms = pca_alarms = 0
    for seed in range(1, 11):
        current = plant(500, seed)
        classifier_alarms += classifier.evaluate(current).drifted
        pca_alarms += pca.evaluate(current).drifted
    assert classifier_alarms <= 1
    assert pca_alarms <= 1


def test_calibrated_threshold_sits_above_chance(classifier: DomainClassifier) -> None:
    result = classifier.evaluate(plant(500, 42))
    assert result.null_mean is not None
    assert result.null_std is not None
    assert abs(result.null_mean - 0.5) < 0.05
    assert result.threshold == pytest.approx(max(0.55, result.null_mean + 3 * result.null_std))
    assert result.statistic < result.threshold
    assert result.message.startswith("Current data cannot be told apart from the reference")


def test_smaller_windows_get_a_wider_threshold(classifier: DomainClassifier) -> None:
    small = classifier.evaluate(plant(40, 5))
    large = classifier.evaluate(plant(1_000, 5))
    assert small.null_std is not None
    assert large.null_std is not None
    assert small.null_std > 2 * large.null_std
    assert small.threshold > large.threshold


# --- drift that per-column tests miss ---------------------------------------------------------


def test_changed_correlation_with_unchanged_marginals_is_detected(
    reference: pl.DataFrame, classifier: DomainClassifier, pca: PCAReconstruction
) -> None:
    current = plant(500, 7, coupling=-0.8)
    for column in ("flow_m3h", "pressure_bar"):  # each on its own looks like the reference
        assert stats.ks_2samp(reference[column], current[column]).pvalue > 0.01

    found = classifier.evaluate(current)
    assert found.drifted
    assert found.statistic > 0.75
    assert top(found.feature_ranking, 2) == {"flow_m3h", "pressure_bar"}
    assert "can be told apart" in found.message
    assert "flow_m3h" in found.message
    assert "pressure_bar" in found.message

    rebuilt = pca.evaluate(current)
    assert rebuilt.drifted
    assert rebuilt.statistic > rebuilt.upper
    assert top(rebuilt.per_column_contribution, 2) == {"flow_m3h", "pressure_bar"}
    assert "no longer follow" in rebuilt.message


def test_lost_coupling_is_detected(classifier: DomainClassifier, pca: PCAReconstruction) -> None:
    current = plant(500, 8, coupling=0.0)
    assert top(classifier.evaluate(current).feature_ranking, 2) == {"flow_m3h", "pressure_bar"}
    assert pca.evaluate(current).drifted


# --- marginal and categorical drift -----------------------------------------------------------


def test_shift_in_one_column_is_detected_and_ranked_first(
    classifier: DomainClassifier, pca: PCAReconstruction
) -> None:
    current = plant(500, 9, pressure_shift=1.0)
    found = classifier.evaluate(current)
    assert found.drifted
    assert found.feature_ranking[0][0] == "pressure_bar"
    # Shifting pressure alone breaks its relation to flow, which PCA sees in both columns.
    rebuilt = pca.evaluate(current)
    assert rebuilt.drifted
    assert "pressure_bar" in top(rebuilt.per_column_contribution, 2)


def test_changed_category_shares_are_detected(
    classifier: DomainClassifier, pca: PCAReconstruction
) -> None:
    current = plant(500, 10, recipes=(0.1, 0.3, 0.6))
    found = classifier.evaluate(current)
    assert found.drifted
    assert found.feature_ranking[0][0] == "recipe"
    rebuilt = pca.evaluate(current)
    assert rebuilt.drifted
    assert rebuilt.per_column_contribution[0][0] == "recipe"


def test_unseen_category_counts_as_other_and_is_detected(classifier: DomainClassifier) -> None:
    current = plant(500, 11).with_columns(
        pl.when(pl.int_range(pl.len()) % 3 == 0)
        .then(pl.lit("D"))
        .otherwise(pl.col("recipe"))
        .alias("recipe")
    )
    found = classifier.evaluate(current)
    assert found.drifted
    assert found.feature_ranking[0][0] == "recipe"


def test_sensor_dropping_out_is_seen_by_the_classifier(classifier: DomainClassifier) -> None:
    current = plant(500, 12).with_columns(
        pl.when(pl.int_range(pl.len()) % 4 == 0)
        .then(None)
        .otherwise(pl.col("temperature_c"))
        .alias("temperature_c")
    )
    found = classifier.evaluate(current)
    assert found.drifted
    assert found.feature_ranking[0][0] == "temperature_c"
    dead = plant(500, 13).with_columns(pl.lit(None).alias("vibration_mm_s"))
    assert dead.schema["vibration_mm_s"] == pl.Null
    assert classifier.evaluate(dead).feature_ranking[0][0] == "vibration_mm_s"


# --- results ----------------------------------------------------------------------------------


def test_results_round_trip_through_json(
    classifier: DomainClassifier, pca: PCAReconstruction
) -> None:
    current = plant(300, 13, coupling=0.0)
    found = classifier.evaluate(current)
    d = json.loads(json.dumps(found.to_dict()))
    assert d["method"] == "domain_classifier"
    assert d["message"] == found.message
    assert d["feature_ranking"][0].keys() == {"column", "importance"}
    assert DomainClassifierResult.from_dict(d) == found

    rebuilt = pca.evaluate(current)
    d = json.loads(json.dumps(rebuilt.to_dict()))
    assert d["method"] == "pca_reconstruction"
    assert d["n"] == 300
    assert PCAResult.from_dict(d) == rebuilt


def test_same_seed_gives_the_same_result() -> None:
    reference, current = plant(600, 20), plant(200, 21, coupling=0.3)
    first = DomainClassifier(n_splits=3, calibration_rounds=3, seed=4).fit(reference)
    second = DomainClassifier(n_splits=3, calibration_rounds=3, seed=4).fit(reference)
    assert first.null_mean_ == second.null_mean_
    assert without_timing(first.evaluate(current)) == without_timing(second.evaluate(current))
    assert without_timing(first.evaluate(current)) == without_timing(first.evaluate(current))
    pca_first = PCAReconstruction(seed=4).fit(reference).evaluate(current)
    assert PCAReconstruction(seed=4).fit(reference).evaluate(current) == pca_first


def test_large_inputs_are_sampled_and_say_so() -> None:
    reference, current = plant(1_500, 30), plant(700, 31)
    result = DomainClassifier(max_rows=400, n_splits=3, threshold=0.6).fit(reference)
    found = result.evaluate(current)
    assert found.sampled
    assert (found.n_reference, found.n_current) == (400, 400)
    small = DomainClassifier(n_splits=3, threshold=0.6).fit(reference).evaluate(current)
    assert not small.sampled
    assert (small.n_reference, small.n_current) == (1_500, 700)


def test_given_thresholds_replace_calibration() -> None:
    reference, current = plant(400, 40), plant(200, 41)
    found = DomainClassifier(n_splits=3, threshold=0.9).fit(reference).evaluate(current)
    assert (found.threshold, found.null_mean, found.null_std) == (0.9, None, None)
    assert not found.drifted
    rebuilt = PCAReconstruction(threshold=(0.5, 0.6)).fit(reference).evaluate(current)
    assert (rebuilt.lower, rebuilt.upper) == (0.5, 0.6)
    assert rebuilt.drifted
    upper_only = PCAReconstruction(threshold=100.0).fit(reference).evaluate(current)
    assert (upper_only.lower, upper_only.upper, upper_only.drifted) == (0.0, 100.0, False)


def test_any_supported_input_is_accepted(pca: PCAReconstruction) -> None:
    current = plant(200, 50)
    assert pca.evaluate(current.to_arrow()) == pca.evaluate(current)
    assert isinstance(current.to_arrow(), pa.Table)


def test_fitted_detectors_pickle(classifier: DomainClassifier, pca: PCAReconstruction) -> None:
    current = plant(200, 51)
    for detector in (classifier, pca):
        copy = pickle.loads(pickle.dumps(detector))
        assert repr(copy) == repr(detector)
    assert pickle.loads(pickle.dumps(pca)).evaluate(current) == pca.evaluate(current)


# --- encoding ---------------------------------------------------------------------------------


def test_encoder_imputes_standardizes_and_flags_missing_numbers() -> None:
    reference = pl.DataFrame({"temp": [19.0, None, 21.0, 20.0, float("nan")]})
    encoder = FeatureEncoder().fit(reference)
    assert encoder.feature_names(one_hot=True) == ["temp", "temp=(missing)"]
    encoded = encoder.transform(pl.DataFrame({"temp": [22.0, None, float("inf")]}), one_hot=True)
    assert encoded.tolist() == [[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    trees = encoder.transform(pl.DataFrame({"temp": [22.0, None]}), one_hot=False)
    assert trees[0, 0] == 2.0
    assert np.isnan(trees[1, 0])


def test_encoder_keeps_the_most_frequent_levels() -> None:
    reference = pl.DataFrame({"recipe": ["A"] * 5 + ["B"] * 3 + ["C", "D"], "x": range(10)})
    encoder = FeatureEncoder(max_categories=2).fit(reference)
    assert encoder.feature_names(one_hot=True) == ["recipe=A", "recipe=B", "recipe=(other)", "x"]
    current = pl.DataFrame({"recipe": ["B", "C", "Z", None], "x": [0, 0, 0, 0]})
    one_hot = encoder.transform(current, one_hot=True)[:, :3]
    assert one_hot.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]]
    codes = encoder.transform(current, one_hot=False)[:, 0]
    assert codes[:3].tolist() == [1.0, 2.0, 2.0]
    assert np.isnan(codes[3])
    assert encoder.categorical_mask().tolist() == [True, False]
    assert encoder.feature_sources(one_hot=True).tolist() == [0, 0, 0, 1]


def test_encoder_skips_what_it_cannot_compare_with_notes() -> None:
    start = datetime(2024, 1, 1)
    reference = pl.DataFrame(
        {
            "timestamp": [start + timedelta(minutes=i) for i in range(4)],
            "batch_id": [101, 102, 103, 104],
            "operator_comment": [
                "a long free-text remark about the shift, number " + str(i) for i in range(4)
            ],
            "spare_sensor": pl.Series([None, None, None, None], dtype=pl.Float64),
            "temp": [1.0, 2.0, 3.0, 4.0],
            "running": [True, False, True, True],
        }
    )
    encoder = FeatureEncoder().fit(reference)
    assert encoder.columns_ == ("temp", "running")
    notes = " ".join(encoder.notes_)
    for column, reason in [
        ("timestamp", "datetime"),
        ("batch_id", "id column"),
        ("operator_comment", "free text"),
        ("spare_sensor", "no values"),
    ]:
        assert f"'{column}'" in notes
        assert reason in notes
    assert FeatureEncoder(columns=["batch_id", "temp"]).fit(reference).columns_ == (
        "batch_id",
        "temp",
    )


# --- bad input --------------------------------------------------------------------------------


def test_missing_column_in_current_is_named(
    classifier: DomainClassifier, pca: PCAReconstruction
) -> None:
    current = plant(100, 60).drop("pressure_bar")
    for detector in (classifier, pca):
        with pytest.raises(InputError, match="'pressure_bar' is in the reference but missing") as e:
            detector.evaluate(current)
        assert e.value.column == "pressure_bar"


def test_column_of_another_kind_is_named(classifier: DomainClassifier) -> None:
    current = plant(100, 61).with_columns(pl.col("flow_m3h").cast(pl.String))
    with pytest.raises(InputError, match=r"'flow_m3h' holds categories .* but numbers") as e:
        classifier.evaluate(current)
    assert e.value.column == "flow_m3h"


def test_too_few_rows_say_how_many_are_needed(
    classifier: DomainClassifier, pca: PCAReconstruction
) -> None:
    empty = plant(10, 62).head(0)
    for detector in (classifier, pca):
        with pytest.raises(InputError, match=r"needs at least 10 rows in the current data.*got 0"):
            detector.evaluate(empty)
    with pytest.raises(InputError, match="needs at least 20 reference rows"):
        DomainClassifier().fit(plant(15, 63))


def test_all_null_column_is_skipped_with_a_note() -> None:
    reference = plant(300, 64).with_columns(pl.lit(None, dtype=pl.Float64).alias("spare"))
    found = DomainClassifier(n_splits=3, threshold=0.8).fit(reference).evaluate(plant(100, 65))
    assert "spare" not in top(found.feature_ranking, 10)
    assert any("'spare'" in note and "no values" in note for note in found.notes)


def test_pca_needs_two_usable_columns() -> None:
    reference = pl.DataFrame(
        {"timestamp": [datetime(2024, 1, 1)] * 50, "temperature_c": np.arange(50.0)}
    )
    with pytest.raises(InputError, match="needs at least 2 usable columns") as e:
        PCAReconstruction().fit(reference)
    assert e.value.column == "temperature_c"
    assert "'timestamp'" in str(e.value)


def test_pca_needs_columns_that_vary() -> None:
    constant = pl.DataFrame({"a": [1.0] * 30, "b": ["x"] * 30})
    with pytest.raises(InputError, match="needs columns that vary"):
        PCAReconstruction().fit(constant)


def test_bad_parameters_name_the_parameter(reference: pl.DataFrame) -> None:
    cases: list[tuple[Any, str]] = [
        (DomainClassifier(n_splits=1), "n_splits"),
        (DomainClassifier(threshold=0.3), "threshold"),
        (DomainClassifier(calibration_rounds=1), "calibration_rounds"),
        (DomainClassifier(columns=[]), "columns"),
        (PCAReconstruction(variance=1.5), "variance"),
        (PCAReconstruction(chunk_size=3), "chunk_size"),
        (PCAReconstruction(threshold=(2.0, 1.0)), "threshold"),
    ]
    for detector, parameter in cases:
        with pytest.raises(ParameterError, match=f"'{parameter}' parameter") as e:
            detector.fit(reference)
        assert e.value.parameter == parameter


def test_evaluating_before_fitting_says_to_fit() -> None:
    with pytest.raises(NotFittedError, match=r"not fitted yet; call fit\(reference\) first"):
        PCAReconstruction().evaluate(plant(50, 70))
