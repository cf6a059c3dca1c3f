"""Range transfers (join, leave, remove, replace): progress and tables for the CLI.

A node's status dict lists its transfers under ``elastic.transfers``; each
covers one hash range of one table and says how far it got (``fraction``
of the range), how many keys and bytes it moved, its rate and ETA.

:class:`TransferWatch` follows the transfers of one membership change on
one or more nodes: it remembers what each node listed before the change
(finished transfers stay listed for a while), so only the change's own
transfers count. Its progress is the keys moved against the keys expected
to move (the node's key count scaled by the share of its ranges that
moves, from the ring before and after: :func:`leave_plan`,
:func:`remove_plan`); without a key count, the ring span moved against the
span to move (a node lists a transfer only once it starts).
"""

from __future__ import annotations

import time
from typing import Any, Iterable, NamedTuple, Optional

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn
from rich.table import Table

from ringkv.cli.output import human_bytes, human_seconds
from ringkv.hashing import RING_SIZE
from ringkv.ring import Ring
from ringkv.ring.handoff import gains, losses

__all__ = ["Plan", "TransferWatch", "leave_plan", "remove_plan", "transfers_table", "progress_display"]

#: Member statuses whose tokens serve reads now / once pending changes complete.
_NOW = ("up", "leaving")
_FUTURE = ("up", "joining")
#: Finished transfers ``ringkv status`` shows below the running ones.
RECENT = 5


def _span(t: dict) -> int:
    lo, last = t["range"]
    return max(1, last - lo + 1)


def _key(t: dict) -> tuple:
    lo, last = t["range"]
    # a pull learns its peer (the source that answered) only once it runs
    return (t["kind"], t["table"], lo, last, t["peer"] if t["kind"] == "push" else "")


def _ring(members: Iterable[list], statuses: tuple[str, ...], without: str = "") -> Ring:
    return Ring({m[0]: m[2] for m in members if m[3] in statuses and m[2] and m[0] != without})


def _tables(keyspaces: Iterable[dict]) -> list[int]:
    """The replication factor of every table: each keyspace has its keys and its feed entries."""
    return [ks["n"] for ks in keyspaces for _ in range(2)]


class Plan(NamedTuple):
    """What a change moves: ``span`` of the ring (summed over tables and targets), and
    ``share``, that span over the span the node concerned holds (to scale its key count)."""

    span: int
    share: float


def _plan(moved: int, held: float) -> Plan:
    return Plan(moved, moved / held if held > 0 else 0.0)


def leave_plan(members: list[list], keyspaces: list[dict], node_id: str) -> Plan:
    """What ``node_id`` pushes when it leaves (one count per target)."""
    now, future = _ring(members, _NOW), _ring(members, _FUTURE, without=node_id)
    if node_id not in now or not len(future):
        return Plan(0, 0.0)
    tables = _tables(keyspaces)
    moved = sum(m.size * len(m.peers) for n in tables for m in losses(node_id, now, future, n))
    held = sum(now.ownership(min(n, len(now))).get(node_id, 0.0) * RING_SIZE for n in tables)
    return _plan(moved, held)


def remove_plan(members: list[list], keyspaces: list[dict], removed: str, pullers: Iterable[str]) -> Plan:
    """What the ``pullers`` copy from survivors once ``removed`` is removed."""
    before = _ring(members, _NOW)
    after = _ring(members, _NOW, without=removed)
    if removed not in before or not len(after):
        return Plan(0, 0.0)
    tables = _tables(keyspaces)
    moved = sum(m.size for node in pullers for n in tables for m in gains(node, before, after, n))
    held = sum(before.ownership(min(n, len(before))).get(removed, 0.0) * RING_SIZE for n in tables)
    return _plan(moved, held)


