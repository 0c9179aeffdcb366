"""A real HTTP server on 127.0.0.1 that plays the J-Quants v2 API from the recorded responses, with
scripted faults, so the real client's HTTP stack (sessions, adapters, retries) runs in the tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from atft_dagster_tests.jquants_fake import recorded_response


class FakeJQuants:
    """``faults``: what the next requests get instead of the recorded answer, in order: an HTTP status,
    ``(status, retry_after_seconds)``, ``"bad-json"``, ``"empty"`` (a page with no rows), ``"loop"`` (a page
    whose pagination_key never changes, for every later request too)."""

    def __init__(self, faults: list | None = None):
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
                status, body = recorded_response(url.path, {k: v[0] for k, v in parse_qs(url.query).items()})
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
