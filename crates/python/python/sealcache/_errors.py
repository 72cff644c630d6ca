"""The errors sealcache raises: every one is a ``SealcacheError``.

Messages name what failed, never a value, key, password or request text.
"""

from __future__ import annotations

__all__ = [
    "SealcacheError",
    "PolicyError",
    "InvalidRequest",
    "Unavailable",
    "WriteRefused",
    "StoreFull",
]


class SealcacheError(Exception):
    """Base class of every sealcache error."""


class PolicyError(SealcacheError):
    """The configuration is refused by the strict policy (production without a keyring, TLS, ...),
    or the settings cannot be read. The message names what is missing."""


class InvalidRequest(SealcacheError, ValueError):
    """A bad argument: an invalid operation name or key, a value that is not JSON, a clear without
    its confirmation, a value over the size limit."""


class Unavailable(SealcacheError, ConnectionError):
    """Redis could not be reached in time, refused the credentials, or failed the TLS handshake.
    Reads never raise it (they are misses); writes do, and are cached nowhere."""


class WriteRefused(SealcacheError):
    """Redis refused the write (read-only replica, ACL), or its invalidation could not reach the
    other processes; nothing was cached."""


class StoreFull(WriteRefused):
    """Redis is at ``maxmemory`` and may not evict: the write was refused."""
