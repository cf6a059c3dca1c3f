"""ringkv: a Dynamo-style, leaderless, replicated key-value store."""

from ringkv._version import __version__
from ringkv import errors

__all__ = ["__version__", "errors"]
