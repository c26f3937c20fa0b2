"""A throwaway PostgreSQL server for `make test-postgres`, owned by the test run.

``python -m tests.pg_cluster -- COMMAND ...`` installs Debian's postgresql if it is missing, makes a
cluster in a temporary folder, starts it on a free loopback port, runs COMMAND with ``KEFU_TEST_DB``
set to a database on it (tests/conftest.py gives each test its own schema there), then stops the
server and removes the folder, whatever COMMAND did. PostgreSQL refuses to run as root: as root,
initdb and the server run as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import free_port

DATABASE = "kefu_test"

# Settings for a cluster nobody needs after the run: durability off, enough connections for the suite.
SERVER_OPTIONS = [
    "-c", "listen_addresses=127.0.0.1",
    "-c", "fsync=off",
    "-c", "synchronous_commit=off",
    "-c", "full_page_writes=off",
    "-c", "max_connections=300",
    "-c", "shared_buffers=64MB",
]  # fmt: skip


def server_bin() -> Path:
    """The folder of Debian's newest installed PostgreSQL programs, installing the package if none is."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if not found:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env, stdout=subprocess.DEVNULL)
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise SystemExit("no PostgreSQL server programs under /usr/lib/postgresql after installing postgresql")
    return found[-1].parent


def as_owner(argv: list[str]) -> list[str]:
    """``argv`` run as the postgres user when we are root (the server will not run as root)."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """A running throwaway server; yields the URL of its empty test database, stops and removes it after."""
    bindir = server_bin()
    folder = Path(tempfile.mkdtemp(prefix="kefu-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, log = folder / "data", folder / "server.log"
    port = free_port()
    quiet = {"stdout": subprocess.DEVNULL}
    try:
        subprocess.run(
            as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]),
            check=True,
            **quiet,
        )
        options = " ".join([*SERVER_OPTIONS, "-p", str(port), "-k", str(folder)])
        subprocess.run(
            as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start"]),
            check=True,
            **quiet,
        )
        try:
            subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", DATABASE], check=True)
            yield f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"
        finally:
            subprocess.run(as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]), **quiet)
    except subprocess.CalledProcessError:
        if log.exists():
            sys.stderr.write(log.read_text(errors="replace"))
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    """Run the command after ``--`` against a fresh server; exit with its status."""
    command = argv[argv.index("--") + 1 :] if "--" in argv else argv
    if not command:
        print("usage: python -m tests.pg_cluster -- COMMAND ...", file=sys.stderr)
        return 2
    started = time.monotonic()
    with cluster() as url:
        print(f"PostgreSQL for this run: {url} (ready in {time.monotonic() - started:.1f} s)", flush=True)
        return subprocess.run(command, env={**os.environ, "KEFU_TEST_DB": url}).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
