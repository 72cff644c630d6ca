"""``SealcacheCache``: a LangChain LLM cache (``langchain_core.caches.BaseCache``) that seals.

    from langchain_core.globals import set_llm_cache
    from sealcache.langchain import SealcacheCache

    set_llm_cache(SealcacheCache())   # settings from the environment, like the server

Needs the ``langchain`` extra (``langchain-core``). Entries live under the operation
``langchain`` (or the one given); ``clear()`` removes exactly those.
"""

from __future__ import annotations

from typing import Any, Sequence

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import Serializable, dumps, loads
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

from . import AsyncCache, Cache, Request
from ._sealcache import CacheCore

__all__ = ["SealcacheCache"]

# What a cached answer may hold: generations and the messages of chat generations, nothing that
# runs code or reads configuration when loaded. (Values are authenticated before they are
# loaded; this is defence in depth.)
_ALLOWED: list[type[Serializable]] = [
    Generation,
    GenerationChunk,
    ChatGeneration,
    ChatGenerationChunk,
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
]


class SealcacheCache(BaseCache):
    """A sealed LangChain cache over Redis; see the module documentation."""

    def __init__(
        self,
        *,
        operation: str = "langchain",
        ttl: float | None = None,
        core: CacheCore | None = None,
        **settings: str,
    ) -> None:
        if core is None:
            core = CacheCore.from_variables(settings, None) if settings else CacheCore.from_env(None)
        self._sync = Cache(core)
        self._async = AsyncCache(core)
        self._operation = operation
        self._ttl = ttl

    def _request(self, prompt: str, llm_string: str) -> Request:
        return Request(prompt, self._operation, {"llm_string": llm_string})

    @staticmethod
    def _decode(value: Any) -> RETURN_VAL_TYPE | None:
        if value is None:
            return None
        generations: Sequence[Any] = loads(value, allowed_objects=_ALLOWED)
        return list(generations)

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return self._decode(self._sync.get(self._request(prompt, llm_string)))

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self._sync.set(self._request(prompt, llm_string), dumps(list(return_val)), self._ttl)

    def clear(self, **kwargs: Any) -> None:
        self._sync.invalidate_operation(self._operation)

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return self._decode(await self._async.get(self._request(prompt, llm_string)))

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        await self._async.set(self._request(prompt, llm_string), dumps(list(return_val)), self._ttl)

    async def aclear(self, **kwargs: Any) -> None:
        await self._async.invalidate_operation(self._operation)
