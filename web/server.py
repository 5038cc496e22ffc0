"""How ``peerwatch web`` serves: uvicorn's HTTP/1.1 protocol with Nagle's algorithm off on every
connection, whatever the number of workers.

With ``--workers`` above 1, uvicorn binds the listening socket itself and asyncio then leaves
TCP_NODELAY unset on the connections it accepts (uvicorn issue #3149): every response after the
first on a kept-alive connection waited about 40 ms for the client's delayed ACK (measured by
the web bench: 46 ms a request with 2 workers, 1.5 ms with 1). ``NoDelayH11`` sets it itself.
It is a module-level class so that each worker process can import it by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

PROTOCOL = "web.server:NoDelayH11"  # what ``peerwatch web`` passes as uvicorn's ``http``


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on the transport's TCP socket (nothing for a Unix socket)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # the peer went away already: uvicorn's own handling follows
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayH11(H11Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        no_delay(transport)
        super().connection_made(transport)  # type: ignore[arg-type]
