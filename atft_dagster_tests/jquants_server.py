"""A real HTTP server on 127.0.0.1 that plays the J-Quants v2 API, from the recorded responses or from a
synthetic market, with scripted faults, so the real client's HTTP stack (sessions, adapters, retries)
runs in the tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import polars as pl

from atft_dagster.calendar import trading_days
from atft_dagster.landing import jquants_bars, jquants_master, jquants_topix
from atft_dagster.sources.synthetic import SyntheticSource
from atft_dagster_tests.jquants_fake import recorded_response

Responder = Callable[[str, dict[str, str]], tuple[int, dict]]


class FakeJQuants:
    """``faults``: what the next requests get instead of the recorded answer, in order: an HTTP status,
    ``(status, retry_after_seconds)``, ``"bad-json"``, ``"empty"`` (a page with no rows), ``"loop"`` (a page
    whose pagination_key never changes, for every later request too). ``responder`` answers a path and
    its query when no fault is due (default: the recorded responses)."""

    def __init__(self, faults: list | None = None, responder: Responder = recorded_response):
        self.faults = list(faults or [])
        self.paths: list[str] = []
        self.loop = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                url = urlparse(self.path)
                owner.paths.append(url.path)
                fault = owner.faults.pop(0) if owner.faults else None
                if fault == "loop" or owner.loop:
                    owner.loop = True
                    return self._send(200, {"data": [], "pagination_key": "same"})
                if fault == "bad-json":
                    return self._send(200, b"<html>gateway</html>")
                if fault == "empty":
                    return self._send(200, {"data": []})
                if isinstance(fault, tuple):
                    return self._send(fault[0], {"message": "busy"}, {"Retry-After": str(fault[1])})
                if isinstance(fault, int):
                    return self._send(fault, {"message": "scripted failure"})
                status, body = responder(url.path, {k: v[0] for k, v in parse_qs(url.query).items()})
                return self._send(status, body)

            def _send(self, status: int, body, headers: dict | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v2"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeJQuants:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _day(text: str) -> date:
    return date.fromisoformat(text if "-" in text else f"{text[:4]}-{text[4:6]}-{text[6:]}")


def market_responder(source: SyntheticSource, page_rows: int = 500) -> Responder:
    """The J-Quants v2 API over a synthetic market: bars by ``date`` (a range needs a ``code``, as the
    API); TOPIX and the calendar by range; master snapshots by date; every answer paged every
    ``page_rows`` rows."""
    master = source.market().sector_master_frame()

    def page(rows: list[dict], q: dict[str, str]) -> dict:
        start = int(q.get("pagination_key", "0"))
        body: dict = {"data": rows[start : start + page_rows]}
        if start + page_rows < len(rows):
            body["pagination_key"] = str(start + page_rows)
        return body

    def respond(path: str, q: dict[str, str]) -> tuple[int, dict]:
        path = path.removeprefix("/v2")
        if path == "/equities/bars/daily":
            if not q.get("date"):
                return 400, {"message": "This API requires at least 1 parameter as follows; 'date','code'."}
            d = _day(q["date"])
            return 200, page(jquants_bars(source.daily_quotes(d, d)).to_dicts(), q)
        if path == "/indices/bars/daily/topix":
            bars = source.topix(_day(q["from"]), _day(q["to"]))
            return 200, page(jquants_topix(bars).to_dicts(), q)
        if path == "/markets/calendar":
            lo, hi = _day(q["from"]), _day(q["to"])
            sessions = set(trading_days(lo, hi))
            days = pl.date_range(lo, hi, "1d", eager=True).to_list()
            rows = [{"Date": d.isoformat(), "HolDiv": "1" if d in sessions else "0"} for d in days]
            return 200, page(rows, q)
        if path == "/equities/master":
            d = _day(q["date"])
            known = master.filter(pl.col("valid_from") <= d).with_columns(
                pl.when(pl.col("valid_to") > d).then(None).otherwise(pl.col("valid_to")).alias("valid_to")
            )
            snapshot = jquants_master(known, d).with_columns(  # the v2 fields our reader does not use
                pl.col("CoNameEn").alias("CoName"),
                *[pl.lit("-").alias(c) for c in ("S17Nm", "S33Nm", "ScaleCat", "MktNm", "MrgnNm")],
                pl.lit("1").alias("Mrgn"),
                pl.lit("011").alias("ProdCat"),
            )
            return 200, page(snapshot.to_dicts(), q)
        return 404, {"message": f"unknown path {path}"}

    return respond
