"""The one client surface shared by the embedded database and cluster clients.

Concrete classes implement the core calls (``get``/``put``/``delete`` on a
keyspace; keyspace management on the database); this module adds everything
derived from them once: mapping sugar, iteration, the default-keyspace
shortcuts, and the ``a*`` async twins (inline for the embedded store; the
cluster client overrides them with its async core).
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

from ringkv.errors import NotFound
from ringkv.keyspaces import DEFAULT_KEYSPACE, KeyspaceInfo
from ringkv.result import Result

__all__ = ["KeyspaceAPI", "DatabaseAPI"]

Key = bytes | str
Value = bytes | str


class KeyspaceAPI:
    """get/put/delete on one keyspace, plus sugar; subclasses implement the core."""

    name: str

    # -- core (implemented by subclasses) --------------------------------

    def get(self, key: Key, *, r: Optional[int] = None) -> Optional[Result]:
        raise NotImplementedError

    def put(
        self,
        key: Key,
        value: Value,
        context: Optional[bytes] = None,
        *,
        w: Optional[int] = None,
        timestamp: Optional[int] = None,
    ) -> None:
        raise NotImplementedError

    def delete(self, key: Key, context: Optional[bytes] = None, *, w: Optional[int] = None) -> None:
        raise NotImplementedError

    def keys(self) -> Iterator[bytes]:
        raise NotImplementedError

    def items(self) -> Iterator[tuple[bytes, Result]]:
        raise NotImplementedError

    # -- async twins -----------------------------------------------------

    async def aget(self, key: Key, *, r: Optional[int] = None) -> Optional[Result]:
        return self.get(key, r=r)

    async def aput(self, key: Key, value: Value, context: Optional[bytes] = None, *, w: Optional[int] = None, timestamp: Optional[int] = None) -> None:
        return self.put(key, value, context, w=w, timestamp=timestamp)

    async def adelete(self, key: Key, context: Optional[bytes] = None, *, w: Optional[int] = None) -> None:
        return self.delete(key, context, w=w)

    # -- sugar -----------------------------------------------------------

    def __getitem__(self, key: Key) -> bytes:
        res = self.get(key)
        if res is None:
            raise NotFound(f"key {key!r:.80} not found")
        return res.value

    def __setitem__(self, key: Key, value: Value) -> None:
        self.put(key, value)

    def __delitem__(self, key: Key) -> None:
        """Deletes are idempotent: deleting a missing key is not an error."""
        self.delete(key)

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()


class DatabaseAPI(KeyspaceAPI):
    """A database (embedded or remote): keyspaces, and the default one's calls."""

    name = DEFAULT_KEYSPACE

    def keyspace(self, name: str) -> KeyspaceAPI:
        raise NotImplementedError

    def keyspace_create(self, name: str, *, n: Optional[int] = None, r: Optional[int] = None, w: Optional[int] = None, conflict: str = "siblings") -> KeyspaceInfo:
        raise NotImplementedError

    def keyspaces(self) -> list[KeyspaceInfo]:
        raise NotImplementedError

    def keyspace_drop(self, name: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- default keyspace ------------------------------------------------

    @property
    def default(self) -> KeyspaceAPI:
        return self.keyspace(DEFAULT_KEYSPACE)

    def get(self, key: Key, *, r: Optional[int] = None) -> Optional[Result]:
        return self.default.get(key, r=r)

    def put(self, key: Key, value: Value, context: Optional[bytes] = None, *, w: Optional[int] = None, timestamp: Optional[int] = None) -> None:
        return self.default.put(key, value, context, w=w, timestamp=timestamp)

    def delete(self, key: Key, context: Optional[bytes] = None, *, w: Optional[int] = None) -> None:
        return self.default.delete(key, context, w=w)

    def keys(self) -> Iterator[bytes]:
        return self.default.keys()

    def items(self) -> Iterator[tuple[bytes, Result]]:
        return self.default.items()

    async def aclose(self) -> None:
        self.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
