"""Whether the nightly run for a day can work: a trading day, right after what the panel already holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from atft_dagster.calendar import is_trading_day, trading_days


@dataclass(frozen=True)
class NightlyDecision:
    run: bool
    reason: str


def nightly_decision(day: date, panel_last: date | None) -> NightlyDecision:
    """Run ``nightly`` for ``day`` only when it is an XTKS trading day and every session between the
    market panel's last day and ``day`` has been ingested: otherwise the panel would refuse the gap after
    the day's raw quotes were written, and that stray partition would break later ingests."""
    if not is_trading_day(day):
        return NightlyDecision(False, f"{day} is not an XTKS trading day")
    if panel_last is None:
        return NightlyDecision(
            False, "no market panel yet: ingest the history first (atft ingest, ./run demo)"
        )
    gap = [d for d in trading_days(panel_last, day) if panel_last < d < day]
    if gap:
        return NightlyDecision(
            False,
            f"the market panel ends on {panel_last}; {len(gap)} trading day(s) before {day} are not ingested "
            f"({gap[0]} .. {gap[-1]}): ingest them first (atft ingest --start {gap[0]} --end {day})",
        )
    return NightlyDecision(True, f"{day} follows the panel's last day {panel_last}")
