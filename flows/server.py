"""A local Prefect server for the lifetime of a command (the demo), so runs stay browsable
and the temporary server's shutdown noise never reaches the user."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quiet_env(home: Path) -> dict[str, str]:
    return {
        "PREFECT_HOME": str(home),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL": "WARNING",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL": "WARNING",
    }


def _drain_prefect_workers() -> None:
    """Send buffered logs and events before the server goes, so nothing errors at exit."""
    if "prefect" not in sys.modules:
        return
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    try:
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=10)
    except ImportError:
        pass


@contextmanager
def local_server(home: Path, log: Path, port: int | None = None, keep: bool = False) -> Iterator[str]:
    """Start ``prefect server start`` on loopback; yield its API URL; stop it afterwards."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    env = {**os.environ, **quiet_env(home)}
    prefect = Path(sys.executable).with_name("prefect")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the Prefect server stopped while starting; see {log}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server did not start within 90 s; see {log}")
            time.sleep(0.5)
        yield url
    finally:
        _drain_prefect_workers()
        if not keep:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
