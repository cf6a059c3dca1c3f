"""Helpers shared by the benchmarks (``benchmarks/*.py``) and the YCSB harness (``ringkv.ycsb``).

* processes: :func:`spawn` a child that dies with us, :func:`stop_process`,
  :func:`read_line` of its stdout with a deadline, :func:`tail` of its log,
  :func:`free_port`;
* servers for a run: :class:`LocalCluster` (``ringkv serve`` processes on
  loopback) with :func:`wait_converged`, :class:`RedisServer` with
  :func:`redis_available` / :func:`ensure_redis`;
* CPU use: :func:`process_cpu` of some processes, :func:`machine_busy` of
  the whole machine (both None without psutil);
* the run: :func:`add_seed_and_json_options`, :func:`run_directory` and
  :func:`interrupt_on_signals`, :func:`temporary_cluster` (SIGTERM / SIGHUP unwind like
  Ctrl-C), :func:`environment` / :func:`describe_environment` for the
  results, :func:`write_json`, :func:`fmt` for table cells.

Everything here is importable without the optional benchmark packages
(psutil, redis-py): they are imported where they are used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

__all__ = [
    "SETUP_REDIS",
    "LocalCluster",
    "RedisServer",
    "add_seed_and_json_options",
    "child_env",
    "describe_environment",
    "ensure_redis",
    "environment",
    "fmt",
    "free_port",
    "interrupt_on_signals",
    "machine_busy",
    "package_version",
    "process_cpu",
    "read_line",
    "redis_available",
    "redis_server_version",
    "run_directory",
    "spawn",
    "stop_process",
    "tail",
    "temporary_cluster",
    "wait_converged",
    "write_json",
]

SETUP_REDIS = Path(__file__).resolve().parent.parent / "benchmarks" / "setup_redis.sh"


# ---------------------------------------------------------------- processes


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """In a child: get SIGTERM if the benchmark dies without cleaning up (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def child_env() -> dict[str, str]:
    """This process's environment without ``RINGKV_*`` variables (they would change what a child does)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RINGKV_")}


def spawn(cmd: list[str], log_path: str, stdout: Any = subprocess.DEVNULL, stdin: Any = subprocess.DEVNULL) -> subprocess.Popen:
    """A child in its own session (a Ctrl-C reaches only us), SIGTERMed if we die; stderr appended to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            cmd, stdin=stdin, stdout=stdout, stderr=log, env=child_env(), start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` s; close its pipes."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for f in (proc.stdout, proc.stdin):
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()


def tail(path: str, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file ('' if it cannot be read)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    """The next stdout line of ``proc``; '' if it exits or stays silent for ``timeout`` s."""
    fd = proc.stdout.fileno()  # type: ignore[union-attr]
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return ""
        chunk = os.read(fd, 4096)
        if not chunk:
            return ""
        buf += chunk
    return buf.decode(errors="replace").strip()


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- ringkv nodes


_LISTENING = re.compile(r"ringkv node (\S+) listening on (\S+)")


class LocalCluster:
    """``ringkv serve`` processes on loopback in ``workdir``; the first starts alone, the others join it one at a time."""

    def __init__(self, workdir: str, log_level: str = "warning", extra_args: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.log_level = log_level
        #: more ``ringkv serve`` options for every node (``--fsync``)
        self.extra_args = list(extra_args)
        self.procs: list[subprocess.Popen] = []
        self.addrs: list[str] = []
        self.ids: list[str] = []

    def add_node(self, seed: Optional[str] = None, timeout: float = 60.0) -> int:
        """Start one more node (joining through ``seed``, default the first node); returns its index."""
        i = len(self.procs)
        data = os.path.join(self.workdir, f"node{i + 1}")
        log = self.log_path(i)
        cmd = [sys.executable, "-m", "ringkv.cli.main", "serve", "--data-dir", data, "--listen", "tcp://127.0.0.1:0",
               "--log-level", self.log_level, *self.extra_args]
        seed = seed or (self.addrs[0] if self.addrs else None)
        if seed:
            cmd += ["--seed", seed]
        proc = spawn(cmd, log, stdout=subprocess.PIPE)
        self.procs.append(proc)
        line = read_line(proc, timeout)
        m = _LISTENING.fullmatch(line)
        if not m:
            raise RuntimeError(f"node {i + 1} did not start (printed {line!r}); its log:\n{tail(log)}")
        self.ids.append(m.group(1))
        self.addrs.append(m.group(2))
        return i

    def start(self, size: int) -> "LocalCluster":
        for _ in range(size):
            self.add_node()
        return self

    def __enter__(self) -> "LocalCluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_path(self, i: int) -> str:
        return os.path.join(self.workdir, f"node{i + 1}.log")

    def check_alive(self) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                raise RuntimeError(f"node {i + 1} exited with {p.returncode}; its log:\n{tail(self.log_path(i))}")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            stop_process(p)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


async def wait_converged(client: Any, addrs: Sequence[str], timeout: float = 90.0) -> None:
    """Until every node at ``addrs`` sees all of them up and alive, and the client knows the ring."""
    import ringkv

    want = len(addrs)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: object = None
    while True:
        ok = True
        for addr in addrs:
            try:
                st = await client.astatus(addr)
            except ringkv.errors.RingKVError as exc:
                ok, seen = False, f"{addr}: {type(exc).__name__}: {exc}"
                break
            ms = [m for m in st["members"] if m["status"] not in ("left", "removed")]
            if len(ms) != want or any(m["status"] != "up" or m["liveness"] != "alive" or not m["tokens"] for m in ms):
                ok, seen = False, f"{addr} sees " + ", ".join(f"{m['node_id']} {m['status']}/{m['liveness']}" for m in ms)
                break
        if ok:
            await client.refresh()
            if len(client.ring()) == want:
                return
            seen = f"client ring has {len(client.ring())} members"
        if loop.time() > deadline:
            raise RuntimeError(f"the cluster did not converge within {timeout:g}s; last seen: {seen}")
        await asyncio.sleep(0.2)  # bounded poll while gossip spreads the joins


# ---------------------------------------------------------------- redis


def redis_available() -> tuple[bool, str]:
    """(True, "") when redis-server and redis-py are installed, else (False, what is missing)."""
    missing = []
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        missing.append("redis-py")
    return (not missing, ", ".join(missing))


def ensure_redis(install: bool) -> tuple[bool, str]:
    """Whether redis can be used; with ``install``, run benchmarks/setup_redis.sh first if needed."""
    ok, missing = redis_available()
    if ok or not install:
        return ok, "" if ok else f"{missing} not installed (bash benchmarks/setup_redis.sh installs it)"
    if not SETUP_REDIS.exists():
        return False, f"{missing} not installed and {SETUP_REDIS} is not there"
    proc = subprocess.run(["bash", str(SETUP_REDIS)], capture_output=True, text=True, check=False)
    import importlib

    importlib.invalidate_caches()
    ok, missing = redis_available()
    if ok:
        return True, ""
    why = (proc.stderr or proc.stdout).strip().splitlines()
    return False, f"{missing} could not be installed: {why[-1] if why else 'setup_redis.sh failed'}"


class RedisServer:
    """One ``redis-server`` on a free loopback port in ``workdir``: no persistence, or with
    ``durable`` an append-only file synced on every write (``appendfsync always``)."""

    def __init__(self, workdir: str, durable: bool = False) -> None:
        self.workdir = workdir
        self.durable = durable
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0

    def start(self) -> "RedisServer":
        import redis

        log = os.path.join(self.workdir, "redis.log")
        for _ in range(5):  # a free port can be taken between probing and binding
            self.port = free_port()
            persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
            self.proc = spawn(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                               *persistence, "--dir", self.workdir, "--daemonize", "no", "--logfile", log], log)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    redis.Redis(port=self.port, socket_timeout=1).ping()
                    return self
                except redis.ConnectionError:
                    time.sleep(0.05)  # until it listens
            stop_process(self.proc)
        raise RuntimeError(f"redis-server did not start; its log:\n{tail(log)}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None else []


# ---------------------------------------------------------------- CPU use


def machine_busy() -> Optional[float]:
    """CPU-seconds the machine has been busy so far, all cores (None without psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def process_cpu(pids: Sequence[int]) -> Optional[float]:
    """CPU-seconds used so far by ``pids`` (all threads; None without psutil or pids)."""
    if not pids:
        return None
    try:
        import psutil
    except ImportError:
        return None
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


async def wait_quiet(pids: Sequence[int], below: float = 0.1, window: float = 0.5, timeout: float = 30.0) -> Optional[float]:
    """Wait until ``pids`` use less than ``below`` of a core over ``window`` seconds (at most ``timeout``).

    After a write-heavy phase RocksDB flushes and compacts in the background;
    a read measured meanwhile would measure that too. Returns the last
    window's use (None without psutil).
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        before, t0 = process_cpu(pids), loop.time()
        await asyncio.sleep(window)  # the measuring window, not a wait for a condition
        after = process_cpu(pids)
        if before is None or after is None:
            return None
        use = (after - before) / (loop.time() - t0)
        if use < below or loop.time() >= give_up:
            return use


# ---------------------------------------------------------------- the run


def add_seed_and_json_options(ap: argparse.ArgumentParser, default_json: str) -> None:
    """The options every benchmark script has: ``--seed N`` and ``--json [PATH]`` (``default_json`` without PATH)."""
    ap.add_argument("--seed", type=int, default=42, help="random seed for keys and values (default: %(default)s)")
    ap.add_argument("--json", nargs="?", const=default_json, metavar="PATH",
                    help=f"also write results as JSON (default path: {os.path.relpath(default_json)})")


def interrupt_on_signals() -> dict[int, Any]:
    """Make SIGTERM and SIGHUP raise KeyboardInterrupt (so ``finally`` blocks stop every child).

    Returns the previous handlers, for ``signal.signal`` to put back.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}


@contextlib.contextmanager
def run_directory(prefix: str) -> Iterator[str]:
    """A temporary directory for one run, removed at the end, also on Ctrl-C, SIGTERM or SIGHUP.

    Installs :func:`interrupt_on_signals` first, so those signals unwind
    through the ``with`` blocks that stop the run's processes.
    """
    interrupt_on_signals()
    workdir = tempfile.mkdtemp(prefix=prefix)
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def temporary_cluster(prefix: str, size: int) -> Iterator[tuple[str, LocalCluster]]:
    """A :func:`run_directory` with a started :class:`LocalCluster` of ``size`` nodes in it, stopped at the end."""
    with run_directory(prefix) as workdir, LocalCluster(workdir) as cluster:
        print(f"starting {size} ringkv nodes in {workdir} ...", flush=True)
        cluster.start(size)
        yield workdir, cluster


def package_version(dist: str) -> Optional[str]:
    """The installed version of distribution ``dist`` (None if it is not installed)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def redis_server_version() -> Optional[str]:
    """``redis-server --version``'s version (None if it is not installed)."""
    exe = shutil.which("redis-server")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"v=(\S+)", out)
    return m.group(1) if m else out.strip()


def describe_environment(versions: Optional[Mapping[str, Optional[str]]] = None, **extra: Any) -> dict:
    """What a result was measured with: ringkv's version, ``versions``, Python, platform, CPUs, ``extra``, the time."""
    import ringkv

    return {
        "ringkv": ringkv.__version__,
        **(versions or {}),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        **extra,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def environment() -> dict:
    """:func:`describe_environment` with every baseline's version and the load average at the end."""
    return describe_environment(
        {
            "rocksdict": package_version("rocksdict"),
            "pyzmq": package_version("pyzmq"),
            "redis_py": package_version("redis"),
            "redis_server": redis_server_version(),
        },
        loadavg_at_end=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    )


def write_json(doc: Any, path: str) -> None:
    """Write ``doc`` to ``path`` (its folder created if needed) and say so."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"results written to {path}")


def fmt(v: Optional[float], spec: str) -> str:
    """``v`` formatted with ``spec``; '-' for None."""
    return "-" if v is None else format(v, spec)
