"""The served model answers like a shop needs: personalised by the recent items, at once, within the caller's
exclusions, with popular items for a cold start, co-viewed items as similar and co-purchased items as bought
together. Trained on simulated shoppers (ml.demo) plus a few hand-made subjects whose signal is known."""
from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from ml.demo import demo_catalogue, simulate_shoppers
from ml.serving import ServingModel
from ml.train import Interaction, Item, train

NOW = datetime(2026, 3, 1, tzinfo=UTC)
UNKNOWN = 10_000_000


@pytest.fixture(scope="module")
def catalogue() -> list[Item]:
    return demo_catalogue(products=150, seed=3)


@pytest.fixture(scope="module")
def shoppers(catalogue) -> list[Interaction]:
    return simulate_shoppers(catalogue, shoppers=300, seed=3, now=NOW)


@pytest.fixture(scope="module")
def least_popular(shoppers, catalogue) -> list[int]:
    """Products in increasing order of demo interest: hand-made signal on them is not drowned by the demo's."""
    counts = Counter(i.product_id for i in shoppers)
    return sorted((item.product_id for item in catalogue), key=lambda p: (counts[p], p))


@pytest.fixture(scope="module")
def planted(least_popular) -> dict[str, int]:
    """Four rarely touched products: `anchor` is co-viewed with `viewed_a` and `viewed_b`, and bought with
    `bought`."""
    anchor, viewed_a, viewed_b, bought = least_popular[:4]
    return {"anchor": anchor, "viewed_a": viewed_a, "viewed_b": viewed_b, "bought": bought}


@pytest.fixture(scope="module")
def model(catalogue, shoppers, planted) -> ServingModel:
    extra = []
    for n in range(15):
        at = NOW - timedelta(days=2, hours=n)
        for step, product in enumerate((planted["anchor"], planted["viewed_a"], planted["viewed_b"])):
            extra.append(Interaction(f"session:covisit{n}", product, "VIEW", at + timedelta(minutes=step)))
        for step, (product, kind) in enumerate([(planted["anchor"], "ADD_TO_CART"), (planted["bought"], "ADD_TO_CART"),
                                                (planted["anchor"], "PURCHASE"), (planted["bought"], "PURCHASE")]):
            extra.append(Interaction(f"user:buyer{n}", product, kind, at + timedelta(minutes=step)))
    return train(shoppers + extra, catalogue, seed=0).model


@pytest.fixture(scope="module")
def category_of(catalogue) -> dict[int, int | None]:
    return {item.product_id: item.category_id for item in catalogue}


def popular_in(model: ServingModel, category_of, category: int, count: int) -> list[int]:
    return [p for p in model.popular(exclude=(), first=len(category_of)) if category_of[p] == category][:count]


def test_a_shopper_who_browses_a_category_is_recommended_that_category_first(model, category_of) -> None:
    """Over the whole ranking, a product of the browsed category ranks above a product of another category in
    most pairs: the demo shoppers also browse a second favourite category and buy accessories of a paired one,
    so some of those rightly come in between."""
    categories = sorted({c for c in category_of.values() if c is not None})
    above = []
    for category in categories:
        recent = popular_in(model, category_of, category, 3)
        ranking = model.recommend(recent, exclude=recent, first=len(category_of))
        assert len(ranking) == len(category_of) - 3
        inside = [rank for rank, p in enumerate(ranking) if category_of[p] == category]
        outside = [rank for rank, p in enumerate(ranking) if category_of[p] != category]
        above.append(sum(i < o for i in inside for o in outside) / (len(inside) * len(outside)))
        # The top 10 leans on it too, several times its share by chance (a paired category's accessories may
        # outnumber it there).
        top = Counter(category_of[p] for p in ranking[:10])
        assert top[category] >= 4 and top[category] >= max(top.values()) - 1, (category, top)
    assert min(above) > 0.7 and sum(above) / len(above) > 0.85, above


def test_a_new_recent_item_changes_the_recommendations_at_once(model, category_of) -> None:
    first_category, second_category = sorted({c for c in category_of.values() if c is not None})[:2]
    recent = popular_in(model, category_of, first_category, 3)
    before = model.recommend(recent, exclude=(), first=10)
    newcomers = popular_in(model, category_of, second_category, 3)
    after = model.recommend(recent + newcomers, exclude=(), first=10)
    assert after != before
    count = lambda answer: sum(category_of[p] == second_category for p in answer)
    assert count(after) > count(before)