class TransferWatch:
    """The transfers of one change on a set of nodes, and its overall progress."""

    def __init__(self, expected_span: int = 0, expected_keys: float = 0.0) -> None:
        self.expected = expected_span
        self.expected_keys = expected_keys
        self.started = time.monotonic()
        self._before: dict[str, dict[tuple, tuple]] = {}
        self._seen: dict[str, set[tuple]] = {}
        #: node id -> transfer key -> latest dict
        self.current: dict[str, dict[tuple, dict]] = {}

    def baseline(self, node_id: str, transfers: list[dict]) -> None:
        """What ``node_id`` listed before the change (not counted)."""
        self._before[node_id] = {_key(t): (t["keys"], t["bytes"], t["done"]) for t in transfers}

    def update(self, node_id: str, transfers: list[dict]) -> None:
        before = self._before.get(node_id, {})
        seen = self._seen.setdefault(node_id, set())
        mine = self.current.setdefault(node_id, {})
        for t in transfers:
            k = _key(t)
            if k not in seen and before.get(k) == (t["keys"], t["bytes"], t["done"]):
                continue  # listed before the change and unchanged since
            seen.add(k)
            mine[k] = t

    def transfers(self) -> list[dict]:
        return [t for per_node in self.current.values() for t in per_node.values()]

    def failed(self) -> list[dict]:
        return [t for t in self.transfers() if not t["done"] and t["error"]]

    def totals(self) -> dict[str, Any]:
        ts = self.transfers()
        span = sum(_span(t) for t in ts)
        moved = sum(_span(t) * (1.0 if t["done"] else t["fraction"]) for t in ts)
        total = max(self.expected, span)
        elapsed = time.monotonic() - self.started
        keys = sum(t["keys"] for t in ts)
        if self.expected_keys >= 1:
            # Keys moved against keys expected: the ring span alone says little,
            # as ranges of empty tables complete at once and full ones take long.
            fraction = keys / self.expected_keys
        else:
            fraction = moved / total if total else 0.0
        fraction = min(0.99, fraction)  # 100% is for the caller to say, once the change is over
        nbytes = sum(t["bytes"] - t["resumed_from_bytes"] for t in ts)
        return {
            "transfers": len(ts),
            "running": sum(1 for t in ts if not t["done"]),
            "keys": keys,
            "bytes": sum(t["bytes"] for t in ts),
            "fraction": fraction,
            "rate_bytes_per_s": nbytes / elapsed if elapsed > 0 else 0.0,
            "eta_s": elapsed * (1 - fraction) / fraction if fraction > 0 else None,
            "peers": sorted({t["peer"] for t in ts if t["peer"]}),
            "seconds": elapsed,
        }

    def detail(self, finished: bool = False) -> str:
        s = self.totals()
        eta = "done" if finished else f"ETA {human_seconds(s['eta_s'])}"
        text = f"{s['keys']:,} keys · {human_bytes(s['bytes'])} · {human_bytes(s['rate_bytes_per_s'])}/s · {eta}"
        errors = self.failed()
        if errors:
            text += f" · retrying: {errors[-1]['error'][:60]}"
        return text


def progress_display(console: Console) -> Progress:
    """A progress bar with a text column for keys, bytes, rate and ETA (off when not a terminal)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


def _pct(t: dict) -> str:
    return "100%" if t["done"] else f"{100 * t['fraction']:.0f}%"


def transfers_table(status: dict, recent: int = RECENT) -> Optional[Table]:
    """Running transfers of the node, then its ``recent`` last finished ones; None if none."""
    elastic = status.get("elastic") or {}
    transfers = elastic.get("transfers") or []
    if not transfers:
        return None
    running = [t for t in transfers if not t["done"]]
    finished = [t for t in transfers if t["done"]]
    shown = running + finished[-recent:] if recent else running
    hidden = len(transfers) - len(shown)
    table = Table(title=f"range transfers of {status['node_id']} (elastic: {elastic.get('state', '?')})")
    table.add_column("kind")
    table.add_column("table")
    table.add_column("peer")
    for col in ("keys", "bytes", "%", "rate", "ETA"):
        table.add_column(col, justify="right")
    table.add_column("state")
    for t in shown:
        if t["done"]:
            state, eta = "[dim]done[/dim]", "-"
        elif t["error"]:
            state, eta = f"[yellow]retrying[/yellow] {_esc(t['error'][:40])}", "-"
        else:
            state, eta = "[cyan]running[/cyan]", human_seconds(t["eta_s"])
        table.add_row(
            t["kind"], _esc(t["table"]), _esc(t["peer"] or "-"), f"{t['keys']:,}", human_bytes(t["bytes"]), _pct(t),
            f"{human_bytes(t['rate_bytes_per_s'])}/s", eta, state,
        )
    if hidden:
        table.caption = f"{hidden} earlier finished transfers not shown (ringkv status --json lists them)"
    return table


def _esc(text: str) -> str:
    return text.replace("[", "\\[")
