"""The template drop-in and the LangChain adapter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import sealcache
from sealcache.compat import AIResponseCache, SecureAIResponseCache


def test_the_template_flow(dev_settings: dict[str, str]) -> None:
    assert SecureAIResponseCache is AIResponseCache

    async def main() -> None:
        cache = AIResponseCache(**dev_settings)
        assert await cache.connect() is True
        options: dict[str, Any] = {"max_length": 100}
        assert await cache.get_cached_response("doc", "summarize", options) is None
        await cache.cache_response("doc", "summarize", options, {"summary": "s"})
        assert await cache.get_cached_response("doc", "summarize", options) == {"summary": "s"}
        key = cache.build_key("doc", "summarize", options)
        assert "doc" not in key
        assert await cache.get(key) == {"summary": "s"}
        assert await cache.exists(key) is True
        await cache.set("my-explicit-key", {"x": 1}, ttl=60)
        assert await cache.get("my-explicit-key") == {"x": 1}
        assert await cache.delete("my-explicit-key") is True
        assert await cache.exists("my-explicit-key") is False
        assert await cache.invalidate_by_operation("summarize") == 1
        with pytest.raises(sealcache.InvalidRequest):
            await cache.invalidate_pattern("")
        await cache.cache_response("q", "qa", {}, {"a": 1})
        assert await cache.invalidate_pattern("qa") == 1
        assert await cache.invalidate_pattern("", allow_clear_all=True) >= 0
        stats = await cache.get_cache_stats()
        assert stats["redis"]["status"] == "connected"
        assert stats["performance"]["hits"] >= 2
        assert set(stats) == {"redis", "memory", "performance"}
        await cache.disconnect()

    asyncio.run(main())


def test_the_langchain_cache(dev_settings: dict[str, str]) -> None:
    from langchain_core.outputs import Generation

    from sealcache.langchain import SealcacheCache

    lc = SealcacheCache(**dev_settings)
    assert lc.lookup("prompt", "llm") is None
    lc.update("prompt", "llm", [Generation(text="hello")])
    found = lc.lookup("prompt", "llm")
    assert found is not None and found[0].text == "hello"
    assert lc.lookup("prompt", "another llm") is None
    other = sealcache.Cache.from_settings(**dev_settings)
    other.set(sealcache.Request("not langchain", "qa"), 1)
    lc.clear()
    assert lc.lookup("prompt", "llm") is None
    assert other.get(sealcache.Request("not langchain", "qa")) == 1, "clear removes only the adapter's"

    async def main() -> None:
        await lc.aupdate("p2", "llm", [Generation(text="async")])
        got = await lc.alookup("p2", "llm")
        assert got is not None and got[0].text == "async"
        await lc.aclear()
        assert await lc.alookup("p2", "llm") is None

    asyncio.run(main())
