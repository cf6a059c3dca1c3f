"""ringkv: a Dynamo-style, leaderless, replicated key-value store.

``ringkv.open(path)`` opens an embedded database; the cluster entry points
(``ringkv.Node``, ``ringkv.connect``) share its client surface.
"""

from ringkv import errors
from ringkv._version import __version__
from ringkv.config import StoreOptions
from ringkv.embedded import Database, open
from ringkv.keyspaces import KeyspaceInfo
from ringkv.result import Result
from ringkv.client import AsyncClient, Client, connect, connect_async
from ringkv.node import Node

__all__ = [
    "__version__",
    "errors",
    "open",
    "Database",
    "Node",
    "connect",
    "connect_async",
    "Client",
    "AsyncClient",
    "Result",
    "KeyspaceInfo",
    "StoreOptions",
]
