"""Scripts the tests run in a fresh interpreter."""

from __future__ import annotations


def cli_without_prefect(argv: list[str]) -> str:
    """Python source that runs ``peerwatch *argv`` in-process, then prints ``NO-PREFECT`` as its
    last line if Prefect was never imported (``PREFECT-LOADED`` otherwise)."""
    return (
        "import sys, cli.app\n"
        f"sys.argv = {['peerwatch', *argv]!r}\n"
        "try:\n"
        "    cli.app.main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "sys.stdout.flush()\n"
        "print('PREFECT-LOADED' if any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules) else 'NO-PREFECT')\n"
    )
