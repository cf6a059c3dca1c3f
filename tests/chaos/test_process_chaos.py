"""Five real ``ringkv serve`` processes under faults, judged by the same checker as the simulator.

* On loopback, with the transport-level injector (``RINGKV_FAULTS``): every
  fault once, in order — ``kill -9`` and restart, ``SIGSTOP``/``SIGCONT``,
  majority/minority partition, a bridge node, one node isolated, a slow
  node, message loss.
* In Linux network namespaces, where this machine allows them (probed once;
  skipped with the reason otherwise): partitions made by moving links
  between bridges, so TCP connections really stall.

Every process is SIGKILLed at the end, pass or fail. ``RINGKV_CHAOS_SECONDS``
lengthens the fault phase; ``python benchmarks/chaos.py`` runs each fault
kind on its own, longer.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from ringkv.chaos import Workload, process_scenario
from ringkv.faults import NetnsNetwork, ProcessCluster, RulesNetwork, probe_netns

SECONDS = min(float(os.environ.get("RINGKV_CHAOS_SECONDS", "22")), 3600)
PACE = (0.4, 1.2)  # seconds between nemesis steps


def _run(cluster: ProcessCluster, kind: str, seed: int, tag: str):
    async def main():
        try:
            await cluster.start()
            return await process_scenario(cluster, kind, seed, SECONDS, Workload(tag=tag), interval=PACE, settle_timeout=25.0)
        finally:
            await cluster.aclose()

    try:
        return asyncio.run(main())
    finally:
        cluster.close()  # also when the loop itself was interrupted


@pytest.mark.timeout(SECONDS + 90)
def test_every_fault_on_real_processes(tmp_path):
    rules = RulesNetwork(str(tmp_path / "rules.json"), seed=1)
    out = _run(ProcessCluster(str(tmp_path), 5, rules=rules), "tour", 1, "t")
    done = " ".join(action for _, action in out.nemesis)
    for fault in ("kill -9", "restart", "SIGSTOP", "SIGCONT", "split", "bridge", "isolate", "slow", "loss", "heal"):
        assert fault in done, f"{fault} never happened: {out.nemesis}"
    assert out.verdict.acknowledged > 100, out.report()
    assert out.ok, out.report()


@pytest.fixture(scope="module")
def netns_ok():
    probe = probe_netns()
    print(f"network namespaces: partitions {probe['partition']}, slow links {probe['slow']}")
    return probe


@pytest.mark.timeout(SECONDS + 90)
def test_namespace_partitions_on_real_processes(tmp_path, netns_ok):
    ok, reason = netns_ok["partition"]
    if not ok:
        pytest.skip(f"network namespaces unusable here ({reason}); partitions run through the injector instead")
    netns = NetnsNetwork(5, slow_ok=netns_ok["slow"][0])
    netns.setup()
    rules = RulesNetwork(str(tmp_path / "rules.json"), seed=2)
    out = _run(ProcessCluster(str(tmp_path), 5, rules=rules, netns=netns), "partition", 2, "n")
    assert any(a.startswith("split") for _, a in out.nemesis), out.nemesis
    assert out.verdict.acknowledged > 100, out.report()
    assert out.ok, out.report()
