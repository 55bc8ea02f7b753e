"""Turn a page's own date statement into a UTC instant and a calendar date, without inventing one.

``published_at`` must be a true instant or null: a string with a time and an
offset (``2021-03-04T23:30-08:00``, ``Tue, 23 Feb 2021 18:05:00 GMT``) gives an
instant; a date alone, or a time without an offset, gives only the calendar
date the page states; anything ambiguous (``03/04/2021``) gives neither. The
raw string is always kept by the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

#: dates further in the future than this, relative to the fetch, are not believed
FUTURE_TOLERANCE = timedelta(days=1)
#: nor dates before the web existed
EARLIEST = date(1990, 1, 1)

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}")
_SPACE_OFFSET = re.compile(r"\s+([+-]\d{2}:?\d{2}|Z)$")
_FRACTION = re.compile(r"(\.\d{1,6})\d*")
#: calendar dates whose reading is unambiguous: year first, or the month named
_DAY_FORMATS = ("%Y/%m/%d", "%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y")


@dataclass(frozen=True, slots=True)
class ParsedDate:
    instant: datetime | None  #: UTC, when the statement has a time and an offset
    day: date | None  #: the calendar date as stated, in the page's own time zone


NO_DATE = ParsedDate(None, None)


def parse_date_statement(raw: str | None, *, now: datetime) -> ParsedDate:
    """Parse ``raw`` strictly; ``now`` (UTC) bounds plausible dates."""
    if not raw:
        return NO_DATE
    text = raw.strip()
    parsed = _parse_iso(text) or _parse_rfc2822(text) or _parse_day(text)
    if parsed is None:
        return NO_DATE
    if isinstance(parsed, datetime):
        if parsed.tzinfo is None:
            result = ParsedDate(None, parsed.date())
        else:
            result = ParsedDate(parsed.astimezone(timezone.utc), parsed.date())
    else:
        result = ParsedDate(None, parsed)
    return result if _plausible(result, now) else NO_DATE


def _parse_iso(text: str) -> datetime | date | None:
    if _ISO_DATE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            return None
    if not _ISO_LIKE.match(text):
        return None
    text = _SPACE_OFFSET.sub(r"\1", text)  # "2017-11-03 03:01:00 +01:00"
    text = _FRACTION.sub(r"\1", text, count=1)  # more than microseconds
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _parse_rfc2822(text: str) -> datetime | None:
    if not re.match(r"^(?:[A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{4}\s+\d{1,2}:\d{2}", text):
        return None
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None


def _parse_day(text: str) -> date | None:
    for pattern in _DAY_FORMATS:
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


def _plausible(parsed: ParsedDate, now: datetime) -> bool:
    day = parsed.day
    if day is None or day < EARLIEST:
        return False
    if parsed.instant is not None:
        return parsed.instant <= now + FUTURE_TOLERANCE
    return day <= (now + FUTURE_TOLERANCE).date()
