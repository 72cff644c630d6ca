"""The Python package against real Redis: the API, errors, single-flight, cancellation, threads,
event loops and fork."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any

import pytest

import sealcache
from sealcache import AsyncCache, Cache, Request


def test_round_trip_and_byte_exact_json(dev_settings: dict[str, str]) -> None:
    cache = Cache.from_settings(**dev_settings)
    request = Request("a document", "summarize", {"b": 2, "a": 1.0}, model="m")
    assert cache.get(request) is None
    used = cache.set(request, {"summary": "short", "n": [1, 2]})
    assert used == 7200.0, "summarize's TTL"
    assert cache.get(request) == {"summary": "short", "n": [1, 2]}
    # Options' order and 1 vs 1.0 do not make another entry.
    assert cache.get(Request("a document", "summarize", {"a": 1, "b": 2}, model="m")) is not None
    exact = b'{"z":1,  "a":"\\u00e9", "big":12345678901234567890}'
    cache.set_json(request, exact, ttl=60)
    assert cache.get_json(request) == exact
    assert cache.key(request).startswith(dev_settings["cache_namespace"] + ":v3:summarize:")
    assert "document" not in cache.key(request)
    assert cache.delete(request) is True
    assert cache.get(request) is None
    for i in range(5):
        cache.set(Request(f"t{i}", "qa"), i)
    assert cache.invalidate_operation("qa") == 5
    assert cache.stats()["l1_entries"] >= 0


def test_errors_are_typed(dev_settings: dict[str, str]) -> None:
    cache = Cache.from_settings(**dev_settings)
    with pytest.raises(sealcache.InvalidRequest) as bad:
        cache.set(Request("t", "Not An Operation!"), 1)
    assert isinstance(bad.value, ValueError)
    with pytest.raises(sealcache.InvalidRequest):
        cache.clear(confirm="yes")
    with pytest.raises(sealcache.InvalidRequest):
        cache.set(Request("t", "qa"), object())
    with pytest.raises(sealcache.InvalidRequest):
        cache.set_json(Request("t", "qa"), b"{not json")
    # Names that cannot be UTF-8 and a negative L1 size are InvalidRequest too (they were
    # UnicodeEncodeError and OverflowError).
    with pytest.raises(sealcache.InvalidRequest):
        cache.tenant("acme\ud800")
    with pytest.raises(sealcache.InvalidRequest):
        cache.tenant("acme").subject("\udfff")
    with pytest.raises(sealcache.InvalidRequest):
        cache.erase_subject("\ud800")
    with pytest.raises(sealcache.InvalidRequest):
        Cache.from_settings(l1_capacity=-1, **dev_settings)
    assert cache.clear(confirm=sealcache.CLEAR_CONFIRMATION) >= 0


def test_production_without_a_keyring_is_refused(dev_settings: dict[str, str]) -> None:
    settings = {
        "environment": "production",
        "redis_url": "rediss://redis.invalid:6379/0",
    }
    with pytest.raises(sealcache.PolicyError) as refused:
        Cache.from_settings(**settings)
    message = str(refused.value)
    assert "REDIS_ENCRYPTION_KEY" in message or "keyring" in message, message


def test_unavailable_redis_is_a_miss_and_a_refused_write(dev_settings: dict[str, str]) -> None:
    settings = dict(dev_settings, redis_url="redis://127.0.0.1:1/0")
    cache = Cache.from_settings(**settings)
    request = Request("t", "qa")
    assert cache.get(request) is None
    with pytest.raises(sealcache.Unavailable) as down:
        cache.set(request, 1)
    assert isinstance(down.value, ConnectionError)


def test_one_computation_for_100_concurrent_callers(dev_settings: dict[str, str]) -> None:
    cache = AsyncCache.from_settings(**dev_settings)
    calls = 0

    async def compute() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return {"answer": 42}

    async def main() -> list[Any]:
        request = Request("popular question", "qa")
        return await asyncio.gather(
            *(cache.get_or_compute_answer(request, compute) for _ in range(100))
        )

    answers = asyncio.run(main())
    assert calls == 1
    assert all(a.value == {"answer": 42} for a in answers)
    assert sorted({a.origin for a in answers}) == ["computed"]
    again = asyncio.run(cache.get_or_compute_answer(Request("popular question", "qa"), compute))
    assert again.origin in ("l1", "redis") and calls == 1


def test_a_failed_computation_reaches_every_waiter_and_is_not_cached(dev_settings: dict[str, str]) -> None:
    cache = AsyncCache.from_settings(**dev_settings)

    async def failing() -> int:
        await asyncio.sleep(0.05)
        raise RuntimeError("the model is down")

    async def main() -> list[Any]:
        request = Request("q", "qa")
        return await asyncio.gather(
            *(cache.get_or_compute(request, failing) for _ in range(5)), return_exceptions=True
        )

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in results), results
    assert asyncio.run(cache.get(Request("q", "qa"))) is None


def test_a_plain_function_given_to_the_async_cache_raises_at_once(dev_settings: dict[str, str]) -> None:
    # Before, asyncio logged a TypeError in a callback and every caller waited forever.
    cache = AsyncCache.from_settings(**dev_settings)

    async def main() -> list[Any]:
        request = Request("plain function", "qa")
        calls = [cache.get_or_compute(request, lambda: 5) for _ in range(3)]  # type: ignore[arg-type, return-value]
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)

    results = asyncio.run(main())
    assert all(isinstance(r, TypeError) and "async callable" in str(r) for r in results), results
    assert asyncio.run(cache.get(Request("plain function", "qa"))) is None


def test_a_cancelled_waiter_leaves_nothing_behind(dev_settings: dict[str, str]) -> None:
    cache = AsyncCache.from_settings(**dev_settings)
    calls = 0

    async def main() -> tuple[str, str]:
        started = asyncio.Event()

        async def compute() -> str:
            nonlocal calls
            calls += 1
            started.set()
            await asyncio.sleep(0.3)
            return "done"

        request = Request("cancel me", "qa")
        leader = asyncio.create_task(cache.get_or_compute(request, compute))
        await started.wait()  # the leader computes: a caller now can only wait
        waiter = asyncio.create_task(cache.get_or_compute(request, compute))
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        value = await leader
        # A cancelled leader: the next caller computes anew (its flight was cleaned up).
        started.clear()
        second = asyncio.create_task(cache.get_or_compute(Request("cancel me too", "qa"), compute))
        await started.wait()
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        return value, await cache.get_or_compute(Request("cancel me too", "qa"), compute)

    first, second = asyncio.run(main())
    assert first == "done" and second == "done"
    assert calls == 3


def test_two_event_loops_in_one_process(dev_settings: dict[str, str]) -> None:
    cache = AsyncCache.from_settings(**dev_settings)
    request = Request("two loops", "qa")
    asyncio.run(cache.set(request, {"loop": 1}))
    assert asyncio.run(cache.get(request)) == {"loop": 1}
    assert asyncio.run(cache.get(request)) == {"loop": 1}


def test_threads_progress_while_redis_is_stopped(plain_redis: Any, dev_settings: dict[str, str]) -> None:
    cache = Cache.from_settings(**dev_settings)
    request = Request("stopped", "qa")
    cache.set(request, 1)
    os.kill(plain_redis.proc.pid, signal.SIGSTOP)
    try:
        durations: list[float] = []
        ticks = 0

        def worker(i: int) -> None:
            started = time.monotonic()
            try:
                cache.set(Request(f"stopped {i}", "qa"), i)
            except sealcache.SealcacheError:
                pass
            durations.append(time.monotonic() - started)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        # The GIL is released while the calls wait: this thread keeps running.
        while any(t.is_alive() for t in threads):
            ticks += 1
            time.sleep(0.01)
        assert ticks > 10
        assert len(durations) == 4
        assert max(durations) < 5.0, durations
    finally:
        os.kill(plain_redis.proc.pid, signal.SIGCONT)


def test_a_forked_child_gets_an_error_not_a_hang(dev_settings: dict[str, str]) -> None:
    cache = Cache.from_settings(**dev_settings)
    cache.set(Request("fork", "qa"), 1)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        try:
            cache.get(Request("fork", "qa"))
            os.write(write, b"no error")
        except sealcache.SealcacheError as e:
            os.write(write, b"error: " + str(e).encode()[:200])
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the forked child hung")
    said = os.read(read, 500)
    assert said.startswith(b"error: ") and b"fork" in said, said


def test_tenants_and_subjects_never_share_and_an_erased_subject_misses_everywhere(
    plain_redis: Any, dev_settings: dict[str, str]
) -> None:
    import redis as redis_py

    one, two = Cache.from_settings(**dev_settings), Cache.from_settings(**dev_settings)
    request = Request("the same question from two customers", "qa")
    acme, globex = one.tenant("acme-corp-7f3a"), one.tenant("globex-91c2")
    acme.set(request, {"answer": "acme's"})
    assert globex.get(request) is None, "another tenant never sees it"
    assert one.get(request) is None, "nor does the default tenant"
    ann = acme.subject("ann.subject@example.com")
    bob = acme.subject("bob.subject@example.com")
    ann.set(request, {"answer": "ann's"})
    bob.set(request, {"answer": "bob's"})
    assert acme.get(request) == {"answer": "acme's"}
    ann_two = two.tenant("acme-corp-7f3a").subject("ann.subject@example.com")
    assert ann_two.get(request) == {"answer": "ann's"}
    # No tenant or subject id reaches Redis, in a key or a value.
    admin = redis_py.Redis.from_url(plain_redis.url)
    for key in admin.scan_iter(match=f"{one.namespace}:*"):
        assert b"acme" not in key and b"ann" not in key, key
        value = admin.get(key) if admin.type(key) == b"string" else b""
        assert b"acme-corp" not in (value or b"") and b"ann.subject" not in (value or b"")
    erased = acme.erase_subject("ann.subject@example.com")
    assert erased.data_key_id is not None and erased.data_keys_destroyed == 1
    assert erased.erased_at > time.time() - 60
    assert ann.get(request) is None, "erased here"
    # Within a second by the coherence channel; 3 s leaves room for a loaded 2-core machine.
    deadline = time.monotonic() + 3.0
    while ann_two.get(request) is not None:
        assert time.monotonic() < deadline, "and in the other process"
        time.sleep(0.02)
    assert bob.get(request) == {"answer": "bob's"}, "another subject's stay"
    gone = acme.erase_tenant()
    assert gone.data_keys_destroyed >= 2
    assert bob.get(request) is None and acme.get(request) is None
    assert globex.get(request) is None
    with pytest.raises(sealcache.InvalidRequest):
        one.tenant("")
