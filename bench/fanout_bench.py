"""Subscription fan-out: 1,000 `flashSaleStock` subscribers of one sale through the router, each on its own
WebSocket (graphql-transport-ws), and the latency from a purchase's answer to each subscriber's update.

The sale is opened as the flash-sale bench opens one (bench/flash_sale_bench.py). Once every subscriber has its
first value, purchases are made one at a time through the router; for each, the clock runs from the purchase's
answer to the moment each subscriber receives a remaining stock at or below the one the purchase reported.
`flashSaleStock` coalesces changes into at most one update per FLASH_SALE_STOCK_PUSH_INTERVAL_SECONDS (0.25 s
by default), so that interval is part of every figure. Reported as one row: updates delivered per second,
p50 / p99 fan-out latency, errors = updates never delivered (or subscription errors).
"""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable

import httpx
import orjson
import websockets
from websockets.typing import Subprotocol

from bench.flash_sale_bench import PURCHASE, _issue_tokens, _open_sale
from bench.httpload import LoadResult, post_graphql

SUBSCRIBERS = 1_000
CHANGES = 10
STREAM = "subscription($id: ID!) { flashSaleStock(saleId: $id) }"


class _Subscriber:
    def __init__(self) -> None:
        self.values: list[tuple[int, float]] = []  # (remaining stock, perf_counter when received)
        self.errors: list[object] = []
        self.changed = asyncio.Event()

    async def run(self, ws_url: str, sale_id: str) -> None:
        try:
            async with websockets.connect(ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], max_queue=None,
                                          open_timeout=60) as ws:
                await ws.send(orjson.dumps({"type": "connection_init", "payload": {}}).decode())
                await ws.recv()
                await ws.send(orjson.dumps({"id": "1", "type": "subscribe", "payload": {
                    "query": STREAM, "variables": {"id": sale_id}}}).decode())
                async for raw in ws:
                    message = orjson.loads(raw)
                    if message["type"] == "next" and not message["payload"].get("errors"):
                        self.values.append((int(message["payload"]["data"]["flashSaleStock"]), time.perf_counter()))
                    elif message["type"] != "pong":
                        self.errors.append(message)
                    self.changed.set()
        except (OSError, websockets.WebSocketException) as exc:
            self.errors.append(repr(exc))
            self.changed.set()

    def first_at_or_below(self, stock: int) -> float | None:
        return next((at for value, at in self.values if value <= stock), None)

    async def until(self, stock: int) -> None:
        while self.first_at_or_below(stock) is None and not self.errors:
            self.changed.clear()
            await self.changed.wait()


async def fanout_scenario(router_url: str, promotions_url: str, admin: str, buyer_token: Callable[[int], str], *,
                          subscribers: int = SUBSCRIBERS, changes: int = CHANGES) -> LoadResult:
    name = f"flashSaleStock fan-out, {subscribers} WebSocket subscribers via router"
    async with httpx.AsyncClient(timeout=60) as http:
        sale_id = await _open_sale(http, router_url, admin)
        pairs = await _issue_tokens(promotions_url, sale_id, [buyer_token(900_000 + n) for n in range(changes)],
                                    changes)
        clients = [_Subscriber() for _ in range(subscribers)]
        ws_url = router_url.replace("http://", "ws://")
        tasks: list[asyncio.Task[None]] = []
        for client in clients:  # opened in waves, as a crowd arrives, not as one SYN flood
            tasks.append(asyncio.create_task(client.run(ws_url, sale_id)))
            if len(tasks) % 50 == 0:
                await asyncio.sleep(0.05)
        latencies: list[float] = []
        missed = 0
        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.gather(*(c.until(10**9) for c in clients)), timeout=180)
            for access, token in pairs:
                answer = await post_graphql(http, router_url, PURCHASE, {"id": sale_id, "token": token,
                                                                 "key": uuid.uuid4().hex}, token=access)
                sent_at = time.perf_counter()
                remaining = int(answer["purchaseFlashSale"]["remainingStock"])
                with contextlib.suppress(TimeoutError):  # what did not arrive is counted below as missed
                    await asyncio.wait_for(asyncio.gather(*(c.until(remaining) for c in clients)), timeout=30)
                for client in clients:
                    at = client.first_at_or_below(remaining)
                    if at is None:
                        missed += 1
                    else:
                        latencies.append(max(0.0, at - sent_at) * 1000)
        except TimeoutError:
            missed += sum(1 for c in clients if not c.values) * changes
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        errors = missed + sum(1 for c in clients if c.errors)
        sample = next((str(c.errors[0])[:200] for c in clients if c.errors), None)
        return LoadResult(name=name, concurrency=subscribers, seconds=time.perf_counter() - started,
                          latencies_ms=latencies, errors=errors, sample_error=sample)
