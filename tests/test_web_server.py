"""``peerwatch web`` turns Nagle's algorithm off on every connection (web/server.py): with
several workers uvicorn leaves it on, and each kept-alive request then waited for a delayed ACK.
Checked on a real TCP connection; and the protocol class is what a worker process imports."""

from __future__ import annotations

import importlib
import socket

from web import server


class _Transport:  # the one thing the function asks of asyncio's transport
    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock

    def get_extra_info(self, name: str) -> socket.socket | None:
        return self.sock if name == "socket" else None


def test_a_tcp_connection_gets_no_delay() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        with client, accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            server.no_delay(_Transport(accepted))  # type: ignore[arg-type]
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_a_unix_socket_or_none_is_left_alone() -> None:
    a, b = socket.socketpair()
    with a, b:
        server.no_delay(_Transport(a))  # type: ignore[arg-type]
    server.no_delay(_Transport(None))  # type: ignore[arg-type]


def test_the_protocol_named_for_the_workers_is_the_no_delay_one() -> None:
    module, _, name = server.PROTOCOL.partition(":")
    assert getattr(importlib.import_module(module), name) is server.NoDelayH11
