"""A reference, fitted once: its profile, profiles of its chunks, and calibrated drift thresholds.

Raw p-values at large sample sizes flag every column. mlwarden instead learns from the reference
how large each drift test's effect size gets *without drift*. The reference is cut into
contiguous chunks (contiguous, so that the natural hour-to-hour variation of a process counts as
"no drift"). Runs of consecutive chunks about as long as the current window are each compared
with the rest of the reference (leave-one-out), and the alarm threshold is an upper prediction
bound of those effects: their mean plus a Student-t quantile times their spread, at a per-column
false-alarm probability of ``alpha / n_columns`` (family-wise control, Bonferroni). A current
window shorter than a chunk gets a wider threshold, scaled by how the test's effect shrinks with
sample size; a longer one keeps the chunk-length threshold, which is conservative. No threshold
falls below the test's smallest meaningful effect.

Fitted with a ``timestamp`` and the ``window`` it will be compared in, a reference also learns
its :class:`~mlwarden.drift.regimes.Regimes`: the recipe, product or phase of the day within
which each numeric column is compared, like with like (Kolmogorov-Smirnov against the mixture of
the regimes' reference distributions in the current batch's proportions).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import msgpack
import numpy as np
from scipy import stats

from mlwarden import frames
from mlwarden.drift.regimes import PHASE, Regimes
from mlwarden.exceptions import FormatError, InputError, check_int
from mlwarden.profiling import ColumnProfile, HyperLogLog, Profile, ProfileConfig, profile
from mlwarden.schema import Kind

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mlwarden.drift.base import DriftTest
    from mlwarden.schema import Role

DEFAULT_CHUNKS = 20
MIN_CHUNK_ROWS = 50
MIN_INDEPENDENT = 10
_MAGIC = b"MLWREF"
FORMAT_VERSION = 2


@dataclass(frozen=True, slots=True)
class NullSpread:
    """Effect sizes of one test on one column between reference windows and the rest of it.

    ``n_independent`` counts the non-overlapping windows behind ``mean`` and ``std``.
    """

    mean: float
    std: float
    chunk_rows: float
    n_independent: int

    def threshold(self, tail: float, n_rows: int, test: DriftTest) -> float:
        """Alarm threshold for a current window of ``n_rows`` rows, exceeded without drift with
        probability ``tail``.

        An upper prediction bound: the Student-t quantile accounts for estimating the spread
        from few reference windows, so a short reference widens the threshold instead of
        raising false alarms.
        """
        df = max(1, self.n_independent - 1)
        factor = float(stats.t.isf(tail, df)) * math.sqrt(1.0 + 1.0 / max(1, self.n_independent))
        base = self.mean + factor * self.std
        if n_rows < self.chunk_rows and n_rows > 0:
            ratio = self.chunk_rows / n_rows
            base *= math.sqrt(ratio) if test.scaling == "sqrt" else ratio
        return max(base, test.min_effect)


@dataclass(eq=False)
class Reference:
    """The data a model version is judged against, summarized for drift detection.

    Build it with :meth:`fit`; store it with :meth:`to_bytes`. The null spreads of drift tests are
    computed on first use and cached.

    Example:
        >>> import numpy as np, polars as pl
        >>> rng = np.random.default_rng(0)
        >>> ref = Reference.fit(pl.DataFrame({"temp": rng.normal(200, 5, 10_000)}))
        >>> ref.n_rows, len(ref.chunks)
        (10000, 20)
        >>> from mlwarden.drift.ks import KolmogorovSmirnov
        >>> bool(0.02 < ref.threshold("temp", KolmogorovSmirnov(), n_rows=500, n_columns=1) < 0.2)
        True
    """

    profile: Profile
    chunks: list[Profile]
    regimes: Regimes = field(default_factory=Regimes)
    _spreads: dict[tuple[str, str, int], NullSpread] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        data: object,
        *,
        columns: Sequence[str] | None = None,
        kinds: Mapping[str, str | Kind] | None = None,
        roles: Mapping[str, str | Role] | None = None,
        chunks: int = DEFAULT_CHUNKS,
        config: ProfileConfig | None = None,
        timestamp: str | None = None,
        window: str | None = None,
        regimes: bool = True,
    ) -> Reference:
        """Profile the reference in ``chunks`` contiguous chunks (fewer for a small reference),
        and (with ``regimes``) learn the regimes its numeric columns are compared within; the
        phase of the day or week counts as one when a ``timestamp`` and the ``window`` the
        reference will be compared in are given (pass the reference in time order)."""
        check_int(chunks, "chunks", "Reference.fit", 2, 1000)
        frame = frames.to_polars(data, columns=columns)
        if frame.height == 0:
            raise InputError("The reference has no rows; drift needs reference data to compare.")
        n_chunks = max(2, min(chunks, frame.height // MIN_CHUNK_ROWS))
        bounds = np.linspace(0, frame.height, n_chunks + 1).astype(int)
        parts = [
            profile(frame.slice(lo, hi - lo), kinds=kinds, roles=roles, config=config)
            for lo, hi in itertools.pairwise(bounds)
        ]
        whole = parts[0]
        for part in parts[1:]:
            whole = whole.merge(part)
        found = Regimes()
        if regimes:
            from mlwarden.quality._durations import parse_duration

            schema = whole.schema
            found = Regimes.detect(
                frame,
                kinds={c.name: c.kind for c in schema},
                roles={c.name: c.role for c in schema},
                timestamp=timestamp if timestamp in frame.columns else None,
                window_seconds=None
                if window is None
                else parse_duration(window, "window", "Reference.fit"),
                config=whole.config,
                chunk_bounds=[int(b) for b in bounds],
            )
        return cls(whole, parts, found)

    @property
    def n_rows(self) -> int:
        """Rows in the reference."""
        return self.profile.n_rows

    def spread(self, column: str, test: DriftTest, *, n_rows: int | None = None) -> NullSpread:
        """Mean and spread of the test's effect between reference windows and the reference.

        The windows are runs of consecutive chunks about as long as the current window
        (``n_rows``), so that the spread reflects windows of that size; at least three windows
        are kept.
        """
        chunk_rows = self.n_rows / len(self.chunks)
        group = 1
        if n_rows is not None and n_rows > chunk_rows:
            # Keep at least MIN_INDEPENDENT non-overlapping runs: a spread estimated from two or
            # three long runs would give useless (huge) prediction bounds.
            group = max(1, min(round(n_rows / chunk_rows), len(self.chunks) // MIN_INDEPENDENT))
        key = (column, test.key, group)
        if key not in self._spreads and self.conditioned(column, test):
            self._spreads[key] = self._conditioned_spread(column, test, group, chunk_rows)
        if key not in self._spreads:
            parts = [_needed(chunk[column]) for chunk in self.chunks]
            k = len(parts)
            # Each run of `group` consecutive chunks is compared with the rest of the reference
            # (leave-one-out, as a current window is not part of the reference), built from
            # prefix and suffix merges: one merge per run.
            prefix: list[ColumnProfile | None] = [None]
            for part in parts:
                last = prefix[-1]
                prefix.append(part if last is None else last.merge(part))
            suffix: list[ColumnProfile | None] = [None]
            for part in reversed(parts):
                last = suffix[-1]
                suffix.append(part if last is None else part.merge(last))
            suffix.reverse()
            effects = []
            for start in range(k - group + 1):
                run = parts[start]
                for part in parts[start + 1 : start + group]:
                    run = run.merge(part)
                before, after = prefix[start], suffix[start + group]
                rest = before.merge(after) if before and after else (before or after)
                assert rest is not None
                effects.append(test.compute(rest, run).effect_size)
            usable = np.asarray([e for e in effects if math.isfinite(e)], dtype=np.float64)
            mean = float(usable.mean()) if usable.size else 0.0
            std = float(usable.std(ddof=1)) if usable.size > 1 else 0.0
            self._spreads[key] = NullSpread(mean, std, chunk_rows * group, k // group)
        return self._spreads[key]

    def conditioned(self, column: str, test: DriftTest) -> bool:
        """Whether ``column`` is compared within its regime by ``test``: Kolmogorov-Smirnov
        reads a numeric mixture's distribution function, Jensen-Shannon a categorical mixture's
        shares (other tests compare whole distributions)."""
        if column not in self.regimes.given or column not in self.profile.columns:
            return False
        numeric = self.profile[column].kind is Kind.NUMERIC
        return test.key == "ks" if numeric else test.key == "jensen_shannon"

    def within(
        self, column: str, current: Profile, test: DriftTest
    ) -> tuple[ColumnProfile, str] | None:
        """The reference's ``column`` mixed in the current batch's regime proportions, and a
        note saying so; None when the column is not conditioned or the batch lacks its regime."""
        if not self.conditioned(column, test):
            return None
        regime = self.regimes.given[column]
        weights = self.regimes.weights(current, regime)
        if weights is None:
            return None
        what = (
            self.regimes.phase.describe()
            if regime == PHASE and self.regimes.phase
            else f"'{regime}'"
        )
        mixed = self.regimes.mixture(column, self.profile[column], weights)
        return mixed, f"compared within {what}"

    def _conditioned_spread(
        self, column: str, test: DriftTest, group: int, chunk_rows: float
    ) -> NullSpread:
        """The spread of a conditioned column's effect: each run of chunks against the
        reference's regimes mixed in the run's proportions (the run is part of those regime
        profiles, which makes the effects a little smaller than out of sample)."""
        regime = self.regimes.given[column]
        k = len(self.chunks)
        effects = []
        for start in range(k - group + 1):  # one comparison per run of chunks
            run = self.chunks[start]
            for part in self.chunks[start + 1 : start + group]:
                run = run.merge(part)
            if regime == PHASE:
                counts: dict[str, int] = {}
                for c in range(start, start + group):
                    chunk_counts = (
                        self.regimes.chunk_weights[c] if c < len(self.regimes.chunk_weights) else {}
                    )
                    for value, n in chunk_counts.items():
                        counts[value] = counts.get(value, 0) + n
                total = sum(counts.values())
                weights = {v: n / total for v, n in counts.items()} if total else {}
            else:
                weights = self.regimes.weights(run, regime) or {}
            mixed = self.regimes.mixture(column, self.profile[column], weights)
            effects.append(test.compute(mixed, run[column]).effect_size)
        usable = np.asarray([e for e in effects if math.isfinite(e)], dtype=np.float64)
        mean = float(usable.mean()) if usable.size else 0.0
        std = float(usable.std(ddof=1)) if usable.size > 1 else 0.0
        return NullSpread(mean, std, chunk_rows * group, k // group)

    def threshold(
        self, column: str, test: DriftTest, *, n_rows: int, n_columns: int, alpha: float = 0.05
    ) -> float:
        """Calibrated alarm threshold of ``test`` on ``column`` for a window of ``n_rows``."""
        spread = self.spread(column, test, n_rows=n_rows)
        return spread.threshold(tail_probability(alpha, n_columns), n_rows, test)

    def to_bytes(self) -> bytes:
        """Compact binary form (the profiles; null spreads are recomputed on load)."""
        doc = {
            "format_version": FORMAT_VERSION,
            "profile": self.profile.to_dict(),
            "chunks": [c.to_dict() for c in self.chunks],
            "regimes": self.regimes.to_dict() if self.regimes else None,
        }
        packed: bytes = msgpack.packb(doc, use_bin_type=True)
        return _MAGIC + packed

    @classmethod
    def from_bytes(cls, data: bytes) -> Reference:
        """Inverse of :meth:`to_bytes`."""
        if not data.startswith(_MAGIC):
            raise FormatError("Not a binary mlwarden reference (wrong header).")
        try:
            doc: dict[str, Any] = msgpack.unpackb(data[len(_MAGIC) :], raw=False)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError) as exc:
            raise FormatError(f"Corrupt reference: {exc}.") from exc
        if doc.get("format_version") not in (1, FORMAT_VERSION):
            raise FormatError(
                f"Unsupported reference format version {doc.get('format_version')!r}; this "
                f"mlwarden reads versions 1 to {FORMAT_VERSION}."
            )
        return cls(
            Profile.from_dict(doc["profile"]),
            [Profile.from_dict(c) for c in doc["chunks"]],
            Regimes.from_dict(doc.get("regimes")),
        )


def _needed(column: ColumnProfile) -> ColumnProfile:
    """The parts of a column profile that drift tests read; the rest is dropped so that the many
    merges of calibration stay cheap (no distinct-count registers or automatic histograms)."""
    numeric = column.kind is Kind.NUMERIC
    return replace(
        column,
        distinct_sketch=_EMPTY_HLL,
        histogram=None,
        gaps=None,
        lengths=None,
        items=None if numeric else column.items,
        quantiles=column.quantiles if numeric else None,
    )


_EMPTY_HLL = HyperLogLog(4)


def tail_probability(alpha: float, n_columns: int) -> float:
    """Per-column false-alarm probability for a family-wise rate ``alpha`` (Bonferroni), and
    never above that of three standard deviations of a normal distribution."""
    return min(alpha / max(1, n_columns), float(stats.norm.sf(3.0)))


def as_reference(
    data: object,
    *,
    columns: Sequence[str] | None = None,
    kinds: Mapping[str, str | Kind] | None = None,
    roles: Mapping[str, str | Role] | None = None,
) -> Reference:
    """A :class:`Reference` as given, or fitted from data."""
    if isinstance(data, Reference):
        return data
    if isinstance(data, Profile):
        raise InputError(
            "compare() needs the reference data or a fitted Reference, not a single Profile: "
            "calibrating thresholds needs the reference's chunks. Use Reference.fit(data)."
        )
    return Reference.fit(data, columns=columns, kinds=kinds, roles=roles)


__all__ = ["NullSpread", "Reference", "as_reference", "tail_probability"]
