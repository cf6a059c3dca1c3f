"""Anti-entropy and tombstone GC on a node (placeholder until the service lands)."""

from __future__ import annotations

from typing import Any

__all__ = ["install"]


def install(server: Any) -> Any:
    """Register repair handlers and background tasks on ``server``; returns the service."""
    return None
