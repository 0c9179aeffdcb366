"""A real PostgreSQL server for the tests: a fresh cluster in a temporary folder on a free port, started
with the OS package's `initdb` and `pg_ctl` (as the `postgres` user when run as root), removed after."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER, DATABASE = "atft", "atft"


def server_binaries() -> tuple[str, str] | None:
    """(initdb, pg_ctl) from PATH or the Debian package's folder; None when PostgreSQL is not installed."""
    found = []
    for name in ("initdb", "pg_ctl"):
        path = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
        if path is None:
            return None
        found.append(path)
    return found[0], found[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def temporary_postgres() -> Iterator[str]:
    """Start a server; yield the URL of an empty database on it; stop and delete it."""
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (initdb / pg_ctl not found)")
    initdb, pg_ctl = binaries
    folder = Path(tempfile.mkdtemp(prefix="atft-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to the package's postgres user
        shutil.chown(folder, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_owner, *args], check=True, capture_output=True, timeout=120)

    run(initdb, "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start")
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user=USER, dbname="postgres")
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        conn.cursor().execute(f"CREATE DATABASE {DATABASE}")
        conn.close()
        yield f"postgresql://{USER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
