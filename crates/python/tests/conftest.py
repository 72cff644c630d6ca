"""Fixtures: real ``redis-server`` processes, and the hardened local stack ``cargo xtask test``
starts (TLS + mTLS + ACL Redis and the real ``sealcache-server``), described by
``PYTEST_SEALCACHE_STACK`` (a JSON file: the server's variables with host paths, the API's URL and key,
the admin password file)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PlainRedis:
    """A plaintext ``redis-server`` on loopback (development mode only), killed at the end."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="sealcache-py-")
        self.port = free_port()
        conf = Path(self.dir) / "redis.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {self.dir}\n"
        )
        self.proc = subprocess.Popen(
            ["redis-server", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def plain_redis() -> Iterator[PlainRedis]:
    server = PlainRedis()
    yield server
    server.close()


@pytest.fixture()
def dev_settings(plain_redis: PlainRedis, tmp_path: Path) -> dict[str, str]:
    """Settings of a development cache on the plain Redis, in its own namespace, with a key."""
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return {
        "environment": "development",
        "redis_security_mode": "development",
        "redis_url": plain_redis.url,
        "redis_tls_enabled": "false",
        "redis_encryption_key": key,
        "cache_namespace": "py_" + secrets.token_hex(4),
    }


class Stack:
    """The hardened local stack of ``cargo xtask test``."""

    def __init__(self, description: dict[str, Any]) -> None:
        self.env: dict[str, str] = description["env"]
        self.api: str = description["api"]
        self.api_key: str = description["api_key"]
        self.admin_password: str = description["admin_password"]
        self.redis_port: int = description["redis_port"]

    def settings(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.env.items()}

    def admin(self) -> Any:
        import redis

        return redis.Redis(
            host="localhost",
            port=self.redis_port,
            username="cache_admin",
            password=self.admin_password,
            ssl=True,
            ssl_ca_certs=self.env["REDIS_TLS_CA_PATH"],
            ssl_certfile=self.env["REDIS_TLS_CERT_PATH"],
            ssl_keyfile=self.env["REDIS_TLS_KEY_PATH"],
        )

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        import httpx

        r = httpx.request(
            method,
            self.api + path,
            json=body,
            headers={"Authorization": f"Bearer {self.api_key}", **(headers or {})},
            timeout=10,
        )
        return r.status_code, r.content


@pytest.fixture(scope="session")
def stack() -> Stack:
    path = os.environ.get("PYTEST_SEALCACHE_STACK")
    if not path:
        pytest.fail("PYTEST_SEALCACHE_STACK is not set: run these tests through `cargo xtask test`")
    return Stack(json.loads(Path(path).read_text()))
