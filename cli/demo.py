"""``ringkv demo``: a guided tour of a 3-node cluster of local ``ringkv serve`` processes.

It starts three nodes on free loopback ports in a temporary directory, writes
at a quorum, kills one node with SIGKILL, shows the cluster detecting it and
still serving reads and writes, restarts it, shows it catching up with what
it missed, and appends to one feed from every node. Every process and the directory are removed at the end, also
on Ctrl-C or an error, unless ``--keep`` leaves the cluster running.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.table import Table
from rich.text import Text

import ringkv
from ringkv.cli import exits
from ringkv.cli.cluster import status_table
from ringkv.cli.localcluster import LocalCluster, poll
from ringkv.cli.output import context_text, stdout_console
from ringkv.result import Result

__all__ = ["register", "run"]

KS = "demo"
#: Seconds allowed for each thing the demo waits for (a start, a detection, a catch-up).
WAIT = 15.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a guided tour of a local 3-node cluster", description=__doc__.splitlines()[0].strip("`: ") + ".")
    p.add_argument("--keep", action="store_true", help="leave the cluster running at the end and print how to use and stop it")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    run(stdout_console(), keep=args.keep)
    return exits.OK


def _esc(text: str) -> str:
    return text.replace("[", "\\[")


def _step(console: Console, title: str, note: str) -> None:
    console.print()
    console.rule(f"[bold]{title}")
    console.print(f"[dim]{_esc(note)}[/dim]")


def _show(console: Console, label: str, res: Optional[Result]) -> None:
    if res is None:
        console.print(f"  {_esc(label)} -> [dim]not found[/dim]")
        return
    shown = ", ".join(repr(v) for v in res.values)
    kind = f"[yellow]{len(res.values)} siblings[/yellow]" if res.siblings else "value"
    console.print(f"  {_esc(label)} -> {kind} [green]{_esc(shown)}[/green]  [dim]context {context_text(res.context)}[/dim]")


def run(console: Console, keep: bool = False) -> None:
    """The tour; every node and the directory are gone afterwards unless ``keep``."""
    root = Path(tempfile.mkdtemp(prefix="ringkv-demo-"))
    cluster = LocalCluster(root)
    client: Optional[ringkv.Client] = None
    kept = False
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM cleans up like Ctrl-C
    try:
        console.print(f"[bold]ringkv {ringkv.__version__} demo[/bold] - a 3-node cluster in {_esc(str(root))}")
        _step(console, "1. start three nodes", "`ringkv serve` x3 on free ports; n2 and n3 join through n1.")
        with console.status("starting n1, n2, n3 ..."):
            cluster.start(WAIT)
            for node in cluster.nodes:
                console.print(f"  {node.name}: node [bold]{node.node_id}[/bold] at {node.addr}")
            client = ringkv.connect(cluster.addrs, timeout=5.0)
            poll(lambda: _all(client, cluster, "alive"), WAIT, "every node to see the others alive")
        console.print(status_table(client.status(cluster.addrs[0])))
        _act_quorum(console, client, cluster)
        missed = _act_failure(console, client, cluster)
        _act_recovery(console, client, cluster, missed)
        _act_feeds(console, cluster)
        if keep:
            _print_keep(console, cluster, root)
            kept = True
        else:
            console.print()
            console.print("[bold green]done[/bold green] - stopping the nodes and removing the temporary directory.")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if client is not None:
            client.close()
        if not kept:
            cluster.stop()
            shutil.rmtree(root, ignore_errors=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _all(client: ringkv.Client, cluster: LocalCluster, liveness: str) -> bool:
    """Every live node sees every node with ``liveness`` (and status up)."""
    want = {n.node_id for n in cluster.nodes}
    for addr in cluster.live_addrs():
        members = client.status(addr)["members"]
        if {m["node_id"] for m in members if m["status"] == "up" and m["liveness"] == liveness} != want:
            return False
    return True


def _act_quorum(console: Console, client: ringkv.Client, cluster: LocalCluster) -> None:
    _step(console, "2. quorum writes", f"keyspace_create('{KS}', n=3, r=2, w=2): every key on 3 nodes; a write needs 2 acks, a read 2 answers.")
    client.keyspace_create(KS, n=3, r=2, w=2)
    ks = client.keyspace(KS)
    for i in range(1, 21):
        ks.put(f"user:{i}", f"profile {i}", w=2)
    console.print("  wrote user:1 ... user:20 at W=2")
    _show(console, "get user:7 (R=2)", ks.get("user:7", r=2))
    console.print("  Two clients read cart:alice, then both write with that (now stale) context:")
    ks.put("cart:alice", "apples")
    stale = ks.get("cart:alice").context
    ks.put("cart:alice", "apples,bread", stale)
    ks.put("cart:alice", "apples,milk", stale)
    both = ks.get("cart:alice", r=3)
    _show(console, "get cart:alice", both)
    ks.put("cart:alice", "apples,bread,milk", both.context)
    _show(console, "after a put with the merged value and that read's context", ks.get("cart:alice"))


def _act_failure(console: Console, client: ringkv.Client, cluster: LocalCluster) -> dict[str, str]:
    victim = cluster.nodes[2]
    _step(console, f"3. kill -9 {victim.name}", "No goodbye: the others notice by failed probes (SWIM) and mark it down. Its tokens stay: down is not gone.")
    victim.kill()
    console.print(f"  killed {victim.name} (SIGKILL)")
    with console.status(f"waiting for n1 and n2 to report {victim.name} down ..."):
        poll(lambda: _liveness_everywhere(client, cluster, victim.node_id) == {"down"}, WAIT, f"{victim.name} to be reported down")
    console.print(status_table(client.status(cluster.addrs[0])))

    _step(console, "4. still serving", "Two replicas of three are enough for R=2 and W=2.")
    ks = client.keyspace(KS)
    missed = {f"while-down:{i}": f"written while {victim.name} was down ({i})" for i in range(1, 11)}
    for k, v in missed.items():
        ks.put(k, v, w=2)
    console.print(f"  wrote {len(missed)} keys while-down:1 ... while-down:10 at W=2")
    ok = sum(1 for i in range(1, 21) if ks.get(f"user:{i}", r=2) is not None)
    console.print(f"  read back {ok}/20 of the earlier keys at R=2")
    _show(console, "get while-down:3 (R=2)", ks.get("while-down:3", r=2))
    return missed


def _hints_for(client: ringkv.Client, cluster: LocalCluster, node_id: str) -> int:
    """Hints the live nodes hold for ``node_id``."""
    return sum(client.status(a)["hints_pending"].get(node_id, 0) for a in cluster.live_addrs())


def _liveness_everywhere(client: ringkv.Client, cluster: LocalCluster, node_id: str) -> set[str]:
    """How the live nodes see ``node_id`` (one word per distinct opinion)."""
    seen = set()
    for addr in cluster.live_addrs():
        seen |= {m["liveness"] for m in client.status(addr)["members"] if m["node_id"] == node_id}
    return seen


def _act_recovery(console: Console, client: ringkv.Client, cluster: LocalCluster, missed: dict[str, str]) -> None:
    victim = cluster.nodes[2]
    _step(console, f"5. restart {victim.name}", "Same data directory: same node id, same tokens. It catches up with the writes it missed.")
    hinted = _hints_for(client, cluster, victim.node_id)
    with console.status(f"restarting {victim.name} ..."):
        cluster.restart(2, WAIT)
        poll(lambda: _all(client, cluster, "alive"), WAIT, f"{victim.name} to be seen alive again")
    console.print(f"  {victim.name} is back as node [bold]{victim.node_id}[/bold]")
    console.print(status_table(client.status(victim.addr)))

    ks = client.keyspace(KS)

    def on_victim() -> list[str]:
        return [k for k, v in missed.items() if (r := ks.get_local(k, node=victim.addr)) is not None and r.values == [v.encode()]]

    with console.status(f"waiting for the missed writes to reach {victim.name} ...") as spinner:

        def caught_up() -> bool:
            have = on_victim()
            spinner.update(f"{len(have)}/{len(missed)} missed writes on {victim.name} ...")
            return len(have) == len(missed)

        try:
            poll(caught_up, 3.0, "hand-off")
            handed_off = True
        except exits.CommandError:
            handed_off = False
    have = on_victim()
    if handed_off:
        console.print(f"  {victim.name}'s own copies (replica-local reads): all {len(missed)} writes it missed were handed to it")
    else:
        why = (
            f"{hinted} hints for it are not delivered yet"
            if hinted
            else "no node held hints for it (with 3 nodes and N=3 there is no spare node to keep them)"
        )
        console.print(
            f"  {victim.name}'s own copies (replica-local reads): {len(have)}/{len(missed)} of the writes it missed.\n"
            f"  [yellow]{why}[/yellow]; a read at R=3, which asks every replica, repairs the stale one:"
        )
        for k in missed:
            ks.get(k, r=3)
        poll(lambda: len(on_victim()) == len(missed), WAIT, "read repair")
        console.print(f"  after read repair: all {len(missed)} are on {victim.name}")
    _show(console, f"{victim.name} local copy of while-down:3", ks.get_local("while-down:3", node=victim.addr))


def _act_feeds(console: Console, cluster: LocalCluster) -> None:
    _step(
        console,
        "6. a feed, written from every node",
        "A feed is an ordered event stream. Three clients, one connected to each node, append to the same feed; "
        "entry ids are ordered by HLC time and writer, so appends never conflict and every node lists one order.",
    )
    clients = [ringkv.connect([node.addr], timeout=5.0) for node in cluster.nodes]
    try:
        feeds = [c.keyspace(KS).feed("timeline") for c in clients]
        for rnd in (1, 2):
            for node, feed in zip(cluster.nodes, feeds):
                feed.append(f"{node.name} says hello #{rnd}", w=2)
        console.print(f"  appended 2 entries through each of {', '.join(n.name for n in cluster.nodes)} (W=2)")
        orders = [[e.id for e in feed.iterate(r=2)] for feed in feeds]
        same = all(o == orders[0] for o in orders)
        entries = feeds[0].all()
        table = Table(title="feed timeline (oldest first)")
        table.add_column("#", justify="right", style="dim")
        table.add_column("entry id", style="bold")
        table.add_column("data")
        for i, e in enumerate(entries, 1):
            table.add_row(str(i), e.id, Text(e.data.decode("utf-8", "replace")))
        console.print(table)
        verdict = "[green]the same order[/green]" if same else "[red]different orders[/red]"
        console.print(f"  listed through n1, n2 and n3 (R=2): {len(orders[0])} entries each, {verdict}")
        middle = feeds[2].get(entries[len(entries) // 2].id)
        if middle is not None:
            console.print(f"  get {middle.id} through n3 -> [green]{_esc(repr(middle.data.decode()))}[/green]")
            console.print(f"    prev {middle.prev_id}   next {middle.next_id}  [dim](linked-list navigation)[/dim]")
    finally:
        for c in clients:
            c.close()


def _print_keep(console: Console, cluster: LocalCluster, root: Path) -> None:
    addr = cluster.addrs[0]
    console.print()
    console.print("[bold green]The cluster keeps running.[/bold green] Talk to it:")
    console.print(f"  ringkv status --connect {addr}", markup=False)
    console.print(f"  ringkv get user:7 --keyspace {KS} --connect {addr}", markup=False)
    console.print(f"  ringkv put hello world --connect {','.join(cluster.addrs)}", markup=False)
    console.print(f"  ringkv feed list timeline --keyspace {KS} --connect {addr}", markup=False)
    console.print(f"  ringkv feed follow timeline --keyspace {KS} --connect {addr}", markup=False)
    console.print("Stop it and remove its files:")
    console.print(f"  kill {' '.join(str(p) for p in cluster.pids())} && rm -rf {root}", markup=False)
    console.print(f"Node logs: {root}/n1.log, n2.log, n3.log", markup=False)
