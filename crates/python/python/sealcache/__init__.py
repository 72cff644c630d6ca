"""sealcache: a sealed Redis cache of AI/LLM responses, with the Rust core in-process.

Every value is compressed, then encrypted with AES-256-GCM bound to its Redis key; Redis is
reached over TLS as a least-privilege ACL user; the strict policy refuses an insecure production
configuration. ``AsyncCache`` (asyncio) and ``Cache`` (threads) have the same methods; both read
the same settings as the ``sealcache-server`` (``from_env()``), share its keys and namespace, so
that either can read what the other stored.

    cache = sealcache.AsyncCache.from_env()
    request = sealcache.Request("a long document ...", "summarize", model="gpt-4o-mini")
    summary = await cache.get_or_compute(request, lambda: call_the_model(request))
"""

from __future__ import annotations

import functools
import inspect
import json
from dataclasses import dataclass
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Generic,
    Iterable,
    Literal,
    Self,
    TypeVar,
)

from ._errors import (
    InvalidRequest,
    PolicyError,
    SealcacheError,
    StoreFull,
    Unavailable,
    WriteRefused,
)
from ._sealcache import CacheCore, Request, __version__

__all__ = [
    "Answer",
    "AsyncCache",
    "Cache",
    "CLEAR_CONFIRMATION",
    "Erasure",
    "Event",
    "InvalidRequest",
    "PolicyError",
    "Request",
    "SealcacheError",
    "StoreFull",
    "Unavailable",
    "WriteRefused",
    "__version__",
]

#: What ``clear`` must be given to remove every entry of the namespace.
CLEAR_CONFIRMATION = "invalidate-all"

T = TypeVar("T")
Origin = Literal["l1", "redis", "computed"]


@dataclass(frozen=True)
class Answer(Generic[T]):
    """A value and where it came from."""

    value: T
    #: ``"l1"`` (this process's memory), ``"redis"`` (also when another process computed it while
    #: this call waited), or ``"computed"`` (this call ran ``compute``, or a concurrent caller in
    #: this process did and this call waited for it: ``compute`` ran once for all of them).
    origin: Origin
    #: Seconds the cached entry still lives (``None`` when not known).
    ttl_remaining: float | None


@dataclass(frozen=True)
class Event:
    """One server-sent event of a streamed answer: its data and, when named, its type
    (``event:``), as OpenAI and Anthropic streams emit them."""

    data: str
    event: str | None = None

    def to_sse(self) -> str:
        """The SSE wire format: ``event: NAME`` (when named), one ``data: LINE`` per line, a
        blank line."""
        head = f"event: {self.event}\n" if self.event is not None else ""
        return head + "".join(f"data: {line}\n" for line in self.data.split("\n")) + "\n"


def _events_in(events: Iterable[Event]) -> list[tuple[str | None, str]]:
    return [(e.event, e.data) for e in events]


def _events_out(pairs: list[tuple[str | None, str]] | None) -> list[Event] | None:
    return None if pairs is None else [Event(data, event) for event, data in pairs]


async def _replay(events: list[Event]) -> AsyncIterator[Event]:
    for event in events:
        yield event


def _loads(data: bytes | None) -> Any:
    return None if data is None else json.loads(data)


