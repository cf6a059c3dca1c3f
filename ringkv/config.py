"""Typed configuration with every default documented beside it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ringkv.errors import BadRequest, WrongType

__all__ = ["StoreOptions", "KIB", "MIB"]

KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class StoreOptions:
    """Options of one data directory (embedded database or node)."""

    #: Sync the WAL on every write. Off: a write survives a process crash
    #: (the WAL is in the OS page cache) but not a power loss. On: concurrent
    #: writes are group-committed into one synced batch.
    fsync: bool = False
    #: RocksDB block cache shared by all keyspaces, in MiB.
    block_cache_mb: int = 64
    #: Largest accepted key, in bytes.
    max_key_size: int = 64 * KIB
    #: Largest accepted value, in bytes.
    max_value_size: int = 16 * MIB
    #: Keys per chunk when scanning (``keys()``/``items()``, streaming).
    scan_chunk: int = 1000

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            want = bool if f.type in ("bool", bool) else int
            if type(v) is not want:
                raise WrongType(f"option {f.name} must be {want.__name__}, not {type(v).__name__}")
        if self.block_cache_mb < 1:
            raise BadRequest("block_cache_mb must be >= 1")
        if not 1 <= self.max_key_size <= 16 * MIB:
            raise BadRequest("max_key_size must be between 1 byte and 16 MiB")
        if not 1 <= self.max_value_size <= 1024 * MIB:
            raise BadRequest("max_value_size must be between 1 byte and 1 GiB")
        if self.scan_chunk < 1:
            raise BadRequest("scan_chunk must be >= 1")

    @classmethod
    def from_kwargs(cls, **kw: object) -> "StoreOptions":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kw) - names)
        if unknown:
            raise BadRequest(f"unknown option(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return cls(**kw)  # type: ignore[arg-type]
