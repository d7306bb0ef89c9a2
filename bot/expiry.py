"""Reading an expiry the way people type it: a number of days, or a date."""

from __future__ import annotations

import datetime as dt
import re
from enum import Enum

MAX_DAYS = 365
# "7", "7 days", "7d", "7 дней": the way the buttons read, typed back.
_DAYS_RE = re.compile(r"([+-]?\d+)\s*(?:d|days?|д|дн|дня|дней|день)?\.?", re.IGNORECASE)
# Unambiguous forms only: "5/1/2027" is January in Europe and May in the US.
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y")


class ExpiryProblem(Enum):
    not_understood = "not_understood"
    too_short = "too_short"
    too_long = "too_long"
    past_date = "past_date"


class BadExpiry(ValueError):
    def __init__(self, problem: ExpiryProblem) -> None:
        self.problem = problem
        super().__init__(problem.value)


def expiry_after_days(days: int, *, now: dt.datetime) -> dt.datetime:
    if days < 1:
        raise BadExpiry(ExpiryProblem.too_short)
    if days > MAX_DAYS:
        raise BadExpiry(ExpiryProblem.too_long)
    return now + dt.timedelta(days=days)


def parse_expiry(text: str, *, now: dt.datetime) -> dt.datetime:
    """`7` → in seven days; `2026-12-31` / `31.12.2026` → the last minute of that day (UTC).

    A date must be tomorrow or later: today's would leave less than the day a number of days
    gives at least.
    """
    text = text.strip()
    if days := _DAYS_RE.fullmatch(text):
        return expiry_after_days(int(days[1]), now=now)
    for date_format in _DATE_FORMATS:
        try:
            day = dt.datetime.strptime(text, date_format).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        last_minute = day + dt.timedelta(days=1, minutes=-1)  # shown as "31 December, 23:59"
        if day.date() < now.date():
            raise BadExpiry(ExpiryProblem.past_date)
        if day.date() == now.date():
            raise BadExpiry(ExpiryProblem.too_short)
        if day.date() > (now + dt.timedelta(days=MAX_DAYS)).date():
            raise BadExpiry(ExpiryProblem.too_long)
        return min(last_minute, now + dt.timedelta(days=MAX_DAYS))
    raise BadExpiry(ExpiryProblem.not_understood)


def example_date(now: dt.datetime) -> dt.date:
    """A date to show in hints: always ahead, a month from today."""
    return (now + dt.timedelta(days=30)).date()
