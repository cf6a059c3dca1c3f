#!/usr/bin/env bash
# Install what benchmarks/cluster.py compares ringkv against:
#   - redis-server, from Debian packages (apt-get; needs root, or sudo),
#   - redis-py (redis.asyncio) and the other benchmark tools, from the
#     project's `bench` extra: pip install -e '.[bench]'.
# Idempotent: each step is skipped when its tool is already there, and
# `apt-get update` runs at most once per call (only if redis-server is missing).
#
#   bash benchmarks/setup_redis.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python}"

if command -v redis-server >/dev/null 2>&1; then
    echo "redis-server: $(redis-server --version | head -n1)"
else
    if [ "$(id -u)" -eq 0 ]; then
        sudo=()
    elif command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "error: redis-server is missing and installing it needs root (apt-get install redis-server)" >&2
        exit 1
    fi
    echo "installing redis-server (Debian package)..."
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    # The package may start a system instance on port 6379; the benchmark
    # runs its own on a free port and does not need it.
    echo "redis-server: $(redis-server --version | head -n1)"
fi

if "$python" -c "import redis.asyncio" >/dev/null 2>&1; then
    echo "redis-py: $("$python" -c 'import redis; print(redis.__version__)')"
else
    echo "installing the bench extra (redis-py, ...)..."
    "$python" -m pip install -q -e "$root[bench]"
    echo "redis-py: $("$python" -c 'import redis; print(redis.__version__)')"
fi
