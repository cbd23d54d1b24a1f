"""Loopback ports (shared/ports.py): the one place the code, the tests and the benchmarks choose
them (issue 23 found ``free_port`` written three times, and a fourth in bench/coldstart.py)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from shared.ports import free_port, port_taken

ROOT = Path(__file__).resolve().parents[2]


def test_a_free_port_is_free_until_a_socket_takes_it() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    assert not port_taken(port)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        assert port_taken(port)
    assert not port_taken(port)


def test_free_port_is_written_once() -> None:
    defined = sorted(str(path.relative_to(ROOT))
                     for folder in ("shared", "functions", "model_server", "charla", "bench",
                                    "tests")
                     for path in (ROOT / folder).rglob("*.py")
                     if re.search(r"^\s*def _?(free_port|port_taken)\(", path.read_text(), re.M))
    assert defined == ["shared/ports.py"]
