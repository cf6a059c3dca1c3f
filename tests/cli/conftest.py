"""Fixtures of the ``ringkv`` command tests: the command run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

#: seconds one command may take
TIMEOUT = 60


class Cli:
    """Runs ``python -m ringkv.cli.main`` and checks what it did."""

    @staticmethod
    def run(*args: str, data_dir: str | None = None, input: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
        """``ringkv [--data-dir D] ARGS...`` without the caller's ``RINGKV_*`` variables (``env`` added);
        stdout/stderr also as text (``.out``/``.err``)."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RINGKV_")}
        clean.update(env or {})
        argv = [sys.executable, "-m", "ringkv.cli.main"]
        if data_dir is not None:
            argv += ["--data-dir", data_dir]
        proc = subprocess.run(argv + list(args), input=input, capture_output=True, env=clean, timeout=TIMEOUT)
        proc.out = proc.stdout.decode("utf-8", "replace")  # type: ignore[attr-defined]
        proc.err = proc.stderr.decode("utf-8", "replace")  # type: ignore[attr-defined]
        return proc

    @staticmethod
    def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
        """``proc``, after checking that it exited with 0."""
        assert proc.returncode == 0, (proc.returncode, proc.err)
        return proc

    @staticmethod
    def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, fragment: str = "") -> None:
        """It exited with ``code`` and printed one ``error: ...`` line (containing ``fragment``), no traceback."""
        assert proc.returncode == code, (proc.returncode, proc.out, proc.err)
        assert proc.err.startswith("error: "), proc.err
        assert proc.err.count("\n") == 1 and proc.err.endswith("\n"), proc.err
        assert "Traceback" not in proc.err
        assert fragment in proc.err, proc.err


@pytest.fixture
def cli() -> Cli:
    """The ``ringkv`` command: ``cli.run(...)``, ``cli.ok(proc)``, ``cli.assert_one_line_error(proc, code, fragment)``."""
    return Cli()
