"""The YCSB-style harness runs end to end on a tiny embedded workload.

No timing is asserted: only that every workload ran, without errors, on
ringkv and on the raw rocksdict baseline, and that the JSON is complete.
"""

from __future__ import annotations

import argparse
import json

from ringkv import ycsb


def test_embedded_workloads_write_valid_json(tmp_path):
    out = tmp_path / "results" / "ycsb.json"
    rc = ycsb.main([
        "--data-dir", str(tmp_path / "db"), "--records", "200", "--ops", "150", "--duration", "5",
        "--workloads", "A,B,C,F,feed", "--feeds", "3", "--scan-length", "10", "--value-size", "32",
        "--distribution", "zipfian", "--json", str(out), "--quiet",
    ])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "ycsb"
    assert doc["target"]["kind"] == "embedded"
    assert doc["params"]["records"] == 200
    phases = {(r["system"], r["workload"], tuple(sorted(r["by_op"]))) for r in doc["results"]}
    for system in ("ringkv", "rocksdict"):
        assert (system, "load", ("insert",)) in phases
        assert (system, "A", ("all", "read", "update")) in phases
        assert (system, "C", ("read",)) in phases
        assert (system, "F", ("all", "read", "rmw")) in phases
        assert (system, "feed", ("append",)) in phases
        assert (system, "feed", ("iterate",)) in phases
    for r in doc["results"]:
        assert r["errors"] == 0, r["error_kinds"]
        expected = 200 if r["workload"] == "load" else 150
        assert r["ops"] == expected
        for fig in r["by_op"].values():
            assert fig["ops_per_sec"] > 0
            assert 0 <= fig["p50_ms"] <= fig["p95_ms"] <= fig["p99_ms"] <= fig["max_ms"]
    iterate = [r for r in doc["results"] if "iterate" in r["by_op"]]
    assert all(r["by_op"]["iterate"]["items_per_sec"] > 0 for r in iterate)
    for row in doc["rows"]:
        assert row["baseline"] == "rocksdict"
        assert row["ratio"] is not None and row["ratio"] > 0


def test_uniform_keys_without_baselines(tmp_path):
    out = tmp_path / "u.json"
    rc = ycsb.main(["--records", "50", "--ops", "50", "--workloads", "b", "--distribution", "uniform",
                    "--no-baselines", "--json", str(out), "--quiet"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert {r["system"] for r in doc["results"]} == {"ringkv"}
    assert all(row["ratio"] is None for row in doc["rows"])


def test_bad_workload_is_a_usage_error(capsys):
    assert ycsb.main(["--workloads", "Z", "--quiet"]) == 2
    assert "unknown workload" in capsys.readouterr().err


def test_parser_plugs_into_a_subcommand_without_clobbering_top_level_targets():
    top = argparse.ArgumentParser(prog="ringkv")
    top.add_argument("--connect", default=None)
    sub = top.add_subparsers(dest="command")
    ycsb.build_parser(sub.add_parser("bench"))
    args = top.parse_args(["--connect", "tcp://127.0.0.1:7100", "bench", "--records", "7"])
    assert args.connect == "tcp://127.0.0.1:7100"
    assert args.records == 7
    assert args.func is ycsb.run


def test_zipfian_prefers_few_keys_and_stays_in_range():
    import collections
    import random

    z = ycsb.Zipfian(1000, random.Random(1))
    draws = [z.next() for _ in range(20000)]
    assert all(0 <= d < 1000 for d in draws)
    counts = [c for _, c in collections.Counter(draws).most_common(10)]
    assert sum(counts) > 0.2 * len(draws)  # the ten hottest keys get a large share


def test_ringkv_bench_command_runs_end_to_end(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "ringkv.cli.main", "bench", "--records", "200", "--ops", "300", "--workloads", "A,C", "--no-baselines", "--json", str(out), "--quiet"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    assert results["results"], results
