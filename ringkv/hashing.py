"""The stable 64-bit hash that places keys on the ring and orders storage keys.

One function serves both: the ring token of a key and the 8-byte prefix of its
storage key are the same number, so one ring range is one contiguous range of
RocksDB keys. Never Python's salted ``hash()``.
"""

from __future__ import annotations

from hashlib import blake2b

RING_BITS = 64
RING_SIZE = 1 << RING_BITS
HASH_LEN = 8


def hash64(key: bytes) -> int:
    """Position of ``key`` on the 64-bit ring (first 8 bytes of blake2b, big-endian)."""
    return int.from_bytes(blake2b(key, digest_size=8).digest(), "big")


def hash64_bytes(key: bytes) -> bytes:
    """``hash64(key)`` as its 8 big-endian bytes: the storage-key prefix."""
    return blake2b(key, digest_size=8).digest()


def storage_key(key: bytes) -> bytes:
    """``hash64(key)`` (8 bytes, big-endian) followed by the key itself."""
    return blake2b(key, digest_size=8).digest() + key


def user_key(skey: bytes) -> bytes:
    """The user key inside a storage key."""
    return skey[HASH_LEN:]


def token_bytes(token: int) -> bytes:
    """A ring position as the 8-byte prefix that starts its storage range."""
    return token.to_bytes(HASH_LEN, "big")
