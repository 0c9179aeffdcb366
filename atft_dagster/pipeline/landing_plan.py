"""Which landed files to ingest: each new or changed quote file once, malformed files quarantined."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from atft_dagster.sources.files import FileRejected, LandingFileSource
from atft_dagster.sources.layouts import QUOTE_LAYOUTS


@dataclass(frozen=True)
class IngestRequest:
    file: str
    mtime: float
    days: list[date]

    @property
    def key(self) -> str:
        """Unique per file version: a rewritten file is ingested again."""
        return f"{self.file}:{self.mtime}"


@dataclass
class LandingPlan:
    requests: list[IngestRequest] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line per file looked at: ingested or quarantined
    rejected: list[FileRejected] = field(default_factory=list)
    seen: dict[str, float] = field(default_factory=dict)  # file name -> modification time (the cursor)


def plan_landing(source: LandingFileSource, seen: dict[str, float]) -> LandingPlan:
    """Look at every landing file not yet seen at its current modification time. A malformed one is
    quarantined (by ``source.check``) and noted; a well-formed quote file yields one request for its
    trading days; master and index files are read by the ingest itself. Every file looked at is marked
    seen, so nothing runs twice and nothing is missed."""
    plan = LandingPlan(seen=dict(seen))
    for path in source.files():
        mtime = path.stat().st_mtime
        if seen.get(path.name) == mtime:
            continue
        plan.seen[path.name] = mtime
        try:
            landed = source.check(path)
        except FileRejected as err:
            plan.rejected.append(err)
            plan.notes.append(f"quarantined {path.name}: {err.reason}")
            continue
        if landed.layout in QUOTE_LAYOUTS:
            days = sorted(set(landed.frame["date"].to_list()))
            plan.requests.append(IngestRequest(path.name, mtime, days))
            plan.notes.append(f"ingest {path.name}: {days[0]} .. {days[-1]}")
    return plan
