"""Small helpers shared by the tests and the benchmarks."""

from __future__ import annotations

import socket


def free_port() -> int:
    """An unused loopback port, for a server started as its own process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
