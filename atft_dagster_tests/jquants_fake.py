"""A fake HTTP layer for ``jquantsapi.ClientV2``: serves the recorded v2 responses in fixtures/,
so the real client code (paging, parsing) runs without network."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import requests
from requests.adapters import BaseAdapter

FIXTURES = Path(__file__).parent / "fixtures" / "jquants_v2"


def _load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def recorded_response(path: str, q: dict[str, str]) -> tuple[int, dict]:
    """The recorded v2 response for a request path (with or without /v2) and its query."""
    path = path.removeprefix("/v2")
    if path == "/equities/bars/daily":
        return _bars(q)
    elif path == "/equities/master":
        name = "eq_master_before.json" if q.get("date", "99999999") < "20240601" else "eq_master_after.json"
    elif path == "/indices/bars/daily/topix":
        name = "idx_bars_daily_topix.json"
    elif path == "/markets/calendar":
        name = "mkt_calendar.json"
    else:
        return 404, {"message": f"unknown path {path}"}
    return 200, _load(name)


def _bars(q: dict[str, str]) -> tuple[int, dict]:
    """As the API: ``code`` or ``date`` is required (a bare from/to range is refused); a ``date`` query gets
    that day's rows of each recorded page, with the page key while the next page has rows of that day."""
    if not q.get("code") and not q.get("date"):
        return 400, {"message": "This API requires at least 1 parameter as follows; 'date','code'."}
    pages = [_load("eq_bars_daily_page1.json")["data"], _load("eq_bars_daily_page2.json")["data"]]
    day = q.get("date", "").replace("-", "")
    pages = [[r for r in page if r["Date"].replace("-", "") == day or not day] for page in pages]
    pages = [[r for r in page if r["Code"].startswith(q.get("code", ""))] for page in pages]
    if q.get("pagination_key") == "page2":
        return 200, {"data": pages[1]}
    return 200, {"data": pages[0], **({"pagination_key": "page2"} if pages[1] else {})}


class RecordedJQuants(BaseAdapter):
    """Routes by path; ``failures`` is a list of status codes (or 'timeout') returned before success."""

    def __init__(self, failures: list[int | str] | None = None):
        super().__init__()
        self.failures = list(failures or [])
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):  # noqa: ANN001 - requests' signature
        self.requests.append(request)
        if self.failures:
            failure = self.failures.pop(0)
            if failure == "timeout":
                raise requests.Timeout("recorded timeout")
            return self._response(request, failure, {"message": "recorded failure"})
        url = urlparse(request.url)
        status, body = recorded_response(url.path, {k: v[0] for k, v in parse_qs(url.query).items()})
        return self._response(request, status, body)

    @staticmethod
    def _response(request, status: int, body: dict) -> requests.Response:
        r = requests.Response()
        r.status_code = status
        r._content = json.dumps(body).encode()
        r.headers["Content-Type"] = "application/json"
        r.url = request.url
        r.request = request
        return r

    def close(self) -> None:
        pass


def recorded_client(failures: list[int | str] | None = None):
    """A real ClientV2 whose HTTP session is served by :class:`RecordedJQuants`."""
    import jquantsapi

    client = jquantsapi.ClientV2(api_key="test-key-not-real")
    adapter = RecordedJQuants(failures)
    session = requests.Session()
    session.mount("https://", adapter)
    client._session = session  # the client builds its session lazily; we hand it ours
    return client, adapter
