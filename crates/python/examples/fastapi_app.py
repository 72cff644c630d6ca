"""The README's FastAPI example: one sealed cache per worker, made in the lifespan.

Run: ``uvicorn fastapi_app:app --workers 2`` with the deployment's variables set
(``REDIS_URL``, ``REDIS_PASSWORD_FILE``, ``REDIS_ENCRYPTION_KEYS_FILE``, ``REDIS_TLS_*``).
``FAKE_LLM_COUNTER`` (a file) counts the model calls, for the tests.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI
from pydantic import BaseModel

import sealcache

state: dict[str, sealcache.AsyncCache] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state["cache"] = sealcache.AsyncCache.from_env()
    yield
    await state["cache"].aclose()


app = FastAPI(lifespan=lifespan)


class Ask(BaseModel):
    text: str


async def call_the_model(text: str) -> dict[str, Any]:
    counter = os.environ.get("FAKE_LLM_COUNTER")
    if counter:
        with open(counter, "a") as f:
            f.write("call\n")
    await asyncio.sleep(0.2)
    return {"summary": text[:20]}


@app.post("/summarize")
async def summarize(body: Ask) -> Any:
    request = sealcache.Request(body.text, "summarize", model="fake-llm")
    return await state["cache"].get_or_compute(request, lambda: call_the_model(body.text))