def test_excluded_products_are_never_recommended_and_the_answer_stays_full(model, category_of) -> None:
    category = next(c for c in category_of.values() if c is not None)
    recent = popular_in(model, category_of, category, 2)
    best = model.recommend(recent, exclude=(), first=10)
    excluded = set(best[:5]) | set(recent)
    answer = model.recommend(recent, exclude=excluded, first=10)
    assert len(answer) == 10 and not excluded & set(answer)
    rest = [p for p in best if p not in excluded]
    assert answer[:len(rest)] == rest  # what is left of the best keeps its order


def test_a_cold_start_gets_the_most_popular_of_the_touched_categories_then_overall(model, shoppers,
                                                                                    category_of) -> None:
    category = next(c for c in category_of.values() if c is not None)
    in_category = sum(1 for c in category_of.values() if c == category)
    answer = model.recommend([UNKNOWN], exclude=(), first=in_category + 5, categories=[category])
    assert [category_of[p] for p in answer[:in_category]] == [category] * in_category
    assert all(category_of[p] != category for p in answer[in_category:])
    interest = Counter(i.product_id for i in shoppers if i.kind == "PURCHASE")
    top = max((p for p, c in category_of.items() if c == category), key=lambda p: interest[p])
    assert top in answer[:3]  # kind-weighted popularity: the category's best seller leads (or nearly)
    assert model.recommend([], exclude=(), first=5) == model.popular(exclude=(), first=5)


def test_popular_skips_excluded_products_and_never_repeats(model) -> None:
    overall = model.popular(exclude=(), first=20)
    assert len(set(overall)) == 20
    assert model.popular(exclude=set(overall[:10]), first=10) == overall[10:]


def test_similar_puts_the_co_viewed_products_first(model, planted, category_of) -> None:
    answer = model.similar(planted["anchor"], exclude=(), first=10)
    assert set(answer[:2]) == {planted["viewed_a"], planted["viewed_b"]}
    assert planted["anchor"] not in answer
    assert model.similar(planted["anchor"], exclude={planted["viewed_a"]}, first=10)[0] == planted["viewed_b"]
    assert model.similar(UNKNOWN, exclude=(), first=10) == []


def test_similar_relates_a_product_nobody_co_viewed_by_its_features() -> None:
    # 120 products so the served pipeline can draw its 100 tuning negatives; product 1 was only ever viewed alone.
    items = [Item(p, category_id=1 if p <= 60 else 2, brand="acme" if p % 2 else "globex", price=10.0 + p)
             for p in range(1, 121)]
    at = NOW - timedelta(days=1)
    interactions = [Interaction("user:alone", 1, "VIEW", at)]
    interactions += [Interaction(f"user:{n}", 2 + (n + step) % 118, "VIEW", at + timedelta(minutes=step))
                     for n in range(40) for step in range(4)]
    model = train(interactions, items).model
    answer = model.similar(1, exclude=(), first=5)
    assert len(answer) == 5
    assert all(p <= 60 and p % 2 for p in answer)  # same category and brand


def test_bought_together_returns_what_was_bought_with_the_product(model, planted) -> None:
    answer = model.bought_together([planted["anchor"]], exclude=(), first=5)
    assert answer[0] == planted["bought"]
    assert len(answer) == 5 and planted["anchor"] not in answer  # filled up with similar products
    without = model.bought_together([planted["anchor"]], exclude={planted["bought"]}, first=5)
    assert planted["bought"] not in without
    assert model.bought_together([UNKNOWN], exclude=(), first=5) == []


def test_unknown_recent_ids_are_ignored(model, category_of) -> None:
    category = next(c for c in category_of.values() if c is not None)
    recent = popular_in(model, category_of, category, 2)
    assert model.recommend([UNKNOWN, *recent, UNKNOWN + 1], exclude=(), first=10) == \
        model.recommend(recent, exclude=(), first=10)
    assert model.knows(recent[0]) and not model.knows(UNKNOWN)