def _name(value: str, what: str) -> str:
    """``value`` when it can be UTF-8 (a lone surrogate cannot): ``InvalidRequest`` otherwise,
    not the codec's ``UnicodeEncodeError``."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{what} must be valid Unicode text (no lone surrogates)") from None
    return value


def _capacity(l1_capacity: int | None) -> int | None:
    """``l1_capacity`` when it is a count (0 turns L1 off): ``InvalidRequest`` otherwise."""
    if l1_capacity is not None and l1_capacity < 0:
        raise InvalidRequest("l1_capacity must be 0 (no L1) or more")
    return l1_capacity


@dataclass(frozen=True)
class Erasure:
    """What an erasure destroyed (``erase_subject``, ``erase_tenant``): the erased data key's id
    (hex; ``None`` when none existed), how many data keys went (a tenant's erasure destroys its
    subjects' too), and when (Unix seconds)."""

    data_key_id: str | None
    data_keys_destroyed: int
    erased_at: float


class _Base:
    __slots__ = ("_core",)

    def __init__(self, core: CacheCore) -> None:
        self._core = core

    @classmethod
    def from_env(cls, *, l1_capacity: int | None = None) -> Self:
        """A cache from this process's environment: ``REDIS_URL``, ``REDIS_PASSWORD_FILE``,
        ``REDIS_ENCRYPTION_KEYS_FILE``, ``REDIS_TLS_*``, ``CACHE_NAMESPACE``, ... exactly as the
        server reads them, with the same policy: a production environment without a keyring, TLS
        or credentials raises ``PolicyError`` naming what is missing."""
        return cls(CacheCore.from_env(_capacity(l1_capacity)))

    @classmethod
    def from_settings(cls, *, l1_capacity: int | None = None, **settings: str) -> Self:
        """A cache from keyword settings, each named after its variable in lower case
        (``redis_url="rediss://redis:6379/0"``, ``redis_password_file=...``,
        ``redis_encryption_keys_file=...``, ``environment="production"``); variables not given
        come from the environment. The same policy as ``from_env``."""
        return cls(CacheCore.from_variables(settings, _capacity(l1_capacity)))

    def key(self, request: Request) -> str:
        """The Redis key of ``request``: ``{namespace}:v3:{operation}:{hmac}``, no request text
        (the tenant and subject enter the HMAC)."""
        return self._core.key(request)

    def tenant(self, tenant: str) -> Self:
        """This cache for ``tenant`` (the customer): its own entries, sealed under its own data
        key; the same request under two tenants never shares an entry. Without it, a cache acts
        for tenant ``default``. The name never reaches Redis, a metric or a log."""
        return type(self)(self._core.tenant(_name(tenant, "tenant")))

    def subject(self, subject: str) -> Self:
        """This cache for end user ``subject`` within its tenant (``cache.tenant("acme")
        .subject("ann")``): entries sealed under the subject's own data key, erasable with
        ``erase_subject``."""
        return type(self)(self._core.subject(_name(subject, "subject")))

    @property
    def namespace(self) -> str:
        """The key prefix (``CACHE_NAMESPACE``)."""
        return self._core.namespace()

    def stats(self) -> dict[str, Any]:
        """Counters and latencies of this process's cache."""
        stats: dict[str, Any] = self._core.stats()
        return stats


async def _awaited(compute: Callable[[], Awaitable[T]]) -> T:
    """``await compute()``, or ``TypeError`` at once when ``compute`` is not an async callable
    (a plain function's value cannot be awaited: every caller would otherwise wait forever)."""
    result = compute()
    if not inspect.isawaitable(result):
        raise TypeError(
            "AsyncCache: compute must be an async callable (it returned "
            f"{type(result).__name__}, not an awaitable); use Cache for plain functions"
        )
    return await result


class AsyncCache(_Base):
    """The sealed cache for asyncio. Every method is a coroutine; cancelling the task that awaits
    one cancels the Rust call (a write cancelled before Redis answered is not in L1)."""

    __slots__ = ()

    async def get(self, request: Request) -> Any:
        """The cached value of ``request`` (decoded JSON), or ``None`` on a miss. A Redis outage,
        or a stored value that fails to open, is a miss (and counted), never an exception."""
        return _loads(await self._core.get_json(request, False))

    async def get_json(self, request: Request) -> bytes | None:
        """The cached JSON text of ``request``, byte for byte as stored, or ``None``."""
        data: bytes | None = await self._core.get_json(request, False)
        return data

    async def set(self, request: Request, value: Any, ttl: float | None = None) -> float:
        """Stores ``value`` (JSON-serializable) for ``ttl`` seconds (the operation's TTL when
        ``None``); returns the TTL used. Raises ``Unavailable``, ``WriteRefused``, ``StoreFull``,
        ``InvalidRequest``; a refused write is cached nowhere."""
        used: float = await self._core.set(request, value, ttl, False, False)
        return used

    async def set_json(self, request: Request, json_text: bytes | str, ttl: float | None = None) -> float:
        """Stores JSON text, returned byte for byte by later reads (here and by the server)."""
        used: float = await self._core.set(request, json_text, ttl, True, False)
        return used

    async def lookup(
        self, request: Request, *, max_age: float | None = None, no_cache: bool = False
    ) -> Any:
        """``get`` under per-request cache control: ``max_age`` seconds (an entry stored longer
        ago, or of unknown age, is a miss: HTTP ``Cache-Control: max-age``, LiteLLM
        ``s-maxage``) and ``no_cache`` (always a miss: HTTP/LiteLLM ``no-cache``)."""
        return _loads(await self._core.lookup(request, max_age, no_cache, False))

    async def get_or_compute(
        self,
        request: Request,
        compute: Callable[[], Awaitable[T]],
        ttl: float | None = None,
        *,
        max_age: float | None = None,
        no_cache: bool = False,
    ) -> T:
        """The cached value, or ``await compute()``'s, stored for ``ttl`` (the operation's TTL
        when ``None``). Concurrent callers of one request run ``compute`` once: in this process
        (single-flight), and across processes and replicas on one Redis (a lease in Redis, on by
        default; waiters get the holder's value, and one takes over if the holder fails or dies).
        Its exception reaches every caller of this process and is never cached. ``max_age`` /
        ``no_cache``: per-request cache control (see ``lookup``); the fresh value replaces the
        entry. See ``get_or_compute_answer`` for where the value came from."""
        answer = await self.get_or_compute_answer(
            request, compute, ttl, max_age=max_age, no_cache=no_cache
        )
        return answer.value

    async def get_or_compute_answer(
        self,
        request: Request,
        compute: Callable[[], Awaitable[T]],
        ttl: float | None = None,
        *,
        max_age: float | None = None,
        no_cache: bool = False,
    ) -> Answer[T]:
        """As ``get_or_compute``, with the value's origin and remaining TTL."""
        checked = functools.partial(_awaited, compute)
        if max_age is None and not no_cache:
            data, origin, left = await self._core.get_or_compute(request, checked, ttl, False)
        else:
            data, origin, left = await self._core.get_or_compute_controlled(
                request, checked, ttl, max_age, no_cache, False
            )
        return Answer(json.loads(data), origin, left)

    async def set_events(
        self, request: Request, events: Iterable[Event], ttl: float | None = None
    ) -> float:
        """Stores a **completed** stream of events (store only once the stream ended normally:
        no error, no client abort) as one sealed value: their order and count are
        authenticated, so a dropped, duplicated or reordered event is a miss. Returns the TTL
        used. An event name that is empty or holds CR/LF, or data holding CR, raises
        ``InvalidRequest``."""
        used: float = await self._core.set_events(request, _events_in(events), ttl, False)
        return used

    async def get_events(self, request: Request) -> list[Event] | None:
        """The cached stream of ``request``, or ``None``."""
        return _events_out(await self._core.get_events(request, False))

    async def get_stream(self, request: Request) -> AsyncIterator[Event] | None:
        """The cached stream of ``request`` replayed as an async iterator of its events, in
        order (``None`` on a miss)::

            stream = await cache.get_stream(request)
            if stream is not None:
                async for event in stream:
                    send(event.to_sse())
        """
        events = await self.get_events(request)
        return None if events is None else _replay(events)

    async def delete(self, request: Request) -> bool:
        """Removes the entry of ``request``; whether Redis held it."""
        found: bool = await self._core.delete(request, False)
        return found

    async def erase_subject(self, subject: str) -> Erasure:
        """Erases ``subject`` within this cache's tenant (the right to erasure): destroys its
        data key, so every one of its entries is a miss in every process within a second, also
        when copied back into Redis. See docs/security-model.md, "Is Ann's data gone?"."""
        data_key_id, destroyed, at = await self._core.erase_subject(_name(subject, "subject"), False)
        return Erasure(data_key_id, destroyed, at)

    async def erase_tenant(self) -> Erasure:
        """Erases this cache's tenant: every data key of it, its own and each subject's."""
        data_key_id, destroyed, at = await self._core.erase_tenant(False)
        return Erasure(data_key_id, destroyed, at)

    async def invalidate_operation(self, operation: str) -> int:
        """Removes every entry of ``operation`` (``SCAN`` + ``UNLINK``); how many were removed."""
        removed: int = await self._core.invalidate_operation(operation, False)
        return removed

    async def clear(self, *, confirm: str) -> int:
        """Removes every entry of the namespace; ``confirm`` must be ``"invalidate-all"``."""
        removed: int = await self._core.clear(confirm, False)
        return removed

    async def security_status(self) -> dict[str, Any]:
        """The observed security posture (as the server's ``/internal/cache/security-status``)."""
        status: dict[str, Any] = json.loads(await self._core.security_status(False))
        return status

    async def aclose(self) -> None:
        """Releases this handle (connections close when the last handle of the cache goes)."""

    async def __aenter__(self) -> "AsyncCache":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Cache(_Base):
    """The sealed cache for threads: ``AsyncCache``'s methods as blocking calls. Each releases the
    GIL while it waits, so other threads run; none waits longer than the configured Redis timeout
    (plus the computation, for ``get_or_compute``)."""

    __slots__ = ()

    def get(self, request: Request) -> Any:
        """As ``AsyncCache.get``."""
        return _loads(self._core.get_json(request, True))

    def get_json(self, request: Request) -> bytes | None:
        """As ``AsyncCache.get_json``."""
        data: bytes | None = self._core.get_json(request, True)
        return data

    def set(self, request: Request, value: Any, ttl: float | None = None) -> float:
        """As ``AsyncCache.set``."""
        used: float = self._core.set(request, value, ttl, False, True)
        return used

    def set_json(self, request: Request, json_text: bytes | str, ttl: float | None = None) -> float:
        """As ``AsyncCache.set_json``."""
        used: float = self._core.set(request, json_text, ttl, True, True)
        return used

    def lookup(
        self, request: Request, *, max_age: float | None = None, no_cache: bool = False
    ) -> Any:
        """As ``AsyncCache.lookup``."""
        return _loads(self._core.lookup(request, max_age, no_cache, True))

    def get_or_compute(
        self,
        request: Request,
        compute: Callable[[], T],
        ttl: float | None = None,
        *,
        max_age: float | None = None,
        no_cache: bool = False,
    ) -> T:
        """As ``AsyncCache.get_or_compute``, with a plain (blocking) ``compute``."""
        answer = self.get_or_compute_answer(request, compute, ttl, max_age=max_age, no_cache=no_cache)
        return answer.value

    def get_or_compute_answer(
        self,
        request: Request,
        compute: Callable[[], T],
        ttl: float | None = None,
        *,
        max_age: float | None = None,
        no_cache: bool = False,
    ) -> Answer[T]:
        """As ``AsyncCache.get_or_compute_answer``."""
        if max_age is None and not no_cache:
            data, origin, left = self._core.get_or_compute(request, compute, ttl, True)
        else:
            data, origin, left = self._core.get_or_compute_controlled(
                request, compute, ttl, max_age, no_cache, True
            )
        return Answer(json.loads(data), origin, left)

    def set_events(self, request: Request, events: Iterable[Event], ttl: float | None = None) -> float:
        """As ``AsyncCache.set_events``."""
        used: float = self._core.set_events(request, _events_in(events), ttl, True)
        return used

    def get_events(self, request: Request) -> list[Event] | None:
        """As ``AsyncCache.get_events``."""
        return _events_out(self._core.get_events(request, True))

    def delete(self, request: Request) -> bool:
        """As ``AsyncCache.delete``."""
        found: bool = self._core.delete(request, True)
        return found

    def erase_subject(self, subject: str) -> Erasure:
        """As ``AsyncCache.erase_subject``."""
        data_key_id, destroyed, at = self._core.erase_subject(_name(subject, "subject"), True)
        return Erasure(data_key_id, destroyed, at)

    def erase_tenant(self) -> Erasure:
        """As ``AsyncCache.erase_tenant``."""
        data_key_id, destroyed, at = self._core.erase_tenant(True)
        return Erasure(data_key_id, destroyed, at)

    def invalidate_operation(self, operation: str) -> int:
        """As ``AsyncCache.invalidate_operation``."""
        removed: int = self._core.invalidate_operation(operation, True)
        return removed

    def clear(self, *, confirm: str) -> int:
        """As ``AsyncCache.clear``."""
        removed: int = self._core.clear(confirm, True)
        return removed

    def security_status(self) -> dict[str, Any]:
        """As ``AsyncCache.security_status``."""
        status: dict[str, Any] = json.loads(self._core.security_status(True))
        return status

    def close(self) -> None:
        """Releases this handle."""

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
