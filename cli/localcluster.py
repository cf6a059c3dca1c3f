"""A cluster of local ``ringkv serve`` processes, for ``ringkv demo``.

Each node is a subprocess in its own session (so a Ctrl-C in the terminal
reaches only the demo, which then stops the nodes itself), with its log in
``ROOT/nN.log``. A node first listens on a free port chosen by the OS and
keeps that address across restarts.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional, TypeVar

from ringkv.cli.exits import CommandError
from ringkv.errors import RingKVError

__all__ = ["LocalCluster", "LocalNode", "poll"]

T = TypeVar("T")
_LISTENING = re.compile(r"^ringkv node (\S+) listening on (\S+)$")


def poll(check: Callable[[], Optional[T]], timeout: float, what: str, interval: float = 0.1) -> T:
    """Call ``check`` until it returns something truthy; CommandError after ``timeout`` s.

    ringkv errors from ``check`` mean "not yet" (a node still starting).
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
        except RingKVError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise CommandError(f"timed out after {timeout:g}s waiting for {what}" + (f" ({last})" if last else ""))
        time.sleep(interval)  # poll interval; bounded by the deadline above


class LocalNode:
    """One ``ringkv serve`` subprocess."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.data_dir = root / name
        self.log_path = root / f"{name}.log"
        self.addr = "tcp://127.0.0.1:0"
        self.node_id = ""
        self.proc: Optional[subprocess.Popen] = None
        self._lines: queue.Queue = queue.Queue()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self, seeds: list[str], log_level: str = "info") -> None:
        """Start ``ringkv serve``; :meth:`wait_listening` waits until it serves."""
        argv = [sys.executable, "-m", "ringkv.cli.main", "serve", "--data-dir", str(self.data_dir), "--listen", self.addr, "--log-level", log_level]
        for s in seeds:
            argv += ["--seed", s]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RINGKV_")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self._lines = queue.Queue()
        threading.Thread(target=_read_lines, args=(self.proc, self._lines), daemon=True).start()

    def wait_listening(self, timeout: float) -> None:
        """Wait for the ``listening on`` line; learn the node's id and address from it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise CommandError(f"node {self.name} did not start within {timeout:g}s; see {self.log_path}") from None
            if line is None:
                raise CommandError(f"node {self.name} exited at start: {self.last_log_line()}")
            m = _LISTENING.match(line)
            if m:
                self.node_id, self.addr = m.group(1), m.group(2)
                return

    def last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return lines[-1] if lines else "(empty log)"

    def send(self, sig: int) -> None:
        if self.running:
            self.proc.send_signal(sig)  # type: ignore[union-attr]

    def reap(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the process to exit, then SIGKILL it."""
        proc = self.proc
        if proc is None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()

    def kill(self) -> None:
        """``kill -9``, and reap."""
        self.send(signal.SIGKILL)
        self.reap(5.0)


def _read_lines(proc: subprocess.Popen, lines: queue.Queue) -> None:
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
    except (OSError, ValueError):
        pass  # the pipe was closed by kill()
    lines.put(None)


class LocalCluster:
    """``size`` local nodes in ``root``: the first starts alone, the others join through it."""

    def __init__(self, root: Path, size: int = 3, log_level: str = "info") -> None:
        self.root = root
        self.log_level = log_level
        self.nodes = [LocalNode(f"n{i + 1}", root) for i in range(size)]

    @property
    def addrs(self) -> list[str]:
        return [n.addr for n in self.nodes]

    def live_addrs(self) -> list[str]:
        return [n.addr for n in self.nodes if n.running]

    def start(self, timeout: float = 20.0) -> None:
        first, rest = self.nodes[0], self.nodes[1:]
        first.launch([], self.log_level)
        first.wait_listening(timeout)
        for node in rest:  # one at a time: nodes that join together pick overlapping tokens
            node.launch([first.addr], self.log_level)
            node.wait_listening(timeout)

    def restart(self, i: int, timeout: float = 20.0) -> LocalNode:
        node = self.nodes[i]
        node.launch([n.addr for n in self.nodes if n is not node and n.running], self.log_level)
        node.wait_listening(timeout)
        return node

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM every node (a clean stop); SIGKILL any still running after ``timeout`` s."""
        for node in self.nodes:
            node.send(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.reap(max(0.0, deadline - time.monotonic()))

    def pids(self) -> list[int]:
        return [n.proc.pid for n in self.nodes if n.running]  # type: ignore[union-attr]
