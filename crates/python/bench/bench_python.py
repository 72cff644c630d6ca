"""`cargo xtask bench python`: the Python package against redis-py and the template's own path.

On one plain loopback `redis-server` (started here), per corpus size class (small, medium,
large from ../shared/bench/corpus.jsonl):
  * sealcache `Cache.set` / `Cache.get` (sealed: zstd + AES-256-GCM, L1 off so every get reads
    Redis; and with L1 on, the hit path);
  * redis-py raw `SET` / `GET` of the same JSON (no sealing: the floor);
  * the template's own path, run in this process: JSON, zlib, Fernet, redis-py `SET`/`GET`.
Prints p50 latencies (µs) and single-thread throughput (ops/s), and the same as JSON with --json.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable

ROUNDS = 400


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(fn: Callable[[int], Any], n: int) -> tuple[float, float]:
    """p50 in µs and throughput in ops/s of n calls."""
    samples = []
    started = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    return statistics.median(samples) * 1e6, n / total


def main() -> None:
    import redis
    from cryptography.fernet import Fernet

    import sealcache

    corpus = Path(sys.argv[1])
    as_json = "--json" in sys.argv
    docs: dict[str, list[dict[str, Any]]] = {}
    for line in corpus.read_text().splitlines():
        d = json.loads(line)
        docs.setdefault(d["size_class"], []).append(d)

    workdir = tempfile.mkdtemp(prefix="sealcache-bench-")
    port = free_port()
    conf = Path(workdir) / "redis.conf"
    conf.write_text(f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\ndir {workdir}\n')
    server = subprocess.Popen(["redis-server", str(conf)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        settings = {
            "environment": "development",
            "redis_security_mode": "development",
            "redis_url": f"redis://127.0.0.1:{port}/0",
            "redis_tls_enabled": "false",
            "redis_encryption_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
        sealed = sealcache.Cache.from_settings(l1_capacity=0, **settings)
        with_l1 = sealcache.Cache.from_settings(**dict(settings, cache_namespace="bench_l1"))
        raw = redis.Redis(host="127.0.0.1", port=port)
        fernet = Fernet(Fernet.generate_key())
        results = []
        for size_class in ("small", "medium", "large"):
            items = docs.get(size_class, [])
            if not items:
                continue
            values = [items[i % len(items)] for i in range(ROUNDS)]
            texts = [json.dumps(v) for v in values]
            requests = [sealcache.Request(f"bench {size_class} {i}", "summarize") for i in range(ROUNDS)]
            row: dict[str, Any] = {"size_class": size_class, "bytes": statistics.median(len(t) for t in texts)}
            row["sealcache_set_p50_us"], row["sealcache_set_ops"] = timed(
                lambda i: sealed.set_json(requests[i], texts[i]), ROUNDS
            )
            row["sealcache_get_p50_us"], row["sealcache_get_ops"] = timed(
                lambda i: sealed.get_json(requests[i]), ROUNDS
            )
            for i in range(ROUNDS):
                with_l1.set_json(requests[i], texts[i])
            row["sealcache_l1_get_p50_us"], row["sealcache_l1_get_ops"] = timed(
                lambda i: with_l1.get_json(requests[i]), ROUNDS
            )
            row["redis_py_set_p50_us"], row["redis_py_set_ops"] = timed(
                lambda i: raw.set(f"raw:{size_class}:{i}", texts[i], px=60_000), ROUNDS
            )
            row["redis_py_get_p50_us"], row["redis_py_get_ops"] = timed(
                lambda i: raw.get(f"raw:{size_class}:{i}"), ROUNDS
            )

            def template_set(i: int) -> None:
                token = fernet.encrypt(zlib.compress(texts[i].encode()))
                raw.set(f"tpl:{size_class}:{i}", token, px=60_000)

            def template_get(i: int) -> Any:
                token = raw.get(f"tpl:{size_class}:{i}")
                return json.loads(zlib.decompress(fernet.decrypt(token)))

            row["template_set_p50_us"], row["template_set_ops"] = timed(template_set, ROUNDS)
            row["template_get_p50_us"], row["template_get_ops"] = timed(template_get, ROUNDS)
            results.append(row)
    finally:
        server.kill()
        server.wait()

    if as_json:
        print(json.dumps(results, indent=2))
        return
    print(f"Python bench ({ROUNDS} ops per cell, single thread, loopback redis-server, p50 µs / ops/s)")
    header = "| size | sealcache set | sealcache get (Redis) | sealcache get (L1) | redis-py SET | redis-py GET | template set | template get |"
    print(header)
    print("|" + "---|" * 8)
    for r in results:
        cells = [
            f"{r[p + '_p50_us']:.0f} / {r[p + '_ops']:.0f}"
            for p in (
                "sealcache_set",
                "sealcache_get",
                "sealcache_l1_get",
                "redis_py_set",
                "redis_py_get",
                "template_set",
                "template_get",
            )
        ]
        print(f"| {r['size_class']} ({r['bytes']:.0f} B) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
