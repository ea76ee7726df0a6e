"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending the next request
as soon as the previous answer arrives. Exact per-request latencies (no histogram buckets), and cheap
enough on the CPU to share a 2-core machine with the system under test."""
from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from bench.cpu import CpuProbe, cpu_ms_per_request

if TYPE_CHECKING:
    import httpx


@dataclasses.dataclass
class LoadResult:
    name: str
    concurrency: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    sample_error: str | None = None
    cpu_ms: dict[str, float] | None = None  # CPU per request per process group (bench/cpu.py), when probed
    details: list[str] = dataclasses.field(default_factory=list)  # more lines under the row (e.g. statements)

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def row(self) -> str:
        row = (f"{self.name:<50} c={self.concurrency:<4} {self.rps:>9.1f} req/s  p50 {self.percentile(50):>7.2f} ms"
               f"  p99 {self.percentile(99):>7.2f} ms  errors {self.errors}")
        if self.cpu_ms:
            row += "\n    CPU ms/request: " + ", ".join(f"{name} {ms:.2f}" for name, ms in self.cpu_ms.items())
        return "\n".join([row, *(f"    {line}" for line in self.details)])

    def as_dict(self) -> dict:
        return {"name": self.name, "concurrency": self.concurrency, "requests": self.requests,
                "rps": round(self.rps, 1), "p50_ms": round(self.percentile(50), 2),
                "p99_ms": round(self.percentile(99), 2), "mean_ms": round(statistics.fmean(self.latencies_ms), 2)
                if self.latencies_ms else None, "errors": self.errors, "cpu_ms_per_request": self.cpu_ms,
                "details": self.details}


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed")
    status = int(status_line.split(b" ", 2)[1])
    length, chunked = None, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body = bytearray()
        while True:
            size = int((await reader.readline()).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            body += await reader.readexactly(size)
            await reader.readline()
        return status, bytes(body)
    return status, await reader.readexactly(length or 0)


RequestFactory = Callable[[int], tuple[bytes, dict[str, str]]]  # worker-local counter -> (json body, headers)
ResponseCheck = Callable[[dict], str | None]  # parsed body -> error text or None


def graphql_ok(body: dict) -> str | None:
    return orjson.dumps(body["errors"][0]).decode()[:300] if body.get("errors") else None


_cpu_probe: CpuProbe | None = None


def probe_cpu_with(probe: CpuProbe | None) -> None:
    """Every following run_load also reports CPU per request per process (bench/cpu.py)."""
    global _cpu_probe  # one probe per bench process, set once by bench/run.py
    _cpu_probe = probe


def cpu_snapshot() -> dict[str, float] | None:
    """CPU seconds per process group so far (None without a probe), for windows other than one load run."""
    return _cpu_probe.snapshot() if _cpu_probe is not None else None


async def run_load(name: str, url: str, make_request: RequestFactory, *, concurrency: int, duration: float,
                   check: ResponseCheck = graphql_ok, warmup: float = 1.0) -> LoadResult:
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    latencies: list[float] = []
    errors = 0
    sample_error: str | None = None
    start_measuring = time.perf_counter() + warmup
    stop_at = start_measuring + duration

    async def worker(worker_id: int) -> None:
        nonlocal errors, sample_error
        reader, writer = await asyncio.open_connection(host, port)
        counter = 0
        try:
            while True:
                now = time.perf_counter()
                if now >= stop_at:
                    return
                body, headers = make_request(worker_id * 1_000_000 + counter)
                counter += 1
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\ncontent-type: application/json\r\n"
                           f"accept: application/json\r\ncontent-length: {len(body)}\r\n{head}\r\n").encode() + body
                sent = time.perf_counter()
                writer.write(request)
                status, payload = await _read_response(reader)
                elapsed_ms = (time.perf_counter() - sent) * 1000
                if sent < start_measuring:
                    continue
                problem = f"HTTP {status}" if status >= 400 else check(orjson.loads(payload))
                if problem:
                    errors += 1
                    sample_error = sample_error or problem
                latencies.append(elapsed_ms)
        finally:
            writer.close()

    async def cpu_window() -> tuple[dict[str, float], dict[str, float]] | None:
        if _cpu_probe is None:
            return None
        await asyncio.sleep(max(0.0, start_measuring - time.perf_counter()))  # the measured window's start
        before = _cpu_probe.snapshot()
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        return before, _cpu_probe.snapshot()

    window, *_ = await asyncio.gather(cpu_window(), *(worker(i) for i in range(concurrency)))
    cpu = cpu_ms_per_request(*window, len(latencies)) if window else None
    return LoadResult(name, concurrency, duration, latencies, errors, sample_error, cpu)


def graphql_body(query: str, variables: dict | None = None) -> bytes:
    return orjson.dumps({"query": query, "variables": variables or {}})


async def post_graphql(http: httpx.AsyncClient, url: str, query: str, variables: dict[str, Any] | None = None,
                       token: str | None = None) -> dict[str, Any]:
    """A benchmark's setup request: its data, or RuntimeError with the first GraphQL error."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body = (await http.post(url, json={"query": query, "variables": variables or {}}, headers=headers)).json()
    if body.get("errors"):
        raise RuntimeError(f"benchmark setup failed: {body['errors'][0]}")
    return body["data"]
