"""Validation that drops, counts and samples bad rows, never silently: pandera for DataFrames
(`validate_frame`), pydantic for records still in the provider's shape (`validate_records`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sync_assets.core.redaction import redact

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd
    import pandera.pandas as pa
    from pydantic import TypeAdapter

SAMPLE_SIZE = 5


class TooManyInvalidError(RuntimeError):
    """More rows failed validation than the run's threshold allows."""


@dataclass
class ValidationOutcome:
    """The rows that passed, and what was wrong with the ones that did not."""

    valid: pd.DataFrame
    fetched: int
    invalid: int
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def invalid_fraction(self) -> float:
        return self.invalid / self.fetched if self.fetched else 0.0

    def as_metadata(self, prefix: str = "") -> dict[str, Any]:
        return {
            f"{prefix}fetched": self.fetched,
            f"{prefix}valid": len(self.valid),
            f"{prefix}invalid": self.invalid,
        }


def validate_frame(
    frame: pd.DataFrame, schema: pa.DataFrameSchema | type, *, name: str = "rows"
) -> ValidationOutcome:
    """Validate every row at once (lazy) and split `frame` into valid rows and rejections."""
    import pandas as pd
    from pandera.errors import SchemaErrors

    model = schema.to_schema() if hasattr(schema, "to_schema") else schema
    fetched = len(frame)
    try:
        valid = model.validate(frame, lazy=True)
        return ValidationOutcome(valid=valid, fetched=fetched, invalid=0)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        bad_index = cases["index"].dropna().unique()
        frame_level = cases[cases["index"].isna()]
        if len(frame_level):
            details = "; ".join(
                f"{row.column}: {row.check}" for row in frame_level.head(SAMPLE_SIZE).itertuples()
            )
            raise TooManyInvalidError(
                f"{name} failed a table-level check: {redact(details)}"
            ) from None
        samples = []
        for row in cases.drop_duplicates("index").head(SAMPLE_SIZE).itertuples():
            samples.append(
                {
                    "row": int(row.index) if pd.notna(row.index) else None,
                    "column": str(row.column),
                    "check": redact(row.check),
                    "value": redact(row.failure_case)[:200],
                }
            )
        remaining = frame.drop(index=[i for i in bad_index if i in frame.index])
        valid = model.validate(remaining, lazy=True) if len(remaining) else remaining
        return ValidationOutcome(
            valid=valid, fetched=fetched, invalid=fetched - len(remaining), samples=samples
        )


@dataclass(frozen=True)
class RecordsOutcome:
    """Which records failed (their positions), and what was wrong with the first few."""

    rejected: frozenset[int] = frozenset()
    samples: list[dict[str, Any]] = field(default_factory=list)

    def valid(self, records: Sequence[Any]) -> list[Any]:
        return [r for i, r in enumerate(records) if i not in self.rejected]


def validate_records(adapter: TypeAdapter[Any], records: Sequence[Any]) -> RecordsOutcome:
    """Validate `records` with `adapter` (a `TypeAdapter(list[RowType])`) in one call.

    A sample names the record's position, the field (nested names joined by `_`, `(row)` for a
    check of the whole record), pydantic's message and the offending value.
    """
    from pydantic import ValidationError

    try:
        adapter.validate_python(records)
        return RecordsOutcome()
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
    rejected: set[int] = set()
    samples = []
    for error in errors:
        position, *path = error["loc"]
        if position in rejected:
            continue
        rejected.add(int(position))
        if len(samples) < SAMPLE_SIZE:
            value = "(missing)" if error["type"] == "missing" else error["input"]
            samples.append(
                {
                    "row": int(position),
                    "column": "_".join(str(part) for part in path) or "(row)",
                    "check": redact(error["msg"]),
                    "value": redact(value)[:200],
                }
            )
    return RecordsOutcome(frozenset(rejected), samples)


def enforce_threshold(outcome: ValidationOutcome, threshold: float, *, name: str) -> None:
    """Fail the run when the invalid share is above `threshold` (e.g. 0.05 for 5%)."""
    if outcome.invalid_fraction > threshold:
        raise TooManyInvalidError(
            f"{name}: {outcome.invalid} of {outcome.fetched} rows invalid "
            f"({outcome.invalid_fraction:.1%} > {threshold:.0%} allowed); nothing was written. "
            f"Samples: {outcome.samples}"
        )
