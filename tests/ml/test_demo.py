"""Demo shoppers look like shop traffic: deterministic, browsing within favourite categories, a funnel from views
to purchases, accessories bought along, a popularity skew, all within the last 60 days."""
from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from ml.demo import demo_catalogue, simulate_shoppers
from ml.train import KINDS, Interaction, Item

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalogue() -> list[Item]:
    return demo_catalogue(products=150, seed=2)


@pytest.fixture(scope="module")
def shoppers(catalogue) -> list[Interaction]:
    return simulate_shoppers(catalogue, shoppers=300, seed=2, now=NOW)


def by_subject(interactions: list[Interaction]) -> dict[str, list[Interaction]]:
    grouped: dict[str, list[Interaction]] = defaultdict(list)
    for interaction in interactions:
        grouped[interaction.subject].append(interaction)
    return grouped


def test_the_same_seed_gives_the_same_shoppers_and_another_seed_others(catalogue, shoppers) -> None:
    assert simulate_shoppers(catalogue, shoppers=300, seed=2, now=NOW) == shoppers
    assert simulate_shoppers(catalogue, shoppers=300, seed=3, now=NOW) != shoppers
    later = simulate_shoppers(catalogue, shoppers=300, seed=2, now=NOW + timedelta(days=1))
    assert [(i.subject, i.product_id, i.kind) for i in later] == [(i.subject, i.product_id, i.kind) for i in shoppers]


def test_shoppers_are_signed_in_users_or_anonymous_sessions_within_the_last_60_days(shoppers) -> None:
    subjects = by_subject(shoppers)
    assert len(subjects) == 300
    prefixes = Counter(subject.split(":", 1)[0] for subject in subjects)
    assert set(prefixes) == {"user", "session"} and prefixes["user"] > prefixes["session"]
    assert {i.kind for i in shoppers} <= set(KINDS)
    assert all(NOW - timedelta(days=61) <= i.occurred_at <= NOW for i in shoppers)
    assert [i.occurred_at for i in shoppers] == sorted(i.occurred_at for i in shoppers)


def test_each_shopper_browses_mostly_within_one_or_two_categories(catalogue, shoppers) -> None:
    category = {item.product_id: item.category_id for item in catalogue}
    shares = []
    for events in by_subject(shoppers).values():
        views = Counter(category[i.product_id] for i in events if i.kind == "VIEW")
        shares.append(sum(count for _, count in views.most_common(2)) / sum(views.values()))
    assert sum(shares) / len(shares) > 0.85  # 8 categories: spread evenly, two would hold about a quarter


def test_purchases_follow_carts_and_carts_follow_views(shoppers) -> None:
    kinds = Counter(i.kind for i in shoppers)
    assert kinds["VIEW"] > kinds["ADD_TO_CART"] > kinds["PURCHASE"] > 0 and kinds["CLICK"] > 0
    for events in by_subject(shoppers).values():
        seen: set[int] = set()
        carted: set[int] = set()
        for event in events:
            if event.kind == "VIEW":
                seen.add(event.product_id)
            elif event.kind == "ADD_TO_CART":
                assert event.product_id in seen
                carted.add(event.product_id)
            elif event.kind == "PURCHASE":
                assert event.product_id in carted


def test_accessories_are_bought_along_often_of_the_same_brand(catalogue, shoppers) -> None:
    item = {i.product_id: i for i in catalogue}
    pairs = []
    for events in by_subject(shoppers).values():
        purchases = [e for e in events if e.kind == "PURCHASE"]
        pairs += [(a, b) for a, b in itertools.pairwise(purchases)
                  if b.occurred_at - a.occurred_at < timedelta(hours=1)]
    assert len(pairs) > 50
    other_category = [item[a.product_id].category_id != item[b.product_id].category_id for a, b in pairs]
    same_brand = [item[a.product_id].brand == item[b.product_id].brand for a, b in pairs]
    assert sum(other_category) / len(pairs) > 0.5
    assert sum(same_brand) / len(pairs) > 0.3  # 10 brands: by chance about 0.1


def test_a_few_products_draw_much_of_the_attention(catalogue, shoppers) -> None:
    views = Counter(i.product_id for i in shoppers if i.kind == "VIEW")
    top_tenth = sum(count for _, count in views.most_common(len(catalogue) // 10))
    assert top_tenth / sum(views.values()) > 0.25  # uniform would be 0.1


def test_no_items_no_shoppers() -> None:
    assert simulate_shoppers([], shoppers=10) == []
