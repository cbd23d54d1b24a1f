"""Loopback ports: one free now, or whether one is held.

The gateway starts llama-server on a port of its choosing, ``charla`` smoke-checks a new
llama-server build, and the tests and benchmarks start servers of their own: all choose their
ports here. A port chosen free may still be taken by another process before its server binds
it; the callers that cannot afford that say how they cope (llama-server's engine starts again on
another port when :func:`port_taken` says it lost its own).
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_taken(port: int) -> bool:
    """Whether another socket holds ``port`` on loopback now (so a listener there must fail)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False
