"""One measurement in a fresh process, so its peak RSS and warm-up are its own.

``python -m bench.child MODE OUT.json DB AS_OF [N]``; the result is written to OUT.json.
Modes: ``engine`` (``run_sweep`` directly), ``flow`` (the ``chase`` flow run against the
Prefect server named by ``PREFECT_API_URL``), ``naive`` (one Prefect task per due item)
``profile`` (``run_sweep`` under cProfile, with SQL statements counted by verb), ``cli``
(one command under cProfile), ``writes`` (the engine's persisted transitions) and ``raw``
(the same rows with plain sqlite3).
"""

from __future__ import annotations

import json
import os
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any


def _rss_mb() -> float:
    """Current resident set size, from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _summary_counts(actions: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for a in actions:
        counts[a["action"]] = counts.get(a["action"], 0) + 1
    return counts


def engine_sweep(db_path: str, as_of: str) -> dict[str, Any]:
    from models import init_db
    from states.clock import clock_from
    from states.engine.sweep import run_sweep

    db = init_db(f"sqlite:///{db_path}")
    clock = clock_from(as_of)
    rss_before = _rss_mb()
    c0, t0 = time.process_time(), time.perf_counter()
    summary = run_sweep(db, clock)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "counts": _summary_counts(summary.actions),
        "skipped": len(summary.skipped),
        "rss_before_mb": rss_before,
        "peak_rss_mb": _peak_mb(),
    }


def flow_sweep(db_path: str, as_of: str) -> dict[str, Any]:
    os.environ["PEERWATCH_DATABASE_URL"] = f"sqlite:///{db_path}"
    import flows.chase as chase_module

    inner: list[float] = []
    real = chase_module.run_sweep

    def timed(*args: Any, **kwargs: Any) -> Any:  # instrumentation only: the flow's own engine time
        t = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            inner.append(time.perf_counter() - t)

    chase_module.run_sweep = timed  # type: ignore[assignment]
    rss_before = _rss_mb()
    c0, t0 = time.process_time(), time.perf_counter()
    result = chase_module.chase(as_of=as_of)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    _drain()
    return {
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "engine_seconds_inside": sum(inner),
        "counts": result["counts"],
        "skipped": result["skipped"],
        "rss_before_mb": rss_before,
        "peak_rss_mb": _peak_mb(),
    }


def naive(db_path: str, as_of: str, n: int) -> dict[str, Any]:
    """The naive way: a flow that calls one @task per due item, each in its own transaction."""
    os.environ["PEERWATCH_DATABASE_URL"] = f"sqlite:///{db_path}"
    from prefect import flow, task
    from sqlmodel import Session, col, select

    from models import Deadline, get_engine, init_db
    from states import engine
    from states.clock import clock_from, local_date
    from states.engine.system import SYSTEM_PRINCIPAL
    from states.machines.spec import get_spec

    init_db()
    today = local_date(clock_from(as_of).now())

    @task(name="fire-one-item")
    def fire_one(deadline_id: int, as_of: str) -> str:
        with Session(get_engine(), expire_on_commit=False) as s:
            d = s.get(Deadline, deadline_id)
            assert d is not None
            rule = get_spec(d.kind).deadline_rules[d.name]
            assert rule.on_due is not None
            out = engine.fire(
                s,
                d.kind,
                d.item_id,
                rule.on_due,
                principal=SYSTEM_PRINCIPAL,
                clock=clock_from(as_of),
                note=f"{d.name} due {d.due_on.isoformat()} passed",
            )
            s.commit()
            return str(out.row.state)

    @flow(name="naive-chase")
    def naive_chase(ids: list[int], as_of: str) -> list[str]:
        return [fire_one(i, as_of) for i in ids]

    with Session(get_engine()) as s:
        ids = list(
            s.exec(
                select(Deadline.id)
                .where(Deadline.status == "open", col(Deadline.due_on) < today)
                .order_by(Deadline.due_on, Deadline.id)
                .limit(n)
            )
        )  # type: ignore[arg-type]
    t0 = time.perf_counter()
    states = naive_chase([i for i in ids if i is not None], as_of)
    elapsed = time.perf_counter() - t0
    _drain()
    counts: dict[str, int] = {}
    for st in states:
        counts[st] = counts.get(st, 0) + 1
    return {"seconds": elapsed, "items": len(states), "to_states": counts, "peak_rss_mb": _peak_mb()}


def profile(db_path: str, as_of: str) -> dict[str, Any]:
    """Where a batched sweep's time goes: functions by inclusive time, SQL statements by verb."""
    import cProfile
    import pstats

    from sqlalchemy import event

    from models import init_db
    from states.clock import clock_from
    from states.engine.sweep import run_sweep

    db = init_db(f"sqlite:///{db_path}")
    verbs: dict[str, int] = {}
    tables: dict[str, int] = {}

    target_re = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"?(\w+)', re.IGNORECASE)

    def count(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        words = statement.split(None, 1)
        verb = words[0].upper() if words else "?"
        verbs[verb] = verbs.get(verb, 0) + 1
        found = target_re.search(statement)
        if found:
            key = f"{verb} {found.group(1)}"
            tables[key] = tables.get(key, 0) + 1

    event.listen(db, "before_cursor_execute", count)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    summary = run_sweep(db, clock_from(as_of))
    prof.disable()
    elapsed = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = max(ct for (_cc, _nc, _tt, ct, _callers) in raw.values())
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def name(func: tuple[str, int, str]) -> str:
        path, line, fn = func
        if path.startswith(root):
            path = os.path.relpath(path, root)
        elif "site-packages" in path:
            path = path.split("site-packages/")[1]
        return f"{path}:{line}({fn})"

    ours = sorted(
        (
            (ct, nc, func)
            for func, (_cc, nc, _tt, ct, _c) in raw.items()
            if func[0].startswith(root) and "/bench/" not in func[0] and ".j2" not in func[0]
        ),
        reverse=True,
    )
    lib = sorted(((tt, nc, func) for func, (_cc, nc, tt, _ct, _c) in raw.items()), reverse=True)
    wanted = {  # library entry points worth naming, by inclusive time
        ("sqlalchemy/orm/session.py", "_flush"): "Session._flush (unit of work: INSERT/UPDATE)",
        ("sqlalchemy/orm/session.py", "_autoflush"): "  of which: autoflush before a query",
        ("sqlmodel/_compat.py", "sqlmodel_table_construct"): "SQLModel row construction (validation)",
        ("jinja2/environment.py", "render"): "Jinja2 template rendering",
        ("sqlalchemy/engine/default.py", "do_execute"): "sqlite3 cursor.execute (the database itself)",
        ("sqlalchemy/orm/session.py", "begin_nested"): "savepoint per item (begin_nested)",
    }
    named = []
    for func, (_cc, nc, _tt, ct, _c) in raw.items():
        for (suffix, fn), label in wanted.items():
            if func[0].endswith(suffix) and func[2] == fn:
                named.append({"what": label, "calls": nc, "seconds": ct, "share": ct / total})
    transitions = sum(1 for a in summary.actions)
    return {
        "seconds_profiled": elapsed,
        "transitions": transitions,
        "peak_rss_mb": _peak_mb(),
        "sql_per_transition": {k: v / max(transitions, 1) for k, v in sorted(verbs.items(), key=lambda kv: -kv[1])},
        "sql_by_table_per_transition": {
            k: v / max(transitions, 1) for k, v in sorted(tables.items(), key=lambda kv: -kv[1])[:12]
        },
        "ours": [{"function": name(f), "calls": nc, "share": ct / total} for ct, nc, f in ours[:16]],
        "library_self": [{"function": name(f), "calls": nc, "share": tt / total} for tt, nc, f in lib[:10]],
        "named": sorted(named, key=lambda d: -d["share"]),
    }


def cli_profile(db_path: str, as_of: str, item_id: str) -> dict[str, Any]:
    """One ``peerwatch risk show ID`` in-process: time to import cli.main, then the command under cProfile."""
    import contextlib
    import cProfile
    import io
    import pstats

    os.environ["PEERWATCH_DATABASE_URL"] = f"sqlite:///{db_path}"
    t0 = time.perf_counter()
    import cli.main

    imported = time.perf_counter() - t0
    prof = cProfile.Profile()
    t1 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        prof.runcall(cli.main.main, ["risk", "show", item_id])
    command = time.perf_counter() - t1
    raw: dict[Any, Any] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = max(ct for (_cc, _nc, _tt, ct, _c) in raw.values())
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    keep = (
        "alembic/command.py",
        "alembic/runtime/",
        "alembic/script/",
        "sqlalchemy/sql/schema.py",
        "sqlalchemy/engine/reflection.py",
        "rich/console.py",
        "typer/main.py",
    )
    rows = []
    for (path, line, fn), (_cc, nc, _tt, ct, _c) in raw.items():
        if path.startswith(root) or any(k in path for k in keep):
            short = os.path.relpath(path, root) if path.startswith(root) else path.split("site-packages/")[-1]
            rows.append({"function": f"{short}:{line}({fn})", "calls": nc, "s": ct, "share": ct / total})
    rows.sort(key=lambda r: -r["s"])
    return {"import_s": imported, "command_s_profiled": command, "top": rows[:18]}


def _drain() -> None:
    """Send buffered Prefect logs and events before exiting, so nothing errors at exit."""
    try:
        from flows.server import _drain_prefect_workers

        _drain_prefect_workers()
    except Exception:
        pass


def main(argv: list[str]) -> None:
    mode, out, db_path, as_of = argv[:4]
    if mode == "engine":
        result = engine_sweep(db_path, as_of)
    elif mode == "flow":
        result = flow_sweep(db_path, as_of)
    elif mode == "naive":
        result = naive(db_path, as_of, int(argv[4]))
    elif mode == "profile":
        result = profile(db_path, as_of)
    elif mode == "cli":
        result = cli_profile(db_path, as_of, argv[4])
    elif mode == "writes":
        from bench.measure import engine_writes

        result = engine_writes(db_path, as_of, argv[4] == "batched", int(argv[5]), int(argv[6]))
    elif mode == "raw":
        from bench.measure import raw_writes

        result = raw_writes(db_path, argv[4], argv[5] == "deadlines", int(argv[6]), int(argv[7]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    Path(out).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
