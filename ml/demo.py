"""Demo shoppers: interactions with the structure real shop traffic has, for a platform that has none yet.

Each simulated shopper favours one or two categories and browses in a few sessions over the last 60 days: most
views fall in the favourite categories, a view sometimes leads to an add-to-cart and a cart often to a purchase,
and a purchase often brings an accessory along (a product of the paired "accessory" category, of the same brand
when there is one). Products are drawn with a Zipf-like popularity skew. The same arguments give the same
interactions (`now` only moves the timestamps).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from ml.train import Interaction, Item

__all__ = ["Interaction", "Item", "demo_catalogue", "simulate_shoppers"]

HISTORY = timedelta(days=60)
FAVOURITE_SHARE = 0.85  # of views within the shopper's favourite categories
CLICK_RATE = 0.25  # a view that came from a click (a recommendation, a search result)
CART_RATE = 0.2
WISHLIST_RATE = 0.03
PURCHASE_RATE = 0.6  # of carted products, at the end of the session
ACCESSORY_RATE = 0.6  # of purchases, an accessory bought along
SAME_BRAND_RATE = 0.7  # of accessories, of the purchased product's brand when the accessory category has it
USER_SHARE = 0.7  # shoppers signed in; the others are anonymous sessions
BRANDS = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell", "cyberdyne")


def demo_catalogue(products: int = 150, categories: int = 8, seed: int = 0) -> list[Item]:
    """Products 1..`products` spread over categories 1..`categories`, with brands, prices and a tag or two."""
    rng = np.random.default_rng(seed)
    items = []
    for product_id in range(1, products + 1):
        category = int(rng.integers(1, categories + 1))
        tags = tuple(sorted({f"tag{int(t)}" for t in rng.integers(0, 12, size=int(rng.integers(0, 3)))}))
        items.append(Item(product_id=product_id, category_id=category, brand=str(rng.choice(BRANDS)),
                          price=round(float(rng.lognormal(3.5, 0.8)), 2), tags=tags))
    return items


def simulate_shoppers(items: Sequence[Item], shoppers: int = 300, seed: int = 0,
                      now: datetime | None = None) -> list[Interaction]:
    """Interactions of `shoppers` simulated shoppers over `items`, oldest first."""
    if not items:
        return []
    now = now or datetime.now(UTC)
    rng = np.random.default_rng(seed)
    shop = _Shop(items, rng)
    events: list[Interaction] = []
    for number in range(1, shoppers + 1):
        subject = f"user:{number}" if rng.random() < USER_SHARE else f"session:{int(rng.integers(16 ** 12)):012x}"
        favourites = shop.favourites()
        starts = sorted(now - HISTORY * float(rng.random()) for _ in range(int(rng.integers(1, 5))))
        for start in starts:
            events += shop.session(subject, favourites, start)
    events.sort(key=lambda e: (e.occurred_at, e.subject))
    return [e for e in events if e.occurred_at <= now]


class _Shop:
    def __init__(self, items: Sequence[Item], rng: np.random.Generator) -> None:
        self.rng = rng
        self.items = list(items)
        # Zipf-like popularity over a random order of the products.
        self.weight = 1.0 / (1.0 + rng.permutation(len(self.items))) ** 0.8
        self.members: dict[int | None, list[int]] = defaultdict(list)
        for index, item in enumerate(self.items):
            self.members[item.category_id].append(index)
        self.categories = sorted(self.members, key=lambda c: (c is None, c or 0))
        order = [self.categories[i] for i in rng.permutation(len(self.categories))]
        # Categories in pairs (console and controller): each is the other's accessory category.
        self.accessory_of: dict[int | None, int | None] = {}
        for first, second in zip(order[::2], order[1::2], strict=False):
            self.accessory_of[first], self.accessory_of[second] = second, first
        if len(order) % 2:
            self.accessory_of[order[-1]] = order[0]

    def favourites(self) -> list[int | None]:
        sizes = np.array([len(self.members[c]) for c in self.categories], dtype=np.float64)
        count = min(int(self.rng.integers(1, 3)), len(self.categories))
        chosen = self.rng.choice(len(self.categories), size=count, replace=False, p=sizes / sizes.sum())
        return [self.categories[int(c)] for c in chosen]

    def pick(self, candidates: Sequence[int]) -> int:
        weights = self.weight[list(candidates)]
        return int(candidates[int(self.rng.choice(len(candidates), p=weights / weights.sum()))])

    def session(self, subject: str, favourites: list[int | None], start: datetime) -> list[Interaction]:
        rng = self.rng
        clock = start
        events: list[Interaction] = []

        def record(index: int, kind: str) -> None:
            nonlocal clock
            clock += timedelta(seconds=float(rng.uniform(20, 300)))
            events.append(Interaction(subject, self.items[index].product_id, kind, clock))

        carted: list[int] = []
        for _ in range(int(rng.integers(3, 11))):
            if rng.random() < FAVOURITE_SHARE:
                index = self.pick(self.members[favourites[int(rng.integers(len(favourites)))]])
            else:
                index = self.pick(range(len(self.items)))
            if rng.random() < CLICK_RATE:
                record(index, "CLICK")
            record(index, "VIEW")
            if rng.random() < WISHLIST_RATE:
                record(index, "WISHLIST")
            if rng.random() < CART_RATE and index not in carted:
                record(index, "ADD_TO_CART")
                carted.append(index)
        for index in carted:
            if rng.random() >= PURCHASE_RATE:
                continue
            record(index, "PURCHASE")
            if rng.random() < ACCESSORY_RATE:
                accessory = self.accessory(index)
                if accessory is not None:
                    record(accessory, "VIEW")
                    record(accessory, "ADD_TO_CART")
                    record(accessory, "PURCHASE")
        return events

    def accessory(self, index: int) -> int | None:
        item = self.items[index]
        candidates = [i for i in self.members[self.accessory_of.get(item.category_id)] if i != index]
        if not candidates:
            return None
        same_brand = [i for i in candidates if item.brand and self.items[i].brand == item.brand]
        if same_brand and self.rng.random() < SAME_BRAND_RATE:
            return self.pick(same_brand)
        return self.pick(candidates)
