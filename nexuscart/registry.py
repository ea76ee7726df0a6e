"""The subgraphs this platform runs: where their app, schema and migrations live, and default ports."""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any


@dataclasses.dataclass(frozen=True)
class Subgraph:
    name: str
    port: int
    workers: int = 1  # uvicorn processes; NEXUSCART_<NAME>_WORKERS overrides

    @property
    def app_factory(self) -> str:
        return f"subgraphs.{self.name}.app:build_app"

    @property
    def migrations_package(self) -> str:
        return f"subgraphs.{self.name}.migrations"

    def schema(self) -> Any:
        return importlib.import_module(f"subgraphs.{self.name}.schema").schema


SUBGRAPHS: tuple[Subgraph, ...] = (
    # Two users workers: every federated browse request fans out to users for `seller`, and on two cores
    # a second process measurably cut the router p99 (bench: 302 -> 346 req/s, p99 109 -> 63 ms).
    Subgraph("users", 4001, workers=2),
    # Catalog executes the browse pages (~360 fields each on a miss); a second process lets both cores
    # execute them (bench: uncached browse 80 -> 119 req/s, direct cached 1,400 -> 2,500 req/s).
    Subgraph("catalog", 4002, workers=2),
    Subgraph("cart", 4003),
    Subgraph("inventory", 4004),
    Subgraph("orders", 4005),
    Subgraph("payments", 4006),
    # Flash-sale purchases are the hottest write path (thousands of attempts per second at a sale's start).
    Subgraph("promotions", 4007, workers=2),
    # Search executes ~4 ms of Python per query (facets, highlights); a second process lets both cores do it
    # (bench, search with facets: via router 104 -> 166 req/s, p99 298 -> 196 ms; direct 190 -> 288 req/s).
    Subgraph("search", 4008, workers=2),
    Subgraph("partners", 4009),
    Subgraph("reviews", 4010),
    Subgraph("notifications", 4011),
    Subgraph("shipping", 4012),
    Subgraph("recommendations", 4013),
)


def migration_plan() -> dict[str, str]:
    return {s.name: s.migrations_package for s in SUBGRAPHS}


def get_subgraph(name: str) -> Subgraph:
    for subgraph in SUBGRAPHS:
        if subgraph.name == name:
            return subgraph
    raise SystemExit(f"unknown subgraph {name!r}; known: {', '.join(s.name for s in SUBGRAPHS)}")
