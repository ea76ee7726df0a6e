"""Recommendation scenarios (`python -m bench --only recommendations`): recommendedForYou signed in, through the
router (the catalog resolves each product's name and price) and straight to the recommendations subgraph (ids
only: the subgraph's own cost, whose target is p99 <= 20 ms). The shopper first views a few demo products, so the
answer is personal (the model's scoring path), not the popular fallback."""
from __future__ import annotations

import asyncio
import time

import httpx

from bench.httpload import LoadResult, graphql_body, run_load

FOR_YOU_VIA_ROUTER = "query ForYou { recommendedForYou(first: 10) { id name minPrice { amount currency } } }"
FOR_YOU_DIRECT = "query ForYouIds { recommendedForYou(first: 10) { id } }"
TRACK = "mutation($input: TrackInteractionInput!) { trackInteraction(input: $input) }"
LISTED = "query($first: Int) { products(first: $first) { edges { node { id } } } }"
VIEWED = 5


async def _view_some_products(router_url: str, token: str) -> None:
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=10) as http:
        listed = (await http.post(router_url, json={"query": LISTED, "variables": {"first": VIEWED}})).json()
        # The seeded catalogue reaches recommendations through Kafka after the seed: NOT_FOUND until it has.
        deadline = time.monotonic() + 120
        for edge in listed["data"]["products"]["edges"]:
            while True:
                answer = (await http.post(router_url, headers=headers, json={
                    "query": TRACK, "variables": {"input": {"productId": edge["node"]["id"], "kind": "VIEW",
                                                            "source": "bench"}}})).json()
                errors = answer.get("errors")
                if not errors:
                    break
                if errors[0].get("extensions", {}).get("code") != "NOT_FOUND" or time.monotonic() > deadline:
                    raise RuntimeError(f"trackInteraction failed: {errors[0]}")
                await asyncio.sleep(0.5)


async def recommendations_scenarios(router_url: str, subgraph_url: str, token: str, concurrency: int,
                                    duration: float) -> list[LoadResult]:
    await _view_some_products(router_url, token)
    headers = {"authorization": f"Bearer {token}"}

    def via_router(_: int) -> tuple[bytes, dict[str, str]]:
        return graphql_body(FOR_YOU_VIA_ROUTER), headers

    def direct(_: int) -> tuple[bytes, dict[str, str]]:
        return graphql_body(FOR_YOU_DIRECT), headers

    return [
        await run_load("recommendedForYou via router, signed in", router_url, via_router, concurrency=concurrency,
                       duration=duration),
        await run_load("recommendedForYou direct to recommendations", subgraph_url, direct,
                       concurrency=concurrency, duration=duration),
    ]
