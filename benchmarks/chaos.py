"""ringkv under faults: seeded simulations and real processes, judged by one checker.

Each *scenario* is one fault kind (see ``ringkv.chaos.KINDS``). Simulated
scenarios run a 5-node cluster of the real node code on virtual time, once
per seed; process scenarios run 5 ``ringkv serve`` processes on loopback (or
in network namespaces where the machine allows) with ``kill -9``,
``SIGSTOP``/``SIGCONT``, partitions, slow links and message loss. A workload
of kv and feed clients records every operation; after healing, hints and
anti-entropy, the checker reads every replica (see ``ringkv.chaos``).

Prints a table and writes one JSON file per scenario (rows per run, the
aggregate, failure reports, the environment) to ``--json DIR`` (default
``benchmarks/results/chaos-TIMESTAMP/``). Exit status 1 if any run failed.

    python benchmarks/chaos.py                                  # defaults below
    python benchmarks/chaos.py --sim all --seeds 50 --sim-seconds 60 --process none
    python benchmarks/chaos.py --sim none --process crash,partition --seconds 120 --seed 3
    python benchmarks/chaos.py --sim mixed --seeds 1 --first-seed 17   # replay one seed
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rich.console import Console
from rich.table import Table

import ringkv
from ringkv.chaos import (
    KINDS,
    PROCESS_KINDS,
    SIM_KINDS,
    Workload,
    process_scenario,
    run_sim,
)
from ringkv.faults import NetnsNetwork, ProcessCluster, RulesNetwork, probe_netns

COLUMNS = ["attempted", "acknowledged", "failed", "unknown", "lost", "resurrected", "duplicated"]


def _kinds(arg: str, every: tuple[str, ...]) -> list[str]:
    if arg == "none":
        return []
    if arg == "all":
        return list(every)
    kinds = [k.strip() for k in arg.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise SystemExit(f"unknown fault kind(s) {', '.join(bad)}; known: {', '.join(KINDS)}")
    return kinds


def aggregate(scenario: str, network: str, rows: list[dict]) -> dict:
    out = {"scenario": scenario, "network": network, "runs": len(rows)}
    for c in COLUMNS + ["faults"]:
        out[c] = sum(r[c] for r in rows)
    out["converged"] = all(r["converged"] for r in rows)
    out["max_siblings"] = max((r["max_siblings"] for r in rows), default=0)
    out["wall_seconds"] = round(sum(r["wall_seconds"] for r in rows), 1)
    out["failed_runs"] = [r["seed"] for r in rows if not r["ok"]]
    return out


def environment() -> dict:
    return {"ringkv": ringkv.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def run_sim_kind(kind: str, seeds: list[int], seconds: float, console: Console) -> tuple[list[dict], list[str]]:
    rows, reports = [], []
    for seed in seeds:
        root = tempfile.mkdtemp(prefix=f"ringkv-chaos-{kind}-")
        try:
            out = run_sim(root, seed, kind, seconds)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        rows.append(out.row())
        if not out.ok:
            reports.append(out.report())
            console.print(out.report(), style="red", markup=False, highlight=False)
    return rows, reports


async def _process_kind(root: str, kind: str, seed: int, seconds: float, netns_ok: dict, use_netns: bool):
    rules = RulesNetwork(os.path.join(root, "rules.json"), seed)
    netns = None
    if use_netns and netns_ok["partition"][0] and {"split", "isolate"} & set(KINDS[kind]):
        netns = NetnsNetwork(5, slow_ok=netns_ok["slow"][0]).setup()
    cluster = ProcessCluster(root, 5, rules=rules, netns=netns)
    try:
        await cluster.start()
        out = await process_scenario(cluster, kind, seed, seconds, Workload(tag=f"{kind}-"), interval=(0.5, 2.0))
    finally:
        await cluster.aclose()
    needs_net = {"split", "isolate", "bridge", "slow", "loss"} & set(KINDS[kind])
    return out, ("netns+injector" if netns else "injector" if needs_net else "loopback")


def run_process_kind(kind: str, seed: int, seconds: float, netns_ok: dict, use_netns: bool, keep: bool, console: Console):
    root = tempfile.mkdtemp(prefix=f"ringkv-chaos-proc-{kind}-")
    try:
        out, network = asyncio.run(_process_kind(root, kind, seed, seconds, netns_ok, use_netns))
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    if not out.ok:
        console.print(out.report(), style="red", markup=False, highlight=False)
        console.print(f"node logs: {root}" if keep else "(run with --keep to keep the node logs)")
    return out, network


def table(results: list[dict], title: str) -> Table:
    t = Table(title=title)
    for name in ["scenario", "network", "runs", *COLUMNS, "converged", "max siblings", "faults", "wall s"]:
        t.add_column(name, justify="left" if name in ("scenario", "network") else "right")
    for r in results:
        t.add_row(
            r["scenario"], r["network"], str(r["runs"]), *(str(r[c]) for c in COLUMNS),
            "yes" if r["converged"] else "[red]no[/red]", str(r["max_siblings"]), str(r["faults"]), f"{r['wall_seconds']:g}",
        )
    return t


def markdown(results: list[dict]) -> str:
    head = ["scenario", "network", "runs", "ops attempted", "acknowledged", "failed", "unknown", "lost", "resurrected", "converged", "max siblings"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        lines.append("| " + " | ".join(str(x) for x in [
            r["scenario"], r["network"], r["runs"], r["attempted"], r["acknowledged"], r["failed"], r["unknown"],
            r["lost"] + r["duplicated"], r["resurrected"], "yes" if r["converged"] else "no", r["max_siblings"]]) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--sim", default="all", help=f"simulated fault kinds: all ({','.join(SIM_KINDS)}), none, or a list")
    p.add_argument("--seeds", type=int, default=int(os.environ.get("RINGKV_CHAOS_SEEDS", "5")), help="seeds per simulated kind (default 5, env RINGKV_CHAOS_SEEDS)")
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--sim-seconds", type=float, default=float(os.environ.get("RINGKV_CHAOS_SECONDS", "30")), help="simulated seconds of faults per run (env RINGKV_CHAOS_SECONDS)")
    p.add_argument("--process", default="all", help=f"real-process fault kinds: all ({','.join(PROCESS_KINDS)}), none, or a list")
    p.add_argument("--seed", type=int, default=1, help="seed of the process schedules")
    p.add_argument("--seconds", type=float, default=40.0, help="seconds of faults per process scenario")
    p.add_argument("--netns", choices=("auto", "off"), default="auto", help="partition real processes with network namespaces when possible")
    p.add_argument("--json", metavar="DIR", help="where to write the JSON files")
    p.add_argument("--keep", action="store_true", help="keep process scenarios' data directories and logs")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = p.parse_args(argv)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # tasks of crashed simulated nodes
    console = Console(width=None if sys.stdout.isatty() else 170)
    sim_kinds, proc_kinds = _kinds(args.sim, SIM_KINDS), _kinds(args.process, PROCESS_KINDS)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    outdir = args.json or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", time.strftime("chaos-%Y%m%d-%H%M%S"))
    os.makedirs(outdir, exist_ok=True)
    env = environment()
    results, failed = [], False

    def save(name: str, agg: dict, rows: list, reports: list, extra: dict) -> None:
        with open(os.path.join(outdir, f"{name.replace('/', '-')}.json"), "w") as f:
            json.dump({"aggregate": agg, "runs": rows, "failures": reports, "environment": env, **extra}, f, indent=2)

    for kind in sim_kinds:
        console.print(f"sim/{kind}: seeds {seeds[0]}..{seeds[-1]}, {args.sim_seconds:g} simulated s each", highlight=False)
        rows, reports = run_sim_kind(kind, seeds, args.sim_seconds, console)
        agg = aggregate(f"sim/{kind}", "simulated", rows)
        failed |= bool(reports)
        results.append(agg)
        save(f"sim-{kind}", agg, rows, reports, {"seconds": args.sim_seconds, "replay": "RINGKV_SIM_SEEDS=<seed> pytest tests/chaos/test_sim_chaos.py -k " + kind})
    netns_ok = {"partition": (False, "not probed"), "slow": (False, "not probed")}
    if proc_kinds and args.netns == "auto":
        netns_ok = probe_netns()
        console.print(f"network namespaces: partitions {'usable' if netns_ok['partition'][0] else 'skipped: ' + netns_ok['partition'][1]}; "
                      f"slow links {'usable' if netns_ok['slow'][0] else 'skipped: ' + netns_ok['slow'][1]} (the injector covers what they cannot)", highlight=False)
    for kind in proc_kinds:
        console.print(f"process/{kind}: seed {args.seed}, {args.seconds:g} s of faults", highlight=False)
        out, network = run_process_kind(kind, args.seed, args.seconds, netns_ok, args.netns == "auto", args.keep, console)
        row = out.row()
        agg = aggregate(f"process/{kind}", network, [row])
        failed |= not out.ok
        results.append(agg)
        save(f"process-{kind}", agg, [row], [] if out.ok else [out.report()],
             {"seconds": args.seconds, "nemesis": out.nemesis, "notes": out.notes, "netns_probe": netns_ok, "replay": out.replay})
    console.print(table(results, "ringkv under faults"))
    if args.markdown:
        print(markdown(results), flush=True)
    console.print(f"JSON: {outdir}", highlight=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
