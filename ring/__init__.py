"""The consistent-hash ring: token allocation, preference lists and owned ranges."""

from ringkv.ring.ranges import TokenRange, split_wrapping
from ringkv.ring.ring import Ring
from ringkv.ring.tokens import allocate_tokens

__all__ = ["Ring", "TokenRange", "allocate_tokens", "split_wrapping"]
