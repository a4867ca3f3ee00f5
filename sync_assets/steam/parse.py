"""Turn one store `appdetails` answer into an `app_details` row, tolerating the store's quirks.

The store writes numbers as strings ("18", genre ids), `[]` where an object is expected
(`linux_requirements`, sometimes `price_overview` or `metacritic`), HTML entities in names,
release dates in the requested language ("24 Feb, 2022", "2020 年 8 月 28 日", "Coming soon")
and leaves out `price_overview` for free apps. Some apps answer under their own key with
another app's data (209660 sends 209650's, `data.steam_appid` says so): those are skipped.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass
from typing import Any

DETAIL_COLUMNS = (
    "appid",
    "type",
    "name",
    "is_free",
    "required_age",
    "developers",
    "publishers",
    "price_initial_cents",
    "price_final_cents",
    "currency",
    "discount_percent",
    "platforms",
    "genres",
    "categories",
    "release_date",
    "release_date_text",
    "coming_soon",
    "metacritic_score",
    "recommendations",
)

MONTHS = {
    # English, French, German, Spanish, Portuguese, Italian, Dutch, Russian (abbreviated, lower)
    **dict.fromkeys(["jan", "janv", "ene", "gen", "янв"], 1),
    **dict.fromkeys(["feb", "févr", "fevr", "fev", "fév", "fevereiro", "фев"], 2),
    **dict.fromkeys(["mar", "mars", "mär", "maart", "мар"], 3),
    **dict.fromkeys(["apr", "avr", "abr", "апр"], 4),
    **dict.fromkeys(["may", "mai", "mei", "mag", "mayo", "maio", "май", "мая"], 5),
    **dict.fromkeys(["jun", "juin", "giu", "июн"], 6),
    **dict.fromkeys(["jul", "juil", "lug", "июл"], 7),
    **dict.fromkeys(["aug", "août", "aout", "ago", "авг"], 8),
    **dict.fromkeys(["sep", "sept", "set", "сен"], 9),
    **dict.fromkeys(["oct", "okt", "out", "ott", "окт"], 10),
    **dict.fromkeys(["nov", "ноя"], 11),
    **dict.fromkeys(["dec", "déc", "dez", "dic", "дек"], 12),
}

_CJK_DATE = re.compile(r"(\d{4})\s*[年년]\s*(\d{1,2})\s*[月월]\s*(\d{1,2})\s*[日일]?")
_DAY_MONTH_YEAR = re.compile(r"^(\d{1,2})\.?\s+([^\W\d_]+)\.?,?\s+(\d{4})$")
_MONTH_DAY_YEAR = re.compile(r"^([^\W\d_]+)\.?\s+(\d{1,2}),?\s+(\d{4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DIGITS = re.compile(r"-?\d+")


class MalformedDetails(ValueError):
    """The answer has `success: true` but its `data` cannot be read as an app."""


@dataclass(frozen=True)
class Redirect:
    """The store answered for an app with the details of `target`, another app."""

    target: int


def redirect_of(appid: int, data: Any) -> Redirect | None:
    """A Redirect when `data.steam_appid` names an app other than `appid`; else None."""
    target = as_int(as_object(data).get("steam_appid"))
    return Redirect(target) if target is not None and target != appid else None


def as_object(value: Any) -> dict[str, Any]:
    """The store sends `[]` (or null) where an object is expected: read both as empty."""
    return value if isinstance(value, dict) else {}


def as_int(value: Any) -> int | None:
    """An integer from an int, a float, or a string such as "18" or "18+"; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        match = _DIGITS.search(value.replace(",", ""))
        return int(match.group()) if match else None
    return None


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0"}:
        return value.strip().lower() in {"true", "1"}
    if isinstance(value, int):
        return bool(value)
    return None


def text_list(values: Any, key: str | None = None) -> list[str] | None:
    """Strings from a list of strings, or of objects' `key` ("description"); None if absent."""
    if not isinstance(values, list):
        return None
    out = []
    for value in values:
        if key is not None:
            value = as_object(value).get(key)
        if isinstance(value, str | int) and str(value).strip():
            out.append(html.unescape(str(value)).strip())
    return out


def _month(word: str) -> int | None:
    word = word.lower().rstrip(".")
    return MONTHS.get(word) or MONTHS.get(word[:4]) or MONTHS.get(word[:3])


def parse_release_date(text: str | None) -> dt.date | None:
    """A calendar date from the store's localized text; None for "Coming soon", "Q3 2025"..."""
    if not text:
        return None
    text = " ".join(text.split())
    day = month = year = None
    if match := _CJK_DATE.search(text):
        year, month, day = (int(g) for g in match.groups())
    elif match := _ISO_DATE.match(text):
        year, month, day = (int(g) for g in match.groups())
    elif match := _DAY_MONTH_YEAR.match(text):
        day, month, year = int(match[1]), _month(match[2]), int(match[3])
    elif match := _MONTH_DAY_YEAR.match(text):
        month, day, year = _month(match[1]), int(match[2]), int(match[3])
    if not (day and month and year):
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def parse_app_details(appid: int, data: Any) -> dict[str, Any]:
    """One `app_details` row from the `data` object of a `success: true` answer."""
    if not isinstance(data, dict) or not data:
        raise MalformedDetails(f"app {appid}: 'data' is {type(data).__name__}, not an object")
    is_free = as_bool(data.get("is_free"))
    price = as_object(data.get("price_overview"))
    initial, final = as_int(price.get("initial")), as_int(price.get("final"))
    if not price and is_free:
        initial = final = 0  # the store leaves the price out of free apps
    release = as_object(data.get("release_date"))
    release_text = release.get("date") if isinstance(release.get("date"), str) else None
    platforms = as_object(data.get("platforms"))
    name = data.get("name")
    return {
        "appid": appid,
        "type": str(data["type"]).lower() if data.get("type") else None,
        "name": html.unescape(name).strip() if isinstance(name, str) else None,
        "is_free": is_free,
        "required_age": as_int(data.get("required_age")),
        "developers": text_list(data.get("developers")),
        "publishers": text_list(data.get("publishers")),
        "price_initial_cents": initial,
        "price_final_cents": final,
        "currency": price.get("currency") or None,
        "discount_percent": as_int(price.get("discount_percent")),
        "platforms": sorted(k for k, v in platforms.items() if as_bool(v)),
        "genres": text_list(data.get("genres"), "description"),
        "categories": text_list(data.get("categories"), "description"),
        "release_date": parse_release_date(release_text),
        "release_date_text": release_text,
        "coming_soon": as_bool(release.get("coming_soon")),
        "metacritic_score": as_int(as_object(data.get("metacritic")).get("score")),
        "recommendations": as_int(as_object(data.get("recommendations")).get("total")),
    }
