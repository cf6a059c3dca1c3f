"""Keyspace definitions: name rules and N/R/W/conflict validation."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ringkv.errors import BadRequest, WrongType

__all__ = ["KeyspaceInfo", "CONFLICT_MODES", "DEFAULT_KEYSPACE", "check_name"]

CONFLICT_MODES = ("siblings", "lww")
DEFAULT_KEYSPACE = "default"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
MAX_N = 16


def check_name(name: object, what: str = "keyspace") -> str:
    if not isinstance(name, str):
        raise WrongType(f"{what} name must be str, not {type(name).__name__}")
    if not _NAME.match(name):
        raise BadRequest(
            f"bad {what} name {name!r:.80}: use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class KeyspaceInfo:
    """One keyspace: its replication (N), read and write quorums, conflict mode."""

    name: str
    n: int = 3
    r: int = 2
    w: int = 2
    conflict: str = "siblings"

    def __post_init__(self) -> None:
        check_name(self.name)
        for f in ("n", "r", "w"):
            v = getattr(self, f)
            if type(v) is not int:
                raise WrongType(f"{f} must be an int, not {type(v).__name__}")
        if not 1 <= self.n <= MAX_N:
            raise BadRequest(f"n={self.n} is impossible: it must be between 1 and {MAX_N}")
        for f in ("r", "w"):
            v = getattr(self, f)
            if not 1 <= v <= self.n:
                raise BadRequest(f"{f}={v} is impossible: it must be between 1 and n={self.n}")
        if self.conflict not in CONFLICT_MODES:
            raise BadRequest(f"conflict must be one of {', '.join(CONFLICT_MODES)}, not {self.conflict!r:.40}")

    @property
    def lww(self) -> bool:
        return self.conflict == "lww"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: object) -> "KeyspaceInfo":
        if not isinstance(d, dict):
            raise BadRequest("keyspace definition must be a map")
        try:
            return cls(**{k: d[k] for k in ("name", "n", "r", "w", "conflict") if k in d})
        except TypeError as exc:
            raise BadRequest(f"bad keyspace definition: {exc}") from None
