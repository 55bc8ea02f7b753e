"""Date statements: a true UTC instant or nothing, never an invented date."""

from datetime import date, datetime, timezone

import pytest

from pipelines.dates import parse_date_statement

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("raw", "instant", "day"),
    [
        ("2021-03-04T23:30-08:00", datetime(2021, 3, 5, 7, 30, tzinfo=timezone.utc), date(2021, 3, 4)),
        ("2023-04-28T10:00:00Z", datetime(2023, 4, 28, 10, 0, tzinfo=timezone.utc), date(2023, 4, 28)),
        ("2023-04-28 12:00:00+02:00", datetime(2023, 4, 28, 10, 0, tzinfo=timezone.utc), date(2023, 4, 28)),
        ("Tue, 23 Feb 2021 18:05:00 GMT", datetime(2021, 2, 23, 18, 5, tzinfo=timezone.utc), date(2021, 2, 23)),
        ("2024-06-25", None, date(2024, 6, 25)),  # a date alone is not an instant
        ("2017-11-03 03:01:00.000000", None, date(2017, 11, 3)),  # no offset: not an instant
        ("03/04/2021", None, None),  # ambiguous: March 4 or April 3
        ("13/04/2021", None, None),  # day first, but not a format the page's own metadata should use
        ("2021/03/04", None, date(2021, 3, 4)),  # year first: unambiguous
        ("March 4, 2021", None, date(2021, 3, 4)),
        ("4 March 2021", None, date(2021, 3, 4)),
        ("2026-11-26T11:00:00Z", datetime(2026, 11, 26, 11, 0, tzinfo=timezone.utc), date(2026, 11, 26)),  # < a day
        ("2026-11-26T13:00:00Z", None, None),  # more than a day after the fetch: not believed
        ("2026-11-27", None, None),
        ("2099-01-01T00:00:00Z", None, None),  # in the future
        ("1970-01-01T00:00:00Z", None, None),  # before the web
        ("© 2019", None, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_parse_date_statement(raw, instant, day):
    parsed = parse_date_statement(raw, now=NOW)
    assert parsed.instant == instant
    assert parsed.day == day
