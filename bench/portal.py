"""``python -m bench portal``: "What is asked of us" under load (issue 16, "Performance").

One Trust with 200 services and 2,000 open items, another Trust with as many (left out of the
page), built by ``bench/portal_data.py``; 20 Trust users signed in through
``states.services.signin``; ``peerwatch web --workers 2`` as a real process; the load generator of
``bench/web.py`` (httpx, one client and keep-alive connection per person): a warm-up, then
``--requests`` requests per client back to back (the throughput), then ``--paced`` requests per
client each after an exponential think time (mean ``--think`` s: 20 people at work, the latency).

- ``GET /healthz``: the trivial endpoint, in the same run on the same server;
- ``GET /portal``: the Trust's whole page.

The bound: p95 of the paced ``/portal`` under 100 ms; reported beside it, p50/p99, the back-to-back
figures and the ratio of ``/portal``'s throughput to the trivial endpoint's. SQLite only; the
figures are printed, never written to bench/RESULTS.md.

Options: ``--quick`` (fewer requests: a smoke run), ``--items``, ``--services``, ``--clients``,
``--requests``, ``--paced``, ``--think``, ``--workers``, ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import machine, web
from bench.measure import Check

ITEMS, SERVICES, CLIENTS = 2_000, 200, 20
REQUESTS, QUICK_REQUESTS, PACED, QUICK_PACED = 30, 5, 20, 5
P95_BOUND_MS = 100.0


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench portal", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    ap.add_argument("--items", type=int, default=ITEMS)
    ap.add_argument("--services", type=int, default=SERVICES)
    ap.add_argument("--clients", type=int, default=CLIENTS)
    ap.add_argument("--requests", type=int, default=None, help="timed requests per client, back to back")
    ap.add_argument("--paced", type=int, default=None, help="requests per client with a think time")
    ap.add_argument("--think", type=float, default=web.THINK_S, help="mean think time (s) of the paced requests")
    ap.add_argument("--workers", type=int, default=web.WORKERS)
    ap.add_argument("--keep", action="store_true", help="keep the work folder (database, server log)")
    args = ap.parse_args(argv)
    requests = args.requests or (QUICK_REQUESTS if args.quick else REQUESTS)
    paced = args.paced or (QUICK_PACED if args.quick else PACED)
    os.environ.setdefault("PEERWATCH_AUDIT_KEY", "bench-1:" + secrets.token_hex(32))
    info = machine.details()
    say(f"peerwatch portal bench (issue 16){'  [--quick: fewer requests]' if args.quick else ''}")
    for k, v in info.items():
        say(f"  {k:14} {v}")
    work = Path(tempfile.mkdtemp(prefix="peerwatch-portalbench-"))
    try:
        r = run(f"sqlite:///{work / 'portal.db'}", args, requests, paced, work)
    finally:
        if args.keep:
            say(f"  work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    checks = checks_of(r)
    say("")
    say("PORTAL RESULTS (wall-clock; SQLite)")
    for c in checks:
        value, bound = c.shown()
        say(f"  {c.key} {c.what:60} {value:>10} {bound:>12}  {'PASS' if c.ok else 'FAIL'}  ({c.note})")
    return 0 if all(c.ok for c in checks) and r["server_exit"] is None else 1


def run(url: str, args: Any, requests: int, paced: int, work: Path) -> dict[str, Any]:
    from bench import portal_data  # lazy: the models and engine only once a run starts

    say(f"\n[sqlite] building {args.items:,} open items over {args.services} services of one Trust")
    data = portal_data.build(
        url, args.items, services=args.services, accounts=args.clients, say=lambda s: say("  " + s)
    )
    say(f"  built in {data.seconds:.0f} s: {data.rows}; as of {data.as_of}")
    tokens = web.sign_in(url, data.accounts)
    say(f"  {len(tokens)} Trust users signed in through states.services.signin")
    log = work / "server.log"
    server, command = web.start_server(url, web.free_port(), args.workers, log)
    try:
        base = command_base(command)
        web.wait_up(base, server, log)
        say(f"  server: {' '.join(command)} (pid {server.pid})")
        result = asyncio.run(load(base, tokens, requests, paced, args.think))
        result["server_exit"] = server.poll()
    finally:
        web.stop_server(server)
    for label, part in (("back to back", "endpoints"), (f"paced, think {args.think:g} s", "paced")):
        say(f"  {label}:")
        for name, r in result[part].items():
            say(
                f"    {name:8} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:6.1f}  p95 {r['p95_ms']:6.1f}  "
                f"p99 {r['p99_ms']:6.1f} ms  non-200 {r['errors']} {r['codes']}  {r['bytes_mean'] / 1024:.0f} KiB"
            )
    return {"clients": len(tokens), "items": data.open_items, "services": data.services, **result}


def command_base(command: list[str]) -> str:
    port = command[command.index("--port") + 1]
    return f"http://127.0.0.1:{port}"


async def load(base: str, tokens: list[str], requests: int, paced: int, think: float) -> dict[str, Any]:
    """The trivial endpoint and the portal page in turn: a warm-up, back to back, then paced."""
    import httpx

    rng = random.Random(16)
    paths = {"trivial": lambda c, i: "/healthz", "portal": lambda c, i: "/portal"}
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    clients = [
        httpx.AsyncClient(base_url=base, cookies={web.COOKIE: t}, timeout=60, follow_redirects=False, limits=limits)
        for t in tokens
    ]
    out: dict[str, Any] = {"endpoints": {}, "paced": {}, "think_s": think}
    try:
        out["keepalive"] = await web.keepalive_probe(clients[0])
        for name, path in paths.items():
            await web._phase(clients, path, web.WARMUP)
            out["endpoints"][name] = await web._timed(clients, path, requests)
        for name, path in paths.items():
            out["paced"][name] = await web._timed(clients, path, paced, think, rng)
    finally:
        for c in clients:
            await c.aclose()
    return out


def checks_of(r: dict[str, Any]) -> list[Check]:
    e, q = r["endpoints"], r["paced"]
    ratio = e["portal"]["rps"] / e["trivial"]["rps"]
    return [
        Check("P1", f"What is asked of us (GET /portal), p95, {r['clients']} clients, think {r['think_s']:g} s",
              q["portal"]["p95_ms"], "ms", P95_BOUND_MS, "<",
              f"p50 {q['portal']['p50_ms']:.1f} ms, p99 {q['portal']['p99_ms']:.1f} ms; back to back: p50 "
              f"{e['portal']['p50_ms']:.0f} ms, p95 {e['portal']['p95_ms']:.0f} ms; {r['items']:,} items, "
              f"{r['services']} services"),
        Check("P2", f"GET /portal / trivial endpoint, req/s back to back, {r['clients']} clients", ratio, "x", 0.0, ">=",
              f"{e['portal']['rps']:.1f} / {e['trivial']['rps']:.1f} req/s (reported, no bound)"),
    ]  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
