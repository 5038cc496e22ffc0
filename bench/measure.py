"""The four measurements of issue 6 item 9. Heavy runs happen in child processes (bench.child)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import fixtures
from states.principal import Grant, Principal

ROOT = Path(__file__).resolve().parent.parent
Log = Callable[[str], None]

# The person the bench's manual transitions are fired as (a test double of a signed-in account).
BENCH_NM = Principal(1000, "Bench Network Manager", (Grant("network-manager"),), via="bench", prefer="network-manager")


@dataclass
class Check:
    """One ratio or figure with its bound, shown side by side."""

    key: str
    what: str
    value: float
    unit: str
    bound: float
    op: str  # "<=" | "<" | ">="
    note: str = ""

    @property
    def ok(self) -> bool:
        return {"<=": self.value <= self.bound, "<": self.value < self.bound, ">=": self.value >= self.bound}[self.op]

    def shown(self) -> tuple[str, str]:
        fmt = (lambda v: f"{v:,.2f}") if self.unit in ("x", "s") else (lambda v: f"{v:,.0f}")
        unit = "" if self.unit == "x" else f" {self.unit}"
        suffix = "x" if self.unit == "x" else ""
        return f"{fmt(self.value)}{suffix}{unit}", f"{self.op} {fmt(self.bound)}{suffix}{unit}"


@dataclass
class Results:
    checks: list[Check] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def child(mode: str, work: Path, db: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; its output goes to a log, its result back as JSON."""
    out = work / f"{mode}-{db.stem}-{'-'.join(Path(e).stem if os.sep in e else e for e in extra) or 'all'}.json"
    log = work / "children.log"
    with log.open("ab") as f:
        f.write(f"\n=== {mode} {db.name} {' '.join(extra)}\n".encode())
        f.flush()
        proc = subprocess.run(
            [sys.executable, "-m", "bench.child", mode, str(out), str(db), fixtures.AS_OF.isoformat(), *extra],
            cwd=ROOT,
            env=env or os.environ.copy(),
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"bench child {mode} on {db.name} failed (exit {proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


# 1 and 2 ------------------------------------------------------------------------------------


def build_sweep_databases(work: Path, sizes: tuple[int, ...], due: int, say: Log) -> dict[int, Path]:
    out = {}
    for n in sizes:
        t = time.perf_counter()
        built = fixtures.build(work / f"template-{n}.db", n, due)
        kinds = ", ".join(f"{k} {v:,}" for k, v in built.by_kind.items())
        say(f"  fixture: {n:,} open items ({kinds}), {due:,} due: built in {time.perf_counter() - t:.1f} s")
        out[n] = built.path
    return out


def fresh(template: Path, work: Path, tag: str) -> Path:
    return fixtures.copy(template, work / f"run-{tag}.db")


def expected_counts(due: int) -> dict[str, int]:
    counts = fixtures._counts(due, fixtures.DUE_MIX)
    return {"no_response": counts[0], "still_no_response": counts[1]}


def check_counts(label: str, got: dict[str, int], due: int) -> None:
    want = expected_counts(due)
    if got != want:
        raise RuntimeError(f"{label}: the sweep did {got}, expected {want}")


# 3 ------------------------------------------------------------------------------------------


def engine_writes(db_path: str, as_of: str, batched: bool, batch: int, warm: int) -> dict[str, Any]:
    """(In a child process.) ``send_formal_notification`` on every identified risk of the copy:
    ``fire_many`` per batch (as the sweep writes), or one ``fire`` per item; a commit per batch.
    The first ``warm`` risks go first, untimed (first-use costs: statement compiling, caches)."""
    from datetime import date

    from sqlmodel import Session

    import states.engine.letters as outbox_module
    from models import get_engine
    from states import engine
    from states.clock import FixedClock

    db = get_engine(f"sqlite:///{db_path}")
    clock = FixedClock(date.fromisoformat(as_of))
    with sqlite3.connect(db_path) as con:
        ids = [r[0] for r in con.execute("SELECT id FROM risk WHERE state = 'identified' ORDER BY id")]
    freezing = [0.0]
    real_freeze = outbox_module.freeze

    def timed_freeze(*args: Any, **kwargs: Any) -> Any:  # instrumentation: the letters' share of the engine's time
        t = time.perf_counter()
        try:
            return real_freeze(*args, **kwargs)
        finally:
            freezing[0] += time.perf_counter() - t

    def write(part: list[int]) -> None:
        for start in range(0, len(part), batch):
            with Session(db, expire_on_commit=False) as s:
                chunk = part[start : start + batch]
                if batched:
                    engine.fire_many(
                        s,
                        [
                            engine.Request("risk", i, "send_formal_notification", note="formal letter sent")
                            for i in chunk
                        ],
                        principal=BENCH_NM,
                        clock=clock,
                    )
                else:
                    for item_id in chunk:
                        engine.fire(
                            s,
                            "risk",
                            item_id,
                            "send_formal_notification",
                            principal=BENCH_NM,
                            clock=clock,
                            note="formal letter sent",
                        )
                s.commit()

    write(ids[:warm])
    outbox_module.freeze = timed_freeze  # type: ignore[assignment]
    c0, t0 = time.process_time(), time.perf_counter()
    write(ids[warm:])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    outbox_module.freeze = real_freeze  # type: ignore[assignment]
    db.dispose()
    return {"seconds": seconds, "cpu_seconds": cpu, "freeze_s": freezing[0], "n": len(ids) - warm}


def raw_writes(db_path: str, engine_db: str, with_deadlines: bool, batch: int, warm: int) -> dict[str, Any]:
    """(In a child process.) The rows the engine wrote to ``engine_db`` (risk UPDATE, audit and
    outbox INSERTs; with ``with_deadlines`` the deadline close and insert too) written again
    with plain sqlite3 ``executemany`` on a copy of the same starting database; the first
    ``warm`` risks' rows untimed, as the engine's were."""
    from models import AuditEvent, Deadline, OutboxMessage, Risk

    names = {
        "risk": Risk.__tablename__,
        "audit": AuditEvent.__tablename__,
        "outbox": OutboxMessage.__tablename__,
        "deadline": Deadline.__tablename__,
    }
    src = sqlite3.connect(engine_db)
    risk_rows = src.execute(
        f"SELECT state, version, updated_at, formal_notification_on, id FROM {names['risk']} ORDER BY id"
    ).fetchall()
    tables = {}
    for table in (names["audit"], names["outbox"], names["deadline"]):
        cols = [f'"{r[1]}"' for r in src.execute(f"PRAGMA table_info({table})") if r[1] != "id"]
        tables[table] = (cols, src.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY id").fetchall())
    closed = src.execute(f"SELECT id FROM {names['deadline']} WHERE status != 'open' ORDER BY id").fetchall()
    src.close()
    n = len(risk_rows)
    new_deadlines = tables[names["deadline"]][1][n:]  # the starting database held one deadline per risk
    audit_cols, audit = tables[names["audit"]]
    out_cols, outbox = tables[names["outbox"]]
    dl_cols, _ = tables[names["deadline"]]
    if len(audit) != n:
        raise RuntimeError(f"expected {n} audit events, found {len(audit)}")
    con = sqlite3.connect(db_path, isolation_level="DEFERRED")
    for pragma in ("journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON", "synchronous=NORMAL"):
        con.execute(f"PRAGMA {pragma}")

    def write(first: int, last: int) -> None:
        for start in range(first, last, batch):
            stop = min(last, start + batch)
            con.executemany(
                f"UPDATE {names['risk']} SET state = ?, version = ?, updated_at = ?, formal_notification_on = ? WHERE id = ?",
                risk_rows[start:stop],
            )
            con.executemany(
                f"INSERT INTO {names['audit']} ({', '.join(audit_cols)}) VALUES ({', '.join('?' * len(audit_cols))})",
                audit[start:stop],
            )
            con.executemany(
                f"INSERT INTO {names['outbox']} ({', '.join(out_cols)}) VALUES ({', '.join('?' * len(out_cols))})",
                outbox[start * len(outbox) // n : stop * len(outbox) // n],
            )
            if with_deadlines:
                con.executemany(f"UPDATE {names['deadline']} SET status = 'closed' WHERE id = ?", closed[start:stop])
                con.executemany(
                    f"INSERT INTO {names['deadline']} ({', '.join(dl_cols)}) VALUES ({', '.join('?' * len(dl_cols))})",
                    new_deadlines[start:stop],
                )
            con.commit()

    write(0, warm)
    c0, t0 = time.process_time(), time.perf_counter()
    write(warm, n)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    con.close()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "outbox_rows": len(outbox) * (n - warm) // n,
        "audit_rows": n - warm,
        "deadline_rows_inserted": len(new_deadlines) * (n - warm) // n,
        "deadline_rows_closed": len(closed) * (n - warm) // n,
    }


def persisted_transitions(work: Path, n: int, batch: int, say: Log) -> dict[str, Any]:
    """Engine: send_formal_notification on n risks, committed every ``batch``; then raw sqlite3 of
    the same rows. Each writer runs in a fresh child process on its own copy of one database."""
    template = work / "template-identified.db"
    warm = batch  # one batch first, untimed, in every writer: steady-state throughput, not first-use costs
    fixtures.identified_risks(template, warm + n)
    single = child("writes", work, fixtures.copy(template, work / "writes-single.db"), "single", str(batch), str(warm))
    eng_db = fixtures.copy(template, work / "writes-batched.db")
    batched = child("writes", work, eng_db, "batched", str(batch), str(warm))

    def median_of(with_deadlines: bool, runs: int = 3) -> tuple[float, float, dict[str, Any]]:
        # raw writes take milliseconds: the median of three runs on fresh copies steadies them
        spent = [
            child(
                "raw",
                work,
                fixtures.copy(template, work / f"raw-{with_deadlines}-{i}.db"),
                str(eng_db),
                "deadlines" if with_deadlines else "strict",
                str(batch),
                str(warm),
            )
            for i in range(runs)
        ]
        return (
            statistics.median(s["seconds"] for s in spent),
            statistics.median(s["cpu_seconds"] for s in spent),
            spent[0],
        )

    strict_s, strict_cpu, rows = median_of(False)
    full_s, full_cpu, _ = median_of(True)
    engine_s, single_s = batched["seconds"], single["seconds"]
    say(
        f"  engine {n:,} transitions in {engine_s:.2f} s batched ({single_s:.2f} s one fire() each); raw sqlite3 {strict_s * 1000:.0f} ms "
        f"(state+audit+outbox), {full_s * 1000:.0f} ms (with the deadline rows too)"
    )
    return {
        "n": n,
        "batch": batch,
        "engine_s": engine_s,
        "engine_cpu_s": batched["cpu_seconds"],
        "single_s": single_s,
        "single_cpu_s": single["cpu_seconds"],
        "freeze_s": batched["freeze_s"],
        "raw_s": strict_s,
        "raw_cpu_s": strict_cpu,
        "raw_all_s": full_s,
        "raw_all_cpu_s": full_cpu,
        "outbox_rows": rows["outbox_rows"],
        "audit_rows": rows["audit_rows"],
        "deadline_rows_inserted": rows["deadline_rows_inserted"],
        "deadline_rows_closed": rows["deadline_rows_closed"],
    }


# 4 ------------------------------------------------------------------------------------------


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    spent = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return spent


def cli_processes(work: Path, runs: int, say: Log) -> dict[str, Any]:
    """``peerwatch risk show`` and ``risk fire`` as whole processes on a small SQLite database."""
    from sqlmodel import Session

    from cli.context import os_login
    from cli.seed import seed_reference
    from models import Risk, init_db
    from models.accounts import RoleGrant, User
    from states import engine
    from states.clock import FixedClock
    from states.services import accounts

    path = work / "cli.db"
    db = init_db(f"sqlite:///{path}")
    clock = FixedClock(fixtures.AS_OF)
    with Session(db) as s:  # a training database (its fire runs --as-of), this OS user its Network Manager
        accounts.mark_training(s)
        user = User(name="Bench Network Manager", email="bench.nm@example.nhs.uk", os_login=os_login())
        s.add(user)
        s.flush()
        assert user.id is not None
        s.add(RoleGrant(user_id=user.id, role="network-manager", scope="installation", source="bench"))
        s.commit()
    visit = fixtures.AS_OF.replace(day=fixtures.AS_OF.day - 2)
    with Session(db) as s:
        services = list(seed_reference(s).values())
        ids = []
        for i in range(runs + 2):
            out = engine.create(
                s,
                "risk",
                Risk(
                    service_id=services[i % len(services)],
                    level="IR",
                    title=f"CLI bench risk {i}",
                    identified_on=visit,
                    visit_date=visit,
                    state="new",
                ),
                "raise",
                principal=BENCH_NM,
                clock=clock,
            )
            ids.append(out.row.id)
        s.commit()
    db.dispose()
    exe = str(Path(sys.executable).with_name("peerwatch"))
    env = {**os.environ, "PEERWATCH_DATABASE_URL": f"sqlite:///{path}"}
    env.pop("PEERWATCH_AS_OF", None)
    show = [exe, "risk", "show", str(ids[0])]
    fire = [
        exe,
        "--as-of",
        fixtures.AS_OF.isoformat(),
        "risk",
        "fire",
        "{id}",
        "send_formal_notification",
        "--role",
        "network-manager",
    ]
    _timed(show, env, work)  # warm the OS cache and the bytecode
    shows = [_timed(show, env, work) for _ in range(runs)]
    _timed([a.replace("{id}", str(ids[-1])) for a in fire], env, work)
    fires = [_timed([a.replace("{id}", str(ids[i])) for a in fire], env, work) for i in range(runs)]
    bare = [_timed([sys.executable, "-c", "pass"], env, work) for _ in range(3)]
    imp = [_timed([sys.executable, "-c", "import cli.main"], env, work) for _ in range(3)]
    result = {
        "db": str(path),
        "show_id": ids[0],
        "show": shows,
        "fire": fires,
        "python_startup_s": statistics.median(bare),
        "import_cli_main_s": statistics.median(imp),
        "runs": runs,
    }
    say(
        f"  risk show median {statistics.median(shows):.3f} s, risk fire median {statistics.median(fires):.3f} s "
        f"(python startup {result['python_startup_s']:.3f} s, import cli.main {result['import_cli_main_s']:.3f} s)"
    )
    return result


IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def import_profile(top: int = 14) -> dict[str, Any]:
    """``python -X importtime -c 'import cli.main'``: self time grouped by top-level package, and the heaviest modules."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import cli.main"], cwd=ROOT, capture_output=True, text=True
    )
    rows = [(int(m[1]), int(m[2]), len(m[3]) // 2, m[4]) for m in map(IMPORT_LINE.match, proc.stderr.splitlines()) if m]
    total = sum(r[0] for r in rows)
    by_pkg: dict[str, int] = {}
    for self_us, _cum, _depth, name in rows:
        pkg = name.split(".")[0]
        by_pkg[pkg] = by_pkg.get(pkg, 0) + self_us
    # Which first-party module pulls each package in first. importtime prints a module when its
    # import ends (children before parents): rebuild the tree, then walk it in start order.
    first_party = ("cli", "states", "models", "notifications", "flows")
    pending: dict[int, list[dict[str, Any]]] = {}
    for _self, _cum, depth, name in rows:
        pending.setdefault(depth, []).append({"name": name, "children": pending.pop(depth + 1, [])})
    pulled_by: dict[str, str] = {}

    def walk(node: dict[str, Any], owner: str) -> None:
        pkg = node["name"].split(".")[0]
        if pkg in first_party:
            owner = node["name"]
        elif owner and pkg not in pulled_by:
            pulled_by[pkg] = owner
        for kid in node["children"]:
            walk(kid, owner)

    for top_node in pending.get(0, []):
        walk(top_node, "")
    heaviest = sorted(((cum, name) for _s, cum, d, name in rows if name.split(".")[0] in first_party), reverse=True)
    return {
        "total_s": total / 1e6,
        "by_package": [
            {"package": p, "s": us / 1e6, "pulled_in_by": pulled_by.get(p, "")}
            for p, us in sorted(by_pkg.items(), key=lambda kv: -kv[1])[:top]
        ],
        "first_party_cumulative": [{"module": n, "s": us / 1e6} for us, n in heaviest[:top]],
    }
