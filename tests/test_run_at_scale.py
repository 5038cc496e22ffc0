"""The Prefect server is never reachable unprotected (issue 14, docs/scale.md).

docs/run-at-scale.sh refuses to start a server on anything but loopback without an API password
(before anything is started or written), and makes one by default; a real ``prefect server
start`` given ``PREFECT_SERVER_API_AUTH_STRING`` answers an unauthenticated API call with 401
and an authenticated one as usual.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.databases import skip_on_postgres

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "run-at-scale.sh"


def _script(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The script run from a copy of docs/ in ``tmp_path``: were it not to refuse, it would find
    no virtual environment there and stop, never starting anything of this checkout's."""
    (tmp_path / "docs").mkdir(exist_ok=True)
    copy = tmp_path / "docs" / SCRIPT.name
    shutil.copy(SCRIPT, copy)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PEERWATCH_"))}
    return subprocess.run(
        ["bash", str(copy), *args],
        env={**base, "PEERWATCH_VENV_BIN": str(tmp_path / "no-venv"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10"])
def test_the_script_refuses_a_server_beyond_loopback_without_an_api_password(tmp_path: Path, host: str) -> None:
    proc = _script(tmp_path, "start", PREFECT_HOST=host, PREFECT_API_AUTH="off")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"refusing to start the Prefect server on {host} without an API password" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]  # nothing started, nothing written


def test_the_script_protects_the_server_by_default_and_warns_beyond_loopback(tmp_path: Path) -> None:
    made = _script(tmp_path, "check", PREFECT_HOST="0.0.0.0")
    assert made.returncode == 0 and "its API behind a password" in made.stdout
    assert "crosses the network in clear unless a TLS proxy is in front" in made.stdout
    given = _script(tmp_path, "check", PREFECT_HOST="0.0.0.0", PREFECT_SERVER_API_AUTH_STRING="ops:long-secret")
    assert given.returncode == 0 and "its API behind a password" in given.stdout
    local = _script(tmp_path, "check", PREFECT_API_AUTH="off")
    assert local.returncode == 0 and "127.0.0.1:4200 WITHOUT an API password (loopback only)" in local.stdout


@skip_on_postgres("Prefect's own server and its password: no peerwatch database is used")
def test_a_prefect_server_with_an_auth_string_refuses_calls_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from flows.server import local_server

    monkeypatch.setenv("PREFECT_SERVER_API_AUTH_STRING", "peerwatch:a-long-random-secret")
    with local_server(tmp_path / "home", tmp_path / "server.log") as api:
        anonymous = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=30)
        wrong = httpx.post(f"{api}/flow_runs/filter", json={}, auth=("peerwatch", "guess"), timeout=30)
        signed_in = httpx.post(
            f"{api}/flow_runs/filter", json={}, auth=("peerwatch", "a-long-random-secret"), timeout=30
        )
    assert (anonymous.status_code, wrong.status_code, signed_in.status_code) == (401, 401, 200)
