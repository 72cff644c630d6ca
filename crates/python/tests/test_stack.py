"""The Python package on the hardened stack (TLS + mTLS + ACL Redis, the real server): what Redis
holds, and interoperation with the server both ways."""

from __future__ import annotations

import asyncio
import json
import time

from conftest import Stack

import sealcache
from sealcache import AsyncCache, Cache, Request


def test_the_hardened_stack_is_production_ready(stack: Stack) -> None:
    cache = Cache.from_settings(**stack.settings())
    status = cache.security_status()
    assert status["tls_enabled"] is True, status
    assert status["authenticated_user"] == "cache_app"
    assert status["environment"] == "production"


def test_at_rest_no_text_and_a_flipped_byte_is_a_miss(stack: Stack) -> None:
    # L1 off: every read opens what Redis holds.
    cache = Cache.from_settings(l1_capacity=0, **stack.settings())
    text = "the secret quarterly figures of ACME"
    request = Request(text, "qa", question="what were they?")
    cache.set(request, {"answer": "a private answer about ACME"})
    key = cache.key(request)
    assert key.startswith("ai_cache:v3:qa:") and len(key.rsplit(":", 1)[1]) == 64, key
    admin = stack.admin()
    raw = admin.get(key)
    # Sealed under the default tenant's data key: 0x10, tenant tag (16), subject tag (16, zero:
    # none), data-key id (16), then the v1 envelope (DESIGN.md, data_key.rs).
    assert raw is not None and raw[0] == 0x10, "data-key class"
    assert raw[17:33] == bytes(16), "no subject"
    assert raw[49] == 1, "envelope v1 inside"
    for needle in (b"ACME", b"secret", b"private", b"answer"):
        assert needle not in raw
    assert all(b"ACME" not in k for k in admin.scan_iter(match="ai_cache:*"))
    before = cache.stats()["security_events_by_type"].get("decrypt_failed", 0)
    flipped = bytearray(raw)
    flipped[-1] ^= 0x01
    admin.set(key, bytes(flipped), px=60_000)
    assert cache.get(request) is None
    after = cache.stats()["security_events_by_type"].get("decrypt_failed", 0)
    assert after == before + 1


def test_python_and_the_server_read_each_other_byte_for_byte(stack: Stack) -> None:
    cache = Cache.from_settings(**stack.settings())
    exact = b'{"answer":"caf\\u00e9","n":1.50,"big":123456789012345678901}'
    cache.set_json(Request("from python", "qa"), exact)
    code, body = stack.call("POST", "/v1/cache/lookup", {"text": "from python", "operation": "qa"})
    assert code == 200
    assert body.startswith(b'{"hit":true,"response":' + exact), body
    stored = b'{"from":"server","x":[1,2,3]}'
    code, _ = stack.call(
        "PUT",
        "/v1/cache/entries",
        {"text": "from the server", "operation": "qa", "response": json.loads(stored)},
    )
    assert code == 201
    assert cache.get_json(Request("from the server", "qa")) == stored


def test_an_invalidation_by_the_server_reaches_python_l1_within_a_second(stack: Stack) -> None:
    cache = AsyncCache.from_settings(**stack.settings())

    async def main() -> bool:
        request = Request("coherent", "summarize")
        await cache.set(request, {"v": 1})
        assert await cache.get(request) == {"v": 1}
        answer = await cache.get_or_compute_answer(request, _never)
        assert answer.origin == "l1", answer
        code, _ = await asyncio.to_thread(
            stack.call, "PUT", "/v1/cache/entries", {"text": "coherent", "operation": "summarize", "response": {"v": 2}}
        )
        assert code == 201
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            if await cache.get(request) == {"v": 2}:
                return True
            await asyncio.sleep(0.02)
        return False

    assert asyncio.run(main()), "Python's L1 served the overwritten answer for more than a second"


async def _never() -> None:
    raise AssertionError("computed although cached")


def test_errors_on_the_stack_name_no_secret(stack: Stack) -> None:
    settings = dict(stack.settings(), redis_password="not-the-password-at-all")
    settings.pop("redis_password_file", None)
    cache = Cache.from_settings(**settings)
    try:
        cache.set(Request("t", "qa"), 1)
    except sealcache.Unavailable as e:
        assert "not-the-password" not in str(e)
    else:
        raise AssertionError("a wrong password must refuse the write")


def test_the_template_app_under_uvicorn_workers_calls_the_model_once(stack: Stack, tmp_path: "Path") -> None:
    import os
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    import httpx

    from conftest import free_port

    counter = tmp_path / "calls"
    port = free_port()
    env = dict(os.environ, **stack.env, FAKE_LLM_COUNTER=str(counter))
    env.pop("SEALCACHE_LISTEN", None)
    examples = Path(__file__).resolve().parent.parent / "examples"
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--workers", "2", "--port", str(port), "--log-level", "warning"],
        cwd=examples,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}/summarize"
        deadline = time.monotonic() + 30
        while True:
            try:
                first = httpx.post(url, json={"text": "an identical request"}, timeout=10)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.2)
        assert first.status_code == 200, first.text
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda _: httpx.post(url, json={"text": "an identical request"}, timeout=10), range(24))
            )
        assert all(a.status_code == 200 and a.json() == first.json() for a in answers)
        assert counter.read_text().count("call") == 1, "identical requests call the model once"
    finally:
        server.terminate()
        server.wait(timeout=15)
