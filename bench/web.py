"""``python -m bench web``: the web application under load (issue 15, "Performance").

A database of 100,000 open items (``bench/web_data.py``), 20 Network Managers signed in
through ``states.services.signin`` (each its own server-side session, its cookie), and
``peerwatch web --workers 2`` started as a real process with its production settings (uvicorn,
no TestClient). An asyncio load generator (httpx, one client and keep-alive connection per
signed-in person) measures, per endpoint, a warm-up, then ``--requests`` requests per client back
to back (20 always in flight: the server saturated, for the throughputs), then ``--paced``
requests per client each after a think time (exponential, mean ``--think`` seconds: 20 people at
work, for the latencies):

- ``GET /healthz``: the trivial endpoint (no database): the limit this machine allows;
- ``GET /``: "My work" of the signed-in Network Manager;
- ``GET /items/risk/{id}``: a risk of the client's own network, a different one each request.

The bounds: p95 under 100 ms for "My work" and the item page (paced), and the item page's
throughput at least 0.3 of the trivial endpoint's (back to back), in the same run on the same
server. Back to back, latency is only queueing (20 clients / throughput, Little's law), so
the p95 bound is read on the paced requests; the back-to-back p95s are reported beside them.
On SQLite, then on PostgreSQL (run under ``.ci/with-postgres``, which starts a throwaway
cluster; the child reports back as JSON). A lone client's keep-alive ``/healthz`` is timed
first: over 30 ms means the server's sockets lack TCP_NODELAY.

Options: ``--quick`` (5,000 items, fewer requests: a smoke run, e.g. for CI; never written
as results), ``--items``, ``--clients``, ``--requests``, ``--paced``, ``--think``,
``--workers``, ``--database sqlite|postgresql|both``, ``--write-results`` (this run's section
of bench/RESULTS.md), ``--keep``, ``--reuse URL`` (the load again on a kept database).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import machine
from bench.measure import Check

ROOT = Path(__file__).resolve().parent.parent
ITEMS, QUICK_ITEMS = 100_000, 5_000
CLIENTS, REQUESTS, QUICK_REQUESTS, WARMUP = 20, 50, 10, 5
PACED, QUICK_PACED, THINK_S = 20, 5, 1.0
WORKERS = 2
P95_BOUND_MS, RATIO_BOUND = 100.0, 0.3
NAGLE_MS = 30.0  # a lone keep-alive /healthz slower than this: TCP_NODELAY is off on the server
COOKIE = "peerwatch_session"
MARK_START = "<!-- web bench: python -m bench web --write-results writes this section -->"
MARK_END = "<!-- end of the web bench -->"


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench web", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_ITEMS:,} items, fewer requests (not written)")
    ap.add_argument("--items", type=int, default=None)
    ap.add_argument("--clients", type=int, default=CLIENTS)
    ap.add_argument("--requests", type=int, default=None, help="timed requests per client and endpoint")
    ap.add_argument("--paced", type=int, default=None, help="requests per client and endpoint with a think time")
    ap.add_argument("--think", type=float, default=THINK_S, help="mean think time (s) of the paced requests")
    ap.add_argument("--workers", type=int, default=WORKERS)
    ap.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--write-results", action="store_true", help="write this run's section of bench/RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (database, server log)")
    ap.add_argument("--reuse", metavar="URL", help="run the load again on a database an earlier run built (--keep)")
    ap.add_argument("--json-out", help=argparse.SUPPRESS)  # the PostgreSQL child reports here
    args = ap.parse_args(argv)
    items = args.items or (QUICK_ITEMS if args.quick else ITEMS)
    requests = args.requests or (QUICK_REQUESTS if args.quick else REQUESTS)
    paced = args.paced or (QUICK_PACED if args.quick else PACED)
    more = {"paced": paced, "think": args.think}
    os.environ.setdefault("PEERWATCH_AUDIT_KEY", "bench-1:" + secrets.token_hex(32))
    info = machine.details()
    runs: dict[str, dict[str, Any]] = {}
    if args.json_out:  # the child under .ci/with-postgres: one run on its database, reported as JSON
        url = os.environ["PEERWATCH_TEST_DATABASE"]
        runs["postgresql"] = run(url, items, args.clients, requests, args.workers, None, args.keep, **more)
        Path(args.json_out).write_text(json.dumps(runs["postgresql"], default=str))
        return 0
    say(f"peerwatch web bench (issue 15){'  [--quick: small sizes, not comparable]' if args.quick else ''}")
    for k, v in info.items():
        say(f"  {k:14} {v}")
    if args.reuse:  # a database an earlier --keep run built: the load again, no build
        kind = args.reuse.split(":", 1)[0].split("+", 1)[0]
        work = Path(tempfile.mkdtemp(prefix="peerwatch-webbench-"))
        runs[kind] = run(args.reuse, items, args.clients, requests, args.workers, work, True, reuse=True, **more)
    elif args.database in ("sqlite", "both"):
        work = Path(tempfile.mkdtemp(prefix="peerwatch-webbench-"))
        runs["sqlite"] = run(
            f"sqlite:///{work / 'web.db'}", items, args.clients, requests, args.workers, work, args.keep, **more
        )
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.database in ("postgresql", "both") and not args.reuse:
        runs["postgresql"] = on_postgres(items, args.clients, requests, args.workers, args.quick, args.keep, more)
    avg = machine.load()
    info["load at end"] = " ".join(f"{x:.2f}" for x in avg) if avg else "unknown"
    checks = {db: checks_of(r) for db, r in runs.items() if "error" not in r}
    say("")
    say(text(info, runs, checks))
    if args.write_results:
        if args.quick:
            say("not writing bench/RESULTS.md from a --quick run")
        else:
            path = Path(__file__).with_name("RESULTS.md")
            # a database not measured this time keeps the figures of the run that measured it
            kept = {db: r for db, r in earlier_runs(path).items() if db not in runs or "error" in runs[db]}
            kept = {db: r for db, r in kept.items() if "error" not in r}
            every = {**runs, **kept}
            checks = {db: checks_of(r) for db, r in every.items() if "error" not in r}
            write_section(path, markdown(info, every, checks), every)
            say(
                "wrote the web section of bench/RESULTS.md"
                + (f" (kept the earlier {', '.join(kept)} run)" if kept else "")
            )
    ok = all(c.ok for cs in checks.values() for c in cs) and all("error" not in r for r in runs.values())
    return 0 if ok else 1


# ------------------------------------------------------------------ one run on one database


def run(
    url: str,
    items: int,
    clients: int,
    requests: int,
    workers: int,
    work: Path | None,
    keep: bool,
    reuse: bool = False,
    paced: int = PACED,
    think: float = THINK_S,
) -> dict[str, Any]:
    from bench import web_data  # lazy: the models and engine only once a run starts

    work = work or Path(tempfile.mkdtemp(prefix="peerwatch-webbench-"))
    kind = url.split(":", 1)[0].split("+", 1)[0]
    if reuse:
        data = web_data.describe(url)
        items, clients = data.open_items, len(data.accounts)
        say(f"\n[{kind}] the database built before: {data.by_kind}, {clients} accounts")
    else:
        say(f"\n[{kind}] building {items:,} open items and {clients} accounts")
        data = web_data.build(url, items, accounts=clients, say=lambda s: say("  " + s))
        say(f"  built in {data.seconds:.0f} s: {data.rows} over {data.services} services; as of {data.as_of}")
    tokens = sign_in(url, data.accounts)
    say(f"  {len(tokens)} sessions signed in through states.services.signin")
    port = free_port()
    log = work / f"server-{kind}.log"
    server, command = start_server(url, port, workers, log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_up(base, server, log)
        say(f"  server: {' '.join(command)} (pid {server.pid})")
        risks = [data.risks_by_network[a.network_id] for a in data.accounts]
        result = asyncio.run(load(base, tokens, risks, requests, paced, think))
        result["server_exit"] = server.poll()  # None: still serving at the end, as it should be
        if result["server_exit"] is not None:
            say(f"  the server exited during the run ({result['server_exit']}); its log: {log}")
    finally:
        stop_server(server)
    probe = result["keepalive"]
    say(f"  one client alone, keep-alive /healthz: p50 {probe['p50_ms']:.1f} ms, p95 {probe['p95_ms']:.1f} ms")
    if probe["p50_ms"] > NAGLE_MS:
        say(f"  WARNING: over {NAGLE_MS:.0f} ms for a trivial request on a kept-alive connection: the server's sockets")
        say("  lack TCP_NODELAY (Nagle x delayed ACK; uvicorn --workers N, Kludex/uvicorn#3149)")
    for label, part in (("back to back", "endpoints"), (f"paced, think {think:g} s", "paced")):
        say(f"  {label}:")
        for name, r in result[part].items():
            say(
                f"    {name:10} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:6.1f}  p95 {r['p95_ms']:6.1f}  "
                f"p99 {r['p99_ms']:6.1f} ms  non-200 {r['errors']} {r['codes']}"
            )
    if keep:
        say(f"  work folder kept: {work}")
    return {
        "database": kind,
        "measured": machine.details()["date"] + f", load {' '.join(f'{x:.1f}' for x in (machine.load() or ()))}",
        "commit": commit(),
        "items": items,
        "by_kind": data.by_kind,
        "rows": data.rows,
        "services": data.services,
        "networks": len(data.networks),
        "build_s": data.seconds,
        "clients": clients,
        "requests": requests,
        "paced_requests": paced,
        "workers": workers,
        "command": " ".join(command),
        "server_log": str(log),
        **result,
    }


def sign_in(url: str, accounts: list[Any]) -> list[str]:
    from models import init_db  # lazy: as above
    from states.clock import SystemClock  # lazy: as above
    from states.services import signin  # lazy: as above

    db = init_db(url)
    tokens = [signin.sign_in(db, a.email, a.password, "127.0.0.1", SystemClock()).token for a in accounts]
    db.dispose()
    return tokens


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, port: int, workers: int, log: Path) -> tuple[subprocess.Popen[bytes], list[str]]:
    """``peerwatch web`` with its production defaults, in a process group of its own."""
    exe = Path(sys.executable).with_name("peerwatch")
    command = [str(exe), "web", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    # the checkout first on the path: the bench measures this working tree, whatever the venv installed
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PEERWATCH_DATABASE_URL": url, "PYTHONPATH": path}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return proc, command


def wait_up(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"peerwatch web exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                time.sleep(1.0)  # the other workers finish starting
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"peerwatch web did not answer /healthz in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this bench started: uvicorn and its workers
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ------------------------------------------------------------------ the load generator


async def load(
    base: str, tokens: list[str], risks: list[list[int]], requests: int, paced: int, think: float
) -> dict[str, Any]:
    """Each endpoint in turn: a warm-up, then ``requests`` requests per client back to back (the
    server saturated: its throughput), then ``paced`` requests per client each after a think time
    (exponential, mean ``think`` seconds: 20 people working, not 20 requests always in flight)."""
    import httpx

    rng = random.Random(15)
    paths = {
        "trivial": lambda c, i: "/healthz",
        "my work": lambda c, i: "/",
        "item page": lambda c, i: f"/items/risk/{rng.choice(risks[c])}",
    }
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    clients = [
        httpx.AsyncClient(base_url=base, cookies={COOKIE: t}, timeout=60, follow_redirects=False, limits=limits)
        for t in tokens
    ]
    out: dict[str, Any] = {"endpoints": {}, "paced": {}, "think_s": think}
    try:
        out["keepalive"] = await keepalive_probe(clients[0])
        for name, path in paths.items():
            await _phase(clients, path, WARMUP)
            out["endpoints"][name] = await _timed(clients, path, requests)
        for name, path in paths.items():
            out["paced"][name] = await _timed(clients, path, paced, think, rng)
        out["retried"] = RETRIED[0]
    finally:
        for c in clients:
            await c.aclose()
    return out


async def _timed(
    clients: list[Any], path: Any, n: int, think: float = 0.0, rng: random.Random | None = None
) -> dict[str, Any]:
    cpu = time.process_time()
    started = time.perf_counter()
    samples = await _phase(clients, path, n, think, rng)
    return stats(samples, time.perf_counter() - started, time.process_time() - cpu)


async def keepalive_probe(client: Any, n: int = 40) -> dict[str, float]:
    """One client alone, ``/healthz`` on its keep-alive connection: a few milliseconds, unless the
    server's sockets lost TCP_NODELAY (then Nagle's algorithm waits on the client's delayed ACK,
    ~40 ms a request on Linux: uvicorn's ``--workers N`` does this, Kludex/uvicorn#3149)."""
    samples = await _phase([client], lambda c, i: "/healthz", n)
    ms = sorted(s[0] * 1000 for s in samples)
    return {"p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95)}


RETRIED = [0]  # requests sent again after the server closed an idle connection under them


async def _phase(
    clients: list[Any], path: Any, n: int, think: float = 0.0, rng: random.Random | None = None
) -> list[tuple[float, Any, int]]:
    import httpx

    async def one(c: int) -> list[tuple[float, Any, int]]:
        got = []
        for i in range(n):
            if think and rng is not None:
                await asyncio.sleep(rng.expovariate(1 / think))
            t = time.perf_counter()
            url = path(c, i)
            try:
                try:
                    r = await clients[c].get(url)
                except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                    # the server closed the idle keep-alive connection as this request went out (its
                    # keep-alive timeout): sent again on a new connection, as a browser does; timed from the first try
                    RETRIED[0] += 1
                    r = await clients[c].get(url)
                body = await r.aread()
            except httpx.TransportError as exc:  # no answer at all: counted as a failed request, not hidden
                got.append((time.perf_counter() - t, type(exc).__name__, 0))
                await asyncio.sleep(0.2)
                continue
            got.append((time.perf_counter() - t, r.status_code, len(body)))
        return got

    per = await asyncio.gather(*(one(c) for c in range(len(clients))))
    return [s for got in per for s in got]


def pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def stats(samples: list[tuple[float, Any, int]], wall: float, cpu: float) -> dict[str, Any]:
    ms = sorted(s[0] * 1000 for s in samples)
    codes: dict[str, int] = {}
    for _, code, _n in samples:
        codes[str(code)] = codes.get(str(code), 0) + 1
    return {
        "n": len(samples),
        "wall_s": wall,
        "rps": len(samples) / wall,
        "p50_ms": pct(ms, 50),
        "p95_ms": pct(ms, 95),
        "p99_ms": pct(ms, 99),
        "max_ms": ms[-1],
        "mean_ms": sum(ms) / len(ms),
        "errors": sum(n for code, n in codes.items() if code != "200"),
        "codes": codes,
        "bytes_mean": sum(s[2] for s in samples) / len(samples),
        "client_cpu_s": cpu,
    }


# ------------------------------------------------------------------ PostgreSQL


def on_postgres(
    items: int, clients: int, requests: int, workers: int, quick: bool, keep: bool, more: dict[str, Any]
) -> dict[str, Any]:
    """The same run in a child under ``.ci/with-postgres`` (a throwaway cluster; fsync off)."""
    wrapper = ROOT / ".ci" / "with-postgres"
    if not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")) and os.geteuid() != 0:
        say("\n[postgresql] not run: PostgreSQL is not installed (.ci/with-postgres installs it as root)")
        return {"error": "PostgreSQL not installed"}
    with tempfile.TemporaryDirectory(prefix="peerwatch-webbench-pg-") as tmp:
        out = Path(tmp) / "pg.json"
        cmd = [str(wrapper), sys.executable, "-m", "bench", "web", "--database", "postgresql", "--json-out", str(out)]
        cmd += [
            "--items",
            str(items),
            "--clients",
            str(clients),
            "--requests",
            str(requests),
            "--workers",
            str(workers),
        ]
        cmd += ["--paced", str(more["paced"]), "--think", str(more["think"])]
        cmd += ["--quick"] if quick else []
        cmd += ["--keep"] if keep else []
        code = subprocess.call(cmd, cwd=ROOT)
        if code != 0 or not out.exists():
            say(f"\n[postgresql] the run under .ci/with-postgres failed (exit {code})")
            return {"error": f"exit {code}"}
        return dict(json.loads(out.read_text()))


# ------------------------------------------------------------------ checks and reports


def checks_of(r: dict[str, Any]) -> list[Check]:
    """The bounds: p95 of the paced requests (20 people at work); the ratio of the back-to-back
    throughputs (the server saturated). The back-to-back p95s are shown beside them."""
    e, q = r["endpoints"], r["paced"]
    n, think = r["clients"], r["think_s"]
    ratio = e["item page"]["rps"] / e["trivial"]["rps"]

    def note(key: str) -> str:
        return (
            f"p50 {q[key]['p50_ms']:.1f} ms, p99 {q[key]['p99_ms']:.1f} ms; back to back: p95 {e[key]['p95_ms']:.0f} ms "
            f"(the trivial endpoint's {e['trivial']['p95_ms']:.0f} ms), {e[key]['rps']:.1f} req/s"
        )

    return [
        Check("W1", f'"My work" (GET /), p95, {n} clients, think {think:g} s', q["my work"]["p95_ms"], "ms",
              P95_BOUND_MS, "<", note("my work")),
        Check("W2", f"item page (GET /items/risk/ID), p95, {n} clients, think {think:g} s", q["item page"]["p95_ms"],
              "ms", P95_BOUND_MS, "<", note("item page")),
        Check("W3", f"item page / trivial endpoint, req/s back to back, {n} clients", ratio, "x", RATIO_BOUND, ">=",
              f"{e['item page']['rps']:.1f} / {e['trivial']['rps']:.1f} req/s"),
    ]  # fmt: skip


def text(info: dict[str, str], runs: dict[str, dict[str, Any]], checks: dict[str, list[Check]]) -> str:
    out = ["WEB RESULTS (wall-clock; one run per database)"]
    for db, r in runs.items():
        if "error" in r:
            out.append(f"  {db}: not measured ({r['error']})")
            continue
        for c in checks[db]:
            value, bound = c.shown()
            out.append(f"  {db:10} {c.key} {c.what:52} {value:>10} {bound:>12}  {'PASS' if c.ok else 'FAIL'}")
    out.append("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()))
    return "\n".join(out)


def markdown(info: dict[str, str], runs: dict[str, dict[str, Any]], checks: dict[str, list[Check]]) -> str:
    from bench.web_report import section  # lazy: only when writing results

    return section(info, runs, checks, commit())


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        return head.strip() + (" (with uncommitted changes in the working tree)" if dirty.strip() else "")
    except OSError:
        return "unknown"


DATA = "<!-- web bench data: "


def earlier_runs(path: Path) -> dict[str, Any]:
    """The runs the section of RESULTS.md was written from (kept in it as a JSON comment)."""
    old = path.read_text() if path.exists() else ""
    if DATA not in old:
        return {}
    return dict(json.loads(old.split(DATA, 1)[1].split(" -->", 1)[0]))


def write_section(path: Path, section: str, runs: dict[str, Any] | None = None) -> None:
    """Put ``section`` between the web bench's markers in RESULTS.md (appended the first time)."""
    old = path.read_text() if path.exists() else ""
    data = f"{DATA}{json.dumps(runs, default=str)} -->\n" if runs else ""
    block = f"{MARK_START}\n{section.rstrip()}\n{data}{MARK_END}\n"
    if MARK_START in old and MARK_END in old:
        head, rest = old.split(MARK_START, 1)
        new = head + block + rest.split(MARK_END, 1)[1].lstrip("\n")
    else:
        new = old.rstrip("\n") + "\n\n" + block
    path.write_text(new)


def kept_section(path: Path) -> str:
    """The web bench's section of RESULTS.md as it stands (for ``python -m bench`` to keep)."""
    old = path.read_text() if path.exists() else ""
    if MARK_START in old and MARK_END in old:
        return MARK_START + old.split(MARK_START, 1)[1].split(MARK_END, 1)[0] + MARK_END + "\n"
    return ""


if __name__ == "__main__":
    sys.exit(main())
