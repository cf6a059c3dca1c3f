"""Real ``ringkv serve`` processes on loopback, and a fixture that always cleans them up.

:class:`Cluster` starts N nodes as subprocesses, waits for each one's
``listening on`` line, kills and restarts them, and polls conditions with a
deadline (never a fixed sleep). Teardown SIGKILLs every process still
running, so no test leaves a process or a bound port behind, pass or fail.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Optional, TypeVar

import pytest

import ringkv
from ringkv.errors import RingKVError
from ringkv.transport import Transport
from ringkv.wire import Message

T = TypeVar("T")

#: Seconds a node may take to print its ``listening on`` line (a joiner waits for its seed).
START_TIMEOUT = 15.0
_LISTENING = re.compile(r"^ringkv node (\S+) listening on (\S+)$")


def cli_env() -> dict:
    """The environment for a ``ringkv`` subprocess: no RINGKV_* leaking in from the caller."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RINGKV_")}


def wait_for(check: Callable[[], Optional[T]], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns a truthy value; fail with ``what`` after ``timeout`` s.

    ringkv errors raised by ``check`` count as "not yet" (a node restarting,
    a quorum not reachable yet); the last one is shown on failure.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except RingKVError as exc:
            last = exc
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what} (last: {last!r:.300})")
        time.sleep(interval)  # poll interval; the deadline above bounds the wait


class NodeProcess:
    """One ``ringkv serve`` subprocess: its data dir, address, id, log."""

    def __init__(self, name: str, data_dir: Path) -> None:
        self.name = name
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{name}.log"
        self.listen = "tcp://127.0.0.1:0"
        self.addr = ""
        self.node_id = ""
        self.proc: Optional[subprocess.Popen] = None
        self._lines: queue.Queue = queue.Queue()

    def launch(self, seeds: list[str], extra: tuple[str, ...] = ()) -> None:
        argv = [sys.executable, "-m", "ringkv.cli.main", "serve", "--data-dir", str(self.data_dir), "--listen", self.listen]
        for s in seeds:
            argv += ["--seed", s]
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(argv + list(extra), stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=cli_env())
        finally:
            log.close()
        self._lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc, self._lines), daemon=True).start()

    @staticmethod
    def _read(proc: subprocess.Popen, lines: queue.Queue) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        lines.put(None)

    def wait_listening(self, timeout: float = START_TIMEOUT) -> None:
        """Block until the node printed its ``listening on`` line; fail (with its log) otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            m = _LISTENING.match(line or "")
            if m:
                self.node_id, self.addr = m.group(1), m.group(2)
                self.listen = self.addr  # a restart reuses the same address
                return
            if line is None:
                pytest.fail(f"{self.name} did not start (exit {self.proc.poll() if self.proc else None}):\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 10.0) -> int:
        """Send ``sig`` and reap the process; returns its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


