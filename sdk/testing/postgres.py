"""A throwaway PostgreSQL server for a test session or a benchmark (Debian's `postgresql`).

    from fleetforge.testing.postgres import find_postgres_bin, postgres_server

    with postgres_server(find_postgres_bin()) as url:
        ...  # url: postgresql://fleetforge@127.0.0.1:PORT/postgres

initdb + pg_ctl under a temp dir (chowned to the `postgres` user when we are root, since initdb
refuses to run as root), on a free private port on 127.0.0.1 with its unix socket in the temp
dir. FleetForge's own suite clones each test's database from a migrated template
(`CREATE DATABASE ... TEMPLATE`), and `FLEETFORGE_TEST_DATABASE_URL` points it at an existing
server instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["find_postgres_bin", "postgres_server"]


def find_postgres_bin() -> Path | None:
    """The newest `/usr/lib/postgresql/<version>/bin` that has initdb, if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_server(
    bindir: Path, *, durable: bool = False, unix_socket: bool = False
) -> Iterator[str]:
    """Start a private server; yield the URL of its `postgres` database; stop it on exit.

    Unless `durable`, fsync is off: these servers hold test data only, and a killed *client*
    (what the crash tests do) is unaffected by it. With `unix_socket` the URL connects through
    the server's socket in the temp dir (``?host=<dir>``) instead of TCP on 127.0.0.1.
    """
    tmp = Path(tempfile.mkdtemp(prefix="fleetforge-pg-"))
    data, sock = tmp / "data", tmp / "sock"
    sock.mkdir()
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        user = pwd.getpwnam("postgres")
        for path in (tmp, sock):
            os.chown(path, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*args: object) -> None:
        subprocess.run([*prefix, *map(str, args)], check=True, capture_output=True, text=True)

    try:
        run(bindir / "initdb", "-D", data, "-U", "fleetforge", "--auth=trust", "-E", "UTF8",
            "--no-locale", "--no-sync")  # fmt: skip
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {port}",
            f"unix_socket_directories = '{sock}'",
            "max_connections = 200",
        ]
        if not durable:
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        conf = "\n".join(settings) + "\n"
        if as_root:
            subprocess.run([*prefix, "sh", "-c", f"cat >> {data}/postgresql.conf"], input=conf,
                           check=True, text=True)  # fmt: skip
        else:
            with (data / "postgresql.conf").open("a") as handle:
                handle.write(conf)
        run(bindir / "pg_ctl", "-D", data, "-l", tmp / "server.log", "-w", "-t", "60", "start")
    except subprocess.CalledProcessError as exc:
        log = (tmp / "server.log").read_text() if (tmp / "server.log").exists() else ""
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr}\n{log}") from exc
    try:
        if unix_socket:
            yield f"postgresql://fleetforge@/postgres?host={sock}&port={port}"
        else:
            yield f"postgresql://fleetforge@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "stop", "-m", "fast"],
                       capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)
