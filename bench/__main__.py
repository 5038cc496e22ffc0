"""``python -m bench`` (``make bench``): every ratio of issue 6 item 9 with its bound, in one run.

``python -m bench web`` runs only the web application's bench (issue 15, ``bench/web.py``; its
own ``--help``); ``python -m bench`` runs it after the others (``--skip-web`` leaves it out).
``python -m bench portal`` runs only the Trust portal's bench (issue 16, ``bench/portal.py``).

Options: ``--write-results`` regenerates bench/RESULTS.md from this run; ``--quick`` runs
small sizes to try the harness (never written as results); ``--naive-full`` always runs the
5,000 Prefect tasks instead of extrapolating from samples; ``--keep`` keeps the work folder.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import machine, measure, report
from bench.measure import Check, Results

DUE = 5_000
SIZES = (10_000, 100_000)
NAIVE_SAMPLES = (100, 200, 400)
NAIVE_FULL_BUDGET_S = 120.0  # run the 5,000 naive tasks for real only if projected under this
WRITE_N, WRITE_BATCH = 2_000, 500
CLI_RUNS = 9
PROFILE_OPEN, PROFILE_DUE = 2_000, 500


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["web"]:
        from bench import web  # lazy: the web bench on its own

        return web.main(argv[1:])
    if argv[:1] == ["portal"]:
        from bench import portal  # lazy: the portal's bench on its own (issue 16)

        return portal.main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--write-results", action="store_true", help="write bench/RESULTS.md from this run")
    ap.add_argument("--quick", action="store_true", help="small sizes, to try the harness (not written)")
    ap.add_argument("--naive-full", action="store_true", help="always run all naive tasks (no extrapolation)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (databases, logs)")
    ap.add_argument("--skip-web", action="store_true", help="leave out the web bench (python -m bench web)")
    args = ap.parse_args(argv)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The bench's own audit key (its databases are its own): never the installation's key file.
    os.environ["PEERWATCH_AUDIT_KEY"] = "bench-1:" + secrets.token_hex(32)

    due, sizes, samples, cli_runs, write_n = DUE, SIZES, NAIVE_SAMPLES, CLI_RUNS, WRITE_N
    if args.quick:
        due, sizes, samples, cli_runs, write_n = 500, (1_000, 10_000), (20, 40, 80), 7, 500
    started = time.perf_counter()
    info = machine.details()
    say("peerwatch bench (issue 6 item 9)" + ("  [--quick: small sizes, figures not comparable]" if args.quick else ""))
    for k, v in info.items():
        say(f"  {k:14} {v}")
    work = Path(tempfile.mkdtemp(prefix="peerwatch-bench-"))
    res = Results()
    res.details.update({"due": due, "sizes": sizes, "quick": args.quick})
    try:
        _run(work, res, due, sizes, samples, cli_runs, write_n, args.naive_full)
    except BaseException:
        say(f"bench stopped; its databases and logs are kept in {work}")
        raise
    if args.keep:
        say(f"work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    avg = machine.load()
    info["load at end"] = " ".join(f"{x:.2f}" for x in avg) if avg else "unknown"
    res.details["total_s"] = time.perf_counter() - started
    say("")
    say(report.text(info, res))
    path = Path(__file__).with_name("RESULTS.md")
    if args.write_results:
        if args.quick:
            say("not writing bench/RESULTS.md from a --quick run")
        else:
            from bench import web  # lazy: its section of RESULTS.md is kept when the others are rewritten

            kept = web.kept_section(path)
            path.write_text(report.markdown(info, res) + ("\n" + kept if kept else ""))
            say(f"wrote {path}")
    web_ok = True
    if not args.skip_web:
        from bench import web  # lazy: the web bench, after the others

        say("")
        web_argv = [*(["--quick"] if args.quick else []), *(["--write-results"] if args.write_results else [])]
        web_ok = web.main([*web_argv, *(["--keep"] if args.keep else [])]) == 0
    return 0 if all(c.ok for c in res.checks) and web_ok else 1


def _run(
    work: Path,
    res: Results,
    due: int,
    sizes: tuple[int, int],
    samples: tuple[int, ...],
    cli_runs: int,
    write_n: int,
    naive_full: bool,
) -> None:
    from flows.server import local_server, quiet_env

    small, large = sizes
    say(f"\n[1] chase sweep: {small:,} vs {large:,} open items of mixed kinds, {due:,} due (SQLite)")
    templates = measure.build_sweep_databases(work, sizes, due, say)
    eng = {}
    for n in sizes:
        r = measure.child("engine", work, measure.fresh(templates[n], work, f"engine-{n}"))
        measure.check_counts(f"engine sweep over {n:,}", r["counts"], due)
        eng[n] = r
        say(
            f"  run_sweep directly, {n:,} open: {r['seconds']:.2f} s (CPU {r['cpu_seconds']:.2f} s), peak RSS {r['peak_rss_mb']:.0f} MB"
        )

    home = work / "prefect-home"
    say("  starting a temporary local Prefect server (once for the whole bench)")
    t = time.perf_counter()
    with local_server(home, work / "prefect-server.log") as url:
        say(f"  Prefect server up in {time.perf_counter() - t:.1f} s")
        env = {**os.environ, **quiet_env(home), "PREFECT_API_URL": url}
        flow = {}
        for n in sizes:
            r = measure.child("flow", work, measure.fresh(templates[n], work, f"flow-{n}"), env=env)
            measure.check_counts(f"chase flow over {n:,}", r["counts"], due)
            flow[n] = r
            say(
                f"  chase flow run, {n:,} open: {r['seconds']:.2f} s (engine inside {r['engine_seconds_inside']:.2f} s), "
                f"peak RSS {r['peak_rss_mb']:.0f} MB"
            )

        say(f"\n[2] the same {due:,} transitions as one Prefect task per item (naive) vs the batched sweep")
        naive: dict[int, dict[str, Any]] = {}
        for n in samples:
            r = measure.child("naive", work, measure.fresh(templates[small], work, f"naive-{n}"), str(n), env=env)
            naive[n] = r
            say(f"  naive flow, {n:,} tasks: {r['seconds']:.2f} s ({r['seconds'] / n * 1000:.1f} ms per task overall)")
        slope, intercept = _fit([(n, naive[n]["seconds"]) for n in samples])
        projected = intercept + slope * due
        marginal = [(a, b, (naive[b]["seconds"] - naive[a]["seconds"]) / (b - a)) for a, b in zip(samples, samples[1:])]
        say(
            "  marginal cost per task: "
            + ", ".join(f"{a}->{b} tasks: {m * 1000:.1f} ms" for a, b, m in marginal)
            + f"; fixed cost {intercept:.2f} s; projected {due:,} tasks: {projected:.1f} s"
        )
        measured_full = None
        if naive_full or projected <= NAIVE_FULL_BUDGET_S:
            r = measure.child("naive", work, measure.fresh(templates[small], work, f"naive-{due}"), str(due), env=env)
            measured_full = r["seconds"]
            say(f"  naive flow, all {due:,} tasks: {measured_full:.2f} s (projection was {projected:.1f} s)")
        else:
            say(
                f"  not running all {due:,} naive tasks (projected {projected:.0f} s > {NAIVE_FULL_BUDGET_S:.0f} s budget): "
                "EXTRAPOLATED linearly from the samples"
            )
    naive_s = measured_full if measured_full is not None else projected

    say(
        f"\n[3] persisted transitions per second: engine vs raw sqlite3 executemany of the same rows ({write_n:,} risks)"
    )
    writes = measure.persisted_transitions(work, write_n, WRITE_BATCH, say)

    say(f"\n[4] peerwatch risk show / risk fire as whole processes (median of {cli_runs})")
    cli = measure.cli_processes(work, cli_runs, say)

    # --- the checks, side by side --------------------------------------------------------
    ratio = flow[large]["seconds"] / flow[small]["seconds"]
    res.checks.append(
        Check(
            "1a",
            f"chase flow run time, {large // 1000}k open / {small // 1000}k open ({due:,} due)",
            ratio,
            "x",
            1.3,
            "<=",
            f"{flow[large]['seconds']:.2f} s / {flow[small]['seconds']:.2f} s; engine only: "
            f"{eng[large]['seconds'] / eng[small]['seconds']:.2f}x",
        )
    )
    res.checks.append(
        Check(
            "1b",
            f"engine time (run_sweep), {large // 1000}k open, {due:,} due",
            eng[large]["seconds"],
            "s",
            5.0,
            "<",
            f"CPU {eng[large]['cpu_seconds']:.2f} s; {eng[large]['seconds'] / due * 1000:.2f} ms per transition; "
            f"in the flow run: {flow[large]['engine_seconds_inside']:.2f} s",
        )
    )
    peak = max(eng[large]["peak_rss_mb"], flow[large]["peak_rss_mb"])
    res.checks.append(
        Check(
            "1c",
            f"peak memory (ru_maxrss) of the sweep process, {large // 1000}k open",
            peak,
            "MB",
            500,
            "<",
            f"run_sweep process {eng[large]['peak_rss_mb']:.0f} MB (imports alone {eng[large]['rss_before_mb']:.0f} MB); "
            f"flow-run process {flow[large]['peak_rss_mb']:.0f} MB",
        )
    )
    res.checks.append(
        Check(
            "2",
            f"naive ({due:,} Prefect tasks) / batched (one chase flow run)",
            naive_s / flow[small]["seconds"],
            "x",
            100,
            ">=",
            f"{naive_s:.1f} s {'measured' if measured_full is not None else 'EXTRAPOLATED from ' + ', '.join(map(str, samples)) + ' tasks'}"
            f" / {flow[small]['seconds']:.2f} s; vs run_sweep directly {naive_s / eng[small]['seconds']:.1f}x",
        )
    )
    res.checks.append(
        Check(
            "3",
            f"raw sqlite3 / engine, persisted transitions per second ({write_n:,})",
            writes["engine_s"] / writes["raw_s"],
            "x",
            10,
            "<=",
            f"engine {write_n / writes['engine_s']:,.0f}/s vs raw {write_n / writes['raw_s']:,.0f}/s; "
            f"counting the deadline rows too: {writes['engine_s'] / writes['raw_all_s']:.1f}x; "
            f"one fire() per item instead of fire_many: {write_n / writes['single_s']:,.0f}/s",
        )
    )
    res.checks.append(
        Check(
            "4a",
            "peerwatch risk show, whole process, median",
            statistics.median(cli["show"]),
            "s",
            0.5,
            "<",
            f"min {min(cli['show']):.3f} s, max {max(cli['show']):.3f} s over {cli['runs']} runs",
        )
    )
    res.checks.append(
        Check(
            "4b",
            "peerwatch risk fire, whole process, median",
            statistics.median(cli["fire"]),
            "s",
            0.5,
            "<",
            f"min {min(cli['fire']):.3f} s, max {max(cli['fire']):.3f} s over {cli['runs']} runs",
        )
    )
    res.details.update(
        {
            "engine": eng,
            "flow": flow,
            "naive": naive,
            "naive_projected_s": projected,
            "naive_slope_s": slope,
            "naive_intercept_s": intercept,
            "naive_marginal": marginal,
            "naive_measured_full_s": measured_full,
            "writes": writes,
            "cli": cli,
        }
    )

    failed = {c.key for c in res.checks if not c.ok}
    if failed & {"1b", "2", "3"}:
        say(f"\n[profile] where a batched sweep's time goes ({PROFILE_DUE} due, cProfile)")
        from bench import fixtures

        built = fixtures.build(work / "profile.db", PROFILE_OPEN, PROFILE_DUE)
        res.details["profile"] = measure.child("profile", work, built.path)
        say(f"  {res.details['profile']['transitions']} transitions profiled")
    if failed & {"4a", "4b"}:
        say("\n[profile] import time of cli.main (python -X importtime)")
        res.details["imports"] = measure.import_profile()
        say("[profile] one `risk show` in-process under cProfile")
        res.details["cli_profile"] = measure.child("cli", work, Path(cli["db"]), str(cli["show_id"]))


def _fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares line t = intercept + slope * n."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


if __name__ == "__main__":
    sys.exit(main())
