"""Leases across caches (two "replicas" on one Redis), per-request cache control and sealed
streams, against real Redis."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import sealcache
from sealcache import AsyncCache, Cache, Event, Request


def test_two_replicas_compute_once(dev_settings: dict[str, str]) -> None:
    # Two caches: two in-process flights, as two processes would have; the lease in Redis makes
    # one computation of them all.
    replicas = [Cache.from_settings(**dev_settings), Cache.from_settings(**dev_settings)]
    request = Request("one computation across replicas", "qa")
    runs = 0
    lock = threading.Lock()

    def compute() -> dict[str, int]:
        nonlocal runs
        with lock:
            runs += 1
            n = runs
        time.sleep(0.4)
        return {"run": n}

    results: list[Any] = []

    def call(i: int) -> None:
        results.append(replicas[i % 2].get_or_compute(request, compute))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runs == 1, "computed once across both replicas"
    assert results == [{"run": 1}] * 8


def test_max_age_and_no_cache(dev_settings: dict[str, str]) -> None:
    cache = Cache.from_settings(**dev_settings)
    request = Request("aging", "qa")
    cache.set(request, {"v": 1})
    assert cache.lookup(request, max_age=60) == {"v": 1}
    assert cache.lookup(request, no_cache=True) is None
    time.sleep(1.1)
    assert cache.lookup(request, max_age=1) is None, "older than max_age"
    assert cache.lookup(request) == {"v": 1}
    # Too old for this caller: computed afresh, and the fresh value replaces the entry.
    answer = cache.get_or_compute_answer(request, lambda: {"v": 2}, max_age=1)
    assert (answer.value, answer.origin) == ({"v": 2}, "computed")
    assert cache.get(request) == {"v": 2}
    answer = cache.get_or_compute_answer(request, lambda: {"v": 3}, max_age=60)
    assert (answer.value, answer.origin) != ({"v": 3}, "computed"), "young enough: cached"
    assert answer.value == {"v": 2}
    # no_cache: computed even though an entry exists.
    assert cache.get_or_compute(request, lambda: {"v": 4}, no_cache=True) == {"v": 4}
    assert cache.get(request) == {"v": 4}
    with pytest.raises(sealcache.InvalidRequest):
        cache.lookup(request, max_age=-1)
    # Right after a store (in the same millisecond, often), no_cache still computes: the entry
    # stored just before the call is not one stored after it arrived.
    for i in range(50):
        fresh = Request(f"just stored {i}", "qa")
        cache.set(fresh, {"v": "old"})
        answer = cache.get_or_compute_answer(fresh, lambda: {"v": "new"}, no_cache=True)
        assert (answer.value, answer.origin) == ({"v": "new"}, "computed"), i

    # A failing computation under cache control releases its lease: the next caller computes.
    other = Request("failing", "qa")

    def fail() -> Any:
        raise RuntimeError("model down")

    with pytest.raises(RuntimeError):
        cache.get_or_compute(other, fail, no_cache=True)
    started = time.monotonic()
    assert cache.get_or_compute(other, lambda: 5, no_cache=True) == 5
    assert time.monotonic() - started < 2, "the lease was released, not left to expire"


EVENTS = [
    Event('{"type":"message_start","message":{"id":"msg_1"}}', "message_start"),
    Event('{"type":"content_block_delta","delta":{"text":"Hel"}}', "content_block_delta"),
    Event("line one\nline two"),
    Event('{"type":"message_stop"}', "message_stop"),
]


def test_streams_are_stored_sealed_and_replayed(dev_settings: dict[str, str]) -> None:
    cache = Cache.from_settings(**dev_settings)
    request = Request("tell me a joke", "chat", model="claude")
    assert cache.get_events(request) is None
    assert cache.set_events(request, EVENTS, ttl=60) == 60.0
    assert cache.get_events(request) == EVENTS
    wire = "".join(e.to_sse() for e in EVENTS)
    assert wire.startswith('event: message_start\ndata: {"type":"message_start"')
    assert "data: line one\ndata: line two\n\n" in wire
    # A JSON entry is not a stream, and a stream is not returned as a JSON value.
    assert cache.get(request) is None
    with pytest.raises(sealcache.InvalidRequest):
        cache.set_events(Request("bad", "chat"), [Event("x\ry")])
    with pytest.raises(sealcache.InvalidRequest):
        cache.set_events(Request("bad", "chat"), [Event("x", "a\nb")])
    with pytest.raises(sealcache.InvalidRequest):
        cache.set_events(Request("bad", "chat"), [])

    # Changed in Redis: a miss, never a shorter or reordered stream.
    import redis

    admin = redis.Redis.from_url(dev_settings["redis_url"])
    key = cache.key(request)
    stored = admin.get(key)
    assert isinstance(stored, bytes)
    admin.set(key, stored[:40] + bytes([stored[40] ^ 1]) + stored[41:], px=60_000)
    fresh = Cache.from_settings(l1_capacity=0, **dev_settings)
    assert fresh.get_events(request) is None


def test_streams_replay_as_an_async_iterator(dev_settings: dict[str, str]) -> None:
    async def main() -> list[Event]:
        cache = AsyncCache.from_settings(**dev_settings)
        request = Request("streamed", "chat")
        assert await cache.get_stream(request) is None
        await cache.set_events(request, EVENTS)
        stream = await cache.get_stream(request)
        assert stream is not None
        return [event async for event in stream]

    assert asyncio.run(main()) == EVENTS


def test_a_cancelled_controlled_computation_releases_its_lease_and_a_stream_is_no_value(
    dev_settings: dict[str, str],
) -> None:
    # The lease a `no_cache` computation takes is released when the task is cancelled: another
    # replica computes at once instead of waiting for the lease's 10 s TTL.
    first, second = AsyncCache.from_settings(**dev_settings), AsyncCache.from_settings(**dev_settings)
    request = Request("cancelled while it held the lease", "qa")

    async def slow() -> dict[str, int]:
        await asyncio.sleep(30)
        return {"v": 0}

    async def main() -> float:
        held = asyncio.ensure_future(first.get_or_compute(request, slow, no_cache=True))
        await asyncio.sleep(0.5)
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
        started = time.monotonic()
        async def fresh() -> dict[str, int]:
            return {"v": 1}

        value = await second.get_or_compute(request, fresh, no_cache=True)
        assert value == {"v": 1}
        return time.monotonic() - started

    assert asyncio.run(main()) < 5.0, "the waiter took over without waiting for the TTL"

    # A stored stream is no JSON value: `lookup` misses, `get_or_compute` computes and replaces it.
    cache = Cache.from_settings(**dev_settings)
    streamed = Request("a stream, not a value", "qa")
    cache.set_events(streamed, [Event("one"), Event("two")])
    assert cache.lookup(streamed, max_age=60) is None
    answer = cache.get_or_compute_answer(streamed, lambda: {"v": 2}, max_age=60)
    assert (answer.value, answer.origin) == ({"v": 2}, "computed")
