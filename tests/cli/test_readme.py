"""The README's Python example runs as written and prints what its comments say."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "README.md has no python example"
    return blocks[0]


def _expected(code: str) -> list[str]:
    """The ``# comment`` after each ``print(...)`` line: what it should print."""
    return [line.split("#", 1)[1].strip() for line in code.splitlines() if line.strip().startswith("print(") and "#" in line]


def test_readme_example_runs_and_prints_its_comments(tmp_path):
    code = _example()
    expected = _expected(code)
    assert expected
    for _ in range(2):  # twice: the example must also work on an existing directory
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == expected
    assert (tmp_path / "ringkv-example").is_dir()


def test_readme_cluster_example_runs(tmp_path):
    """The cluster example, on free ports instead of the fixed ones it shows."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    code = next(b for b in blocks if "ringkv.Node(" in b)
    code = re.sub(r"tcp://127\.0\.0\.1:\d+", "tcp://127.0.0.1:0", code)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "[b'logged in', b'signed up']"
    assert lines[-1] == "b'hi'"
