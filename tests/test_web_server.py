"""``peerwatch web`` turns Nagle's algorithm off on every connection (web/server.py): with
several workers uvicorn leaves it on, and each kept-alive request then waited for a delayed ACK.
Checked on a real TCP connection; and the protocol class is what a worker process imports."""

from __future__ import annotations

import importlib
import socket
import warnings

import pytest

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


@pytest.mark.parametrize(("setting", "threads"), [(None, 4), ("2", 2)])
def test_a_worker_runs_pages_in_the_threads_the_setting_gives(
    db_url: str, monkeypatch: pytest.MonkeyPatch, setting: str | None, threads: int
) -> None:
    """Pages are CPU work under one interpreter lock: anyio's 40 threads fought over it (the
    web bench: fewer pages a second), so a worker runs PEERWATCH_WEB_THREADS at once (default 4)."""
    import anyio.to_thread

    from web.app import create_app  # lazy: the application only for these tests

    with warnings.catch_warnings():  # starlette asks for httpx2 on import; httpx 0.28 works the same here
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    if setting is None:
        monkeypatch.delenv("PEERWATCH_WEB_THREADS", raising=False)
    else:
        monkeypatch.setenv("PEERWATCH_WEB_THREADS", setting)
    with TestClient(create_app(db_url)) as client:
        assert client.get("/healthz").text == "ok"
        assert client.portal is not None
        assert client.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().total_tokens) == threads


def test_a_thread_count_that_is_no_number_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from web.deps import Settings  # lazy: the application only for these tests

    monkeypatch.setenv("PEERWATCH_WEB_THREADS", "0")
    with pytest.raises(ValueError, match="PEERWATCH_WEB_THREADS"):
        Settings.from_env()