class Cluster:
    """N ``ringkv serve`` processes on free loopback ports, in ``root``."""

    def __init__(self, root: Path, size: int = 3, vnodes: int = 64) -> None:
        self.root = root
        self.vnodes = vnodes
        self.nodes = [NodeProcess(f"n{i + 1}", root / f"n{i + 1}") for i in range(size)]
        self._clients: list[ringkv.Client] = []
        self._observers: dict[str, ringkv.Client] = {}
        #: Seconds from launching the first process to every node seeing all of them up and alive.
        self.start_seconds = float("nan")
        #: The part of it after the last node is listening (its join done): gossip alone, without
        #: the interpreters' start-up, which a machine busy with other tests can stretch.
        self.converge_seconds = float("nan")

    # -- processes -------------------------------------------------------

    def start(self) -> "Cluster":
        """Start the first node, then the others through it; wait until all see each other."""
        began = time.monotonic()
        first, rest = self.nodes[0], self.nodes[1:]
        first.launch([], self._extra())
        first.wait_listening()
        for node in rest:  # one at a time: nodes that join together pick overlapping tokens
            node.launch([first.addr], self._extra())
            node.wait_listening()
        listening = time.monotonic()
        self.wait_converged()
        self.converge_seconds = time.monotonic() - listening
        self.start_seconds = time.monotonic() - began
        return self

    def _extra(self) -> tuple[str, ...]:
        return ("--vnodes", str(self.vnodes))

    def add(self, seed: int = 0) -> NodeProcess:
        """Start one more node joining through node ``seed``; returns it once it listens."""
        node = NodeProcess(f"n{len(self.nodes) + 1}", self.root / f"n{len(self.nodes) + 1}")
        self.nodes.append(node)
        node.launch([self.nodes[seed].addr], self._extra())
        node.wait_listening()
        return node

    def kill(self, i: int) -> NodeProcess:
        """``kill -9`` node ``i``."""
        node = self.nodes[i]
        node.kill(signal.SIGKILL)
        return node

    def kill_with_sigterm(self, i: int) -> int:
        """Stop node ``i`` the polite way; returns its exit status."""
        return self.nodes[i].kill(signal.SIGTERM)

    def restart(self, i: int) -> NodeProcess:
        """Start node ``i`` again on its data directory and address."""
        node = self.nodes[i]
        assert not node.running, f"{node.name} is still running"
        seeds = [n.addr for n in self.nodes if n is not node and n.running]
        node.launch(seeds, self._extra())
        node.wait_listening()
        return node

    def close(self) -> None:
        for c in [*self._clients, *self._observers.values()]:
            c.close()
        self._clients.clear()
        self._observers.clear()
        for node in self.nodes:
            node.close()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers for tests (test modules cannot import this conftest) ------

    wait_for = staticmethod(wait_for)

    @staticmethod
    def requests(calls: list[tuple[str, Message]], timeout: float = 3.0) -> list:
        """Send raw wire requests ``(addr, msg)``, bypassing the client's checks and routing.

        Returns each reply, or the exception it raised, in order.
        """

        async def go() -> list:
            transport = Transport(None, None)
            await transport.start()
            try:
                return await asyncio.gather(*(transport.request(a, m, timeout) for a, m in calls), return_exceptions=True)
            finally:
                await transport.stop()

        return asyncio.run(go())

    @staticmethod
    def cli(*args: str, timeout: float = 60.0, env: Optional[dict] = None) -> subprocess.CompletedProcess:
        return run_cli(*args, timeout=timeout, env=env)

    # -- views -----------------------------------------------------------

    @property
    def addrs(self) -> list[str]:
        return [n.addr for n in self.nodes]

    def client(self, *addrs: str, timeout: float = 5.0) -> ringkv.Client:
        """A client through ``addrs`` (default: every node); closed at teardown."""
        c = ringkv.connect(list(addrs) or [n.addr for n in self.nodes if n.running], timeout=timeout)
        self._clients.append(c)
        return c

    def status(self, i: int) -> dict:
        """Node ``i``'s status dict, asked of that node."""
        addr = self.nodes[i].addr
        c = self._observers.get(addr)
        if c is None:
            c = self._observers[addr] = ringkv.connect([addr], timeout=3.0)
        return c.status(addr)

    def liveness(self, observer: int) -> dict[str, tuple[str, str]]:
        """``{node_id: (status, liveness)}`` as node ``observer`` sees the cluster."""
        return {m["node_id"]: (m["status"], m["liveness"]) for m in self.status(observer)["members"]}

    def wait_converged(self, timeout: float = 10.0) -> None:
        """Every running node sees every node ``up``, running ones ``alive``."""
        running = [i for i, n in enumerate(self.nodes) if n.running]
        expect = {n.node_id: ("up", "alive") for n in self.nodes if n.running}

        def converged() -> bool:
            for i in running:
                view = self.liveness(i)
                if any(view.get(nid) != state for nid, state in expect.items()):
                    return False
            return True

        wait_for(converged, timeout, f"nodes {sorted(expect)} seen up/alive by every running node")

    def wait_liveness(self, target: int, liveness: str, timeout: float = 5.0) -> None:
        """Every other running node reports node ``target`` with ``liveness``."""
        nid = self.nodes[target].node_id
        others = [i for i, n in enumerate(self.nodes) if n.running and i != target]
        wait_for(
            lambda: all(self.liveness(i).get(nid, ("", ""))[1] == liveness for i in others),
            timeout,
            f"{self.nodes[target].name} ({nid}) reported {liveness} by nodes {others}",
        )

    def heal(self) -> None:
        """Restart any node a test left dead, then wait for convergence."""
        for i, node in enumerate(self.nodes):
            if not node.running:
                self.restart(i)
        self.wait_converged()


def run_cli(*args: str, timeout: float = 60.0, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """``ringkv ARGS...`` as a subprocess (``env``: extra variables); stdout/stderr as text."""
    return subprocess.run(
        [sys.executable, "-m", "ringkv.cli.main", *args],
        capture_output=True,
        text=True,
        env={**cli_env(), **(env or {})},
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """One 3-node cluster for a whole test module (tests use distinct keyspaces)."""
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.close()


@pytest.fixture
def cluster_factory(tmp_path) -> Iterator[Callable[..., Cluster]]:
    """``cluster_factory(size, vnodes=...)`` -> a started cluster of its own, closed after the test."""
    made: list[Cluster] = []

    def make(size: int = 3, vnodes: int = 64) -> Cluster:
        root = tmp_path / f"c{len(made)}"
        root.mkdir()
        c = Cluster(root, size=size, vnodes=vnodes)
        made.append(c)
        return c.start()

    try:
        yield make
    finally:
        for c in made:
            c.close()


@pytest.fixture
def solo(tmp_path) -> Iterator[NodeProcess]:
    """A single ``ringkv serve`` node of its own, killed after the test."""
    node = NodeProcess("solo", tmp_path / "solo")
    try:
        node.launch([])
        node.wait_listening()
        yield node
    finally:
        node.close()


@pytest.fixture
def healthy(cluster: Cluster) -> Iterator[Cluster]:
    """The module's cluster with every node running and converged, before and after the test."""
    cluster.heal()
    yield cluster
    cluster.heal()
