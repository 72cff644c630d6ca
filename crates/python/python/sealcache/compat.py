"""A drop-in for the FastAPI/Streamlit LLM starter template's ``AIResponseCache``.

Change one import::

    # from app.services.cache import AIResponseCache
    from sealcache.compat import AIResponseCache

and every cached answer is sealed, keyed by an HMAC (no request text in Redis), read over TLS as
an ACL user, and shared with the Rust server. The template's call shapes are kept; docs/python.md
maps each method. Settings come from the environment as the server reads them (``from_env``);
``redis_url`` and ``default_ttl`` are accepted for the template's constructor shape.
"""

from __future__ import annotations

import time
from typing import Any

from . import AsyncCache, InvalidRequest, Request, SealcacheError, CLEAR_CONFIRMATION
from ._sealcache import CacheCore

__all__ = ["AIResponseCache", "SecureAIResponseCache"]


class AIResponseCache:
    """The template's ``AIResponseCache``, sealed. All methods but ``build_key`` are coroutines."""

    def __init__(
        self,
        redis_url: str | None = None,
        default_ttl: int | None = None,
        *,
        cache: AsyncCache | None = None,
        **settings: str,
    ) -> None:
        if redis_url is not None:
            settings.setdefault("redis_url", redis_url)
        self._settings = settings
        self._cache = cache
        self.default_ttl = default_ttl
        self._hits = 0
        self._misses = 0
        self._started = time.monotonic()

    @property
    def cache(self) -> AsyncCache:
        """The underlying ``AsyncCache`` (made on first use)."""
        if self._cache is None:
            core = (
                CacheCore.from_variables(self._settings, None)
                if self._settings
                else CacheCore.from_env(None)
            )
            self._cache = AsyncCache(core)
        return self._cache

    async def connect(self) -> bool:
        """Makes the cache and reports whether Redis answers (a cache without Redis still works:
        reads miss, writes are refused)."""
        status = await self.cache.security_status()
        return bool(status.get("redis_available"))

    async def disconnect(self) -> None:
        """Releases the cache."""
        if self._cache is not None:
            await self._cache.aclose()
            self._cache = None

    @staticmethod
    def _request(text: str, operation: str, options: dict[str, Any] | None, question: str | None = None) -> Request:
        return Request(text, operation, options or None, question)

    def build_key(self, text: str, operation: str, options: dict[str, Any] | None = None, question: str | None = None) -> str:
        """The Redis key of a request (the template's ``_generate_cache_key``)."""
        return self.cache.key(self._request(text, operation, options, question))

    _generate_cache_key = build_key

    async def get(self, key: str) -> Any:
        """The value stored under ``key`` (from ``build_key``, or an explicit key), or ``None``."""
        data = await self.cache._core.get_key(key, False)
        if data is None:
            self._misses += 1
            return None
        self._hits += 1
        import json

        return json.loads(data)

    async def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        """Stores ``value`` under ``key`` for ``ttl`` seconds (``default_ttl``, else 3600)."""
        await self.cache._core.set_key(key, value, ttl or self.default_ttl, False)

    async def delete(self, key: str) -> bool:
        """Removes ``key``; whether it existed."""
        found: bool = await self.cache._core.delete_key(key, False)
        return found

    async def exists(self, key: str) -> bool:
        """Whether ``key`` holds a value this cache can open."""
        return await self.cache._core.get_key(key, False) is not None

    async def get_cached_response(
        self, text: str, operation: str, options: dict[str, Any] | None = None, question: str | None = None
    ) -> Any:
        """The cached response of a request, or ``None``."""
        value = await self.cache.get(self._request(text, operation, options, question))
        if value is None:
            self._misses += 1
        else:
            self._hits += 1
        return value

    async def cache_response(
        self,
        text: str,
        operation: str,
        options: dict[str, Any] | None,
        response: Any,
        question: str | None = None,
    ) -> None:
        """Stores the response of a request for the operation's TTL (or ``default_ttl``)."""
        await self.cache.set(self._request(text, operation, options, question), response, self.default_ttl)

    async def invalidate_pattern(
        self, pattern: str, operation_context: str = "", *, allow_clear_all: bool = False
    ) -> int:
        """Removes the entries of one operation. The template matched ``*{pattern}*`` on key
        names that held request text; sealcache's key names hold none, so ``pattern`` is an
        operation name. An empty pattern (or ``*``) clears the whole namespace and is refused
        unless ``allow_clear_all=True``."""
        if pattern in ("", "*"):
            if not allow_clear_all:
                raise InvalidRequest(
                    "an empty pattern clears every entry: pass allow_clear_all=True to mean it"
                )
            return await self.cache.clear(confirm=CLEAR_CONFIRMATION)
        return await self.cache.invalidate_operation(pattern)

    async def invalidate_by_operation(self, operation: str, operation_context: str = "") -> int:
        """Removes every entry of ``operation``."""
        return await self.cache.invalidate_operation(operation)

    async def get_cache_stats(self) -> dict[str, Any]:
        """The template's statistics shape: ``redis``, ``memory`` and ``performance``."""
        try:
            status = await self.cache.security_status()
            available = bool(status.get("redis_available"))
        except SealcacheError:
            available = False
        stats = self.cache.stats()
        lookups = self._hits + self._misses
        return {
            "redis": {"status": "connected" if available else "unavailable"},
            "memory": {
                "memory_cache_entries": stats.get("l1_entries", 0),
                "memory_cache_bytes": stats.get("l1_bytes", 0),
            },
            "performance": {
                "hits": self._hits,
                "misses": self._misses,
                "hit_ratio": (self._hits / lookups) if lookups else 0.0,
                "uptime_seconds": time.monotonic() - self._started,
                "sealcache": stats,
            },
        }


#: The template's other name for it.
SecureAIResponseCache = AIResponseCache
