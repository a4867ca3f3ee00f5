"""Every recorded store answer in shared/reference/steam/ parses into the table, or is skipped
the way the store means it (`success: false`)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from sync_assets.steam.parse import parse_release_date
from sync_assets_tests.steam.conftest import configure, details_metadata, query, sync

# Copied from shared/reference/ (real provider answers) so the tests run in any checkout.
REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "steam"


def _recorded_answers() -> dict[int, dict]:
    answers = {}
    for path in sorted(REFERENCE.glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8-sig"))
        for key, entry in body.items():
            if key.isdigit():
                answers[int(key)] = {key: entry}
    return answers


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="shared/reference/steam is not beside the repo")
def test_every_reference_answer_is_stored_or_skipped(steam, database_url) -> None:
    answers = _recorded_answers()
    assert len(answers) == 5
    configure(steam, catalog_size=4, extra_apps=[{"appid": a, "name": ""} for a in answers])
    configure(steam, store=True, answers=answers)
    meta = details_metadata(sync({"batch_size": 50}))
    assert (meta["failed"], meta["invalid_samples"]) == (0, [])

    rows = {
        r[0]: r[1:]
        for r in query(
            database_url,
            "SELECT appid, type, name, is_free, required_age, price_initial_cents,"
            " price_final_cents, currency, platforms, release_date, release_date_text,"
            " metacritic_score, recommendations, developers, genres FROM app_details",
        )
    }
    expected_available = {a for a, body in answers.items() if body[str(a)]["success"]}
    assert expected_available <= set(rows)
    assert rows[1096900][:10] == (
        "game", "RPG Maker MZ", False, 0, 26800, 26800, "CNY", ["mac", "windows"],
        dt.date(2020, 8, 28), "2020 年 8 月 28 日",
    )  # fmt: skip
    assert rows[1096900][10:12] == (None, 1340)
    assert rows[40400][4:11] == (
        1299,
        1299,
        "CAD",
        ["linux", "mac", "windows"],
        dt.date(2009, 10, 21),
        "21 Oct, 2009",
        80,
    )
    assert rows[40400][12] == ["Arcen Games, LLC"] and rows[40400][13] == ["Indie", "Strategy"]
    # Trimmed answers: no is_free and no price_overview -> unknown, not zero.
    assert rows[1245620][:3] == ("game", "ELDEN RING", None)
    assert rows[1245620][4:7] == (None, None, None)
    assert rows[2778580][0] == "dlc" and rows[2778580][8] == dt.date(2024, 6, 20)

    [(error, synced)] = query(
        database_url,
        "SELECT last_error, last_synced_at IS NOT NULL FROM app_sync_status WHERE appid = 1245621",
    )
    assert error.startswith("skipped: not available") and synced
    assert 1245621 not in rows


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24 Feb, 2022", dt.date(2022, 2, 24)),
        ("Feb 24, 2022", dt.date(2022, 2, 24)),
        ("2020 年 8 月 28 日", dt.date(2020, 8, 28)),
        ("2022년 2월 24일", dt.date(2022, 2, 24)),
        ("24 févr. 2022", dt.date(2022, 2, 24)),
        ("24. Dez. 2021", dt.date(2021, 12, 24)),
        ("2021-12-24", dt.date(2021, 12, 24)),
        ("Coming soon", None),
        ("Q3 2027", None),
        ("31 Feb, 2022", None),
        ("", None),
        (None, None),
    ],
)
def test_localized_release_dates(text, expected) -> None:
    assert parse_release_date(text) == expected
