"""GraphQL adapter of the recommendations domain: validates input shapes, calls service.py, answers Product stubs
(the router resolves every other Product field in the catalog).

Recommendations extends two entities it does not own: catalog's `Product` gets `similarProducts` and
`frequentlyBoughtTogether`, and the cart's `Cart` gets `recommendations`, from the product ids of its lines
(`@requires`: the router fetches them from the cart first, so this subgraph never reads a cart).
"""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from kernel.graphql import Info, Money, RequestContext, build_schema
from kernel.ids import entity_key, parse_id
from subgraphs.recommendations import experiments as experiment_service
from subgraphs.recommendations import service
from subgraphs.recommendations.models import (
    ExperimentRecord,
    ExperimentStatus,
    InteractionKind,
    ProductCard,
    VariantSpec,
)
from subgraphs.recommendations.serving import Recommender

RECOMMENDER = "recommender"


@strawberry.enum(name="InteractionKind", description="What a shopper did with a product.")
class TrackedKind(str, enum.Enum):
    """The kinds a client tracks (PURCHASE is learned from orders)."""
    VIEW = "VIEW"
    CLICK = "CLICK"
    ADD_TO_CART = "ADD_TO_CART"
    WISHLIST = "WISHLIST"


async def _recommender(ctx: RequestContext) -> Recommender:
    recommender: Recommender = ctx.resources.extras[RECOMMENDER]
    await recommender.ensure_fresh(ctx.resources.session_factory)
    return recommender


def _products(shown: list[service.ShownProduct]) -> list[Product]:
    return [Product(id=strawberry.ID(str(p)), card=card) for p, card in shown]


# The card fields this subgraph answers on its own lists of products (`@provides`: the router takes them from here
# and calls catalog only for any other field); anywhere else they are catalog's (`@external`).
PROVIDED_CARD = ["slug name brand minPrice { amount currency }"]


def _card(product: Product) -> ProductCard:
    if product.card is None:  # the router asks for these only on the lists that provide them
        raise RuntimeError(f"the router asked recommendations for the card of product {product.id}")
    return product.card


# Owned by catalog; recommendations contributes two lists (no description here: composition keeps catalog's).
@strawberry.federation.type(keys=["id"])
class Product:
    id: strawberry.ID
    card: strawberry.Private[ProductCard | None] = None

    @strawberry.federation.field(external=True)
    def slug(self) -> str:
        return _card(self).slug

    @strawberry.federation.field(external=True)
    def name(self) -> str:
        return _card(self).name

    @strawberry.federation.field(external=True)
    def brand(self) -> str | None:
        return _card(self).brand

    @strawberry.federation.field(external=True)
    def min_price(self) -> Money:
        card = _card(self)
        return Money.of(card.min_price, card.currency)

    @classmethod
    def resolve_reference(cls, id: strawberry.ID, **_unknown: Any) -> Product | None:
        # No I/O: a product the model has never seen still gets lists (its category's popular products).
        return cls(id=id) if entity_key(id) is not None else None

    @strawberry.federation.field(provides=PROVIDED_CARD, description=(
        "Products like this one: those the same shoppers looked at, then the most popular of its category; only "
        "in-stock ones. first: 1..50."))
    async def similar_products(self, info: Info, first: int | None = 10) -> list[Product]:
        ctx = info.context
        found = await service.similar_products(ctx.redis, await _recommender(ctx), product_id=int(self.id),
                                               first=10 if first is None else first)
        return _products(found)

    @strawberry.federation.field(provides=PROVIDED_CARD, description=(
        "Products bought (or put in the cart) together with this one, then the most popular of its category; only "
        "in-stock ones. first: 1..50."))
    async def frequently_bought_together(self, info: Info, first: int | None = 5) -> list[Product]:
        ctx = info.context
        found = await service.bought_together(ctx.redis, await _recommender(ctx), product_ids=[int(self.id)],
                                              first=5 if first is None else first)
        return _products(found)


@strawberry.federation.type(description="A cart line, as far as recommendations needs it.")
class CartItem:
    product_id: strawberry.ID | None = strawberry.federation.field(external=True)


# Owned by the cart; recommendations contributes `recommendations`.
@strawberry.federation.type(keys=["id"])
class Cart:
    id: strawberry.ID
    items: list[CartItem] = strawberry.federation.field(external=True)

    @classmethod
    def resolve_reference(cls, id: strawberry.ID, items: list[dict[str, Any]] | None = None,
                          **_unknown: Any) -> Cart:
        lines = [CartItem(product_id=item.get("productId")) for item in items or () if isinstance(item, dict)]
        return cls(id=id, items=lines)

    @strawberry.federation.field(requires=["items { productId }"], provides=PROVIDED_CARD, description=(
        "Products to add to this cart: bought together with its products, then the most popular of their "
        "categories; never the cart's own products, only in-stock ones. first: 1..50."))
    async def recommendations(self, info: Info, first: int | None = 5) -> list[Product]:
        ctx = info.context
        ctx.mark_uncacheable()
        product_ids = [key for key in (entity_key(i.product_id) for i in self.items) if key is not None]
        found = await service.bought_together(ctx.redis, await _recommender(ctx), product_ids=product_ids,
                                              first=5 if first is None else first)
        return _products(found)


@strawberry.input(description="Something a shopper did with a product.")
class TrackInteractionInput:
    product_id: strawberry.ID
    kind: TrackedKind
    session_id: str | None = strawberry.field(default=None, description=(
        "The client's id of the browsing session (1..64 of letters, digits, '_', '-', '.', ':'): required for a "
        "guest; signed in, it links that guest session to the user"))
    source: str | None = strawberry.field(default=None, description=(
        "Where it happened, as the client names it (e.g. 'search', 'home'): 1..64 characters"))

    def to_service(self) -> service.InteractionIn:
        return service.InteractionIn(product_id=parse_id(self.product_id, field="productId"),
                                     kind=InteractionKind(self.kind.value),
                                     session_id=self.session_id, source=self.source)


# The domain's enum is the GraphQL enum: strawberry.enum registers the class itself.
strawberry.enum(ExperimentStatus, name="ExperimentStatus",
                description="RUNNING: shoppers are assigned and exposed; STOPPED: no more, results kept")


@strawberry.type(description="One arm of an experiment.")
class ExperimentVariant:
    name: str
    weight: float = strawberry.field(description="Relative share of shoppers (shares are weight / sum of weights)")
    model_version: str | None = strawberry.field(description="The model it serves; null: the default one")
    parameters: JSON | None = strawberry.field(description="Recommender parameters (a JSON object); null: none")

    @classmethod
    def from_spec(cls, variant: VariantSpec) -> ExperimentVariant:
        return cls(name=variant.name, weight=variant.weight, model_version=variant.model_version,
                   parameters=JSON(variant.parameters) if variant.parameters is not None else None)


@strawberry.type(description="An A/B experiment of recommendedForYou. The first variant is the control.")
class Experiment:
    id: strawberry.ID
    key: str
    status: ExperimentStatus
    variants: list[ExperimentVariant]
    created_at: datetime
    stopped_at: datetime | None

    @classmethod
    def from_record(cls, experiment: ExperimentRecord) -> Experiment:
        return cls(id=strawberry.ID(str(experiment.id)), key=experiment.key, status=experiment.status,
                   variants=[ExperimentVariant.from_spec(v) for v in experiment.variants],
                   created_at=experiment.created_at, stopped_at=experiment.stopped_at)


@strawberry.type(description=(
    "A variant's outcome. Counts are distinct exposed shoppers; an outcome counts when it happened after the "
    "shopper's first exposure. Comparisons are against the control; null for the control itself and while the "
    "counts cannot tell (no exposures, or no control conversions)."))
class ExperimentVariantResult:
    name: str
    exposures: int = strawberry.field(description="Shoppers who were shown this variant")
    conversions: int = strawberry.field(description="Of them, shoppers who bought something afterwards")
    rate: float | None = strawberry.field(description="conversions / exposures; null without exposures")
    lift: float | None = strawberry.field(description="Relative to the control's rate: 0.3 is 30% more")
    ci_low: float | None = strawberry.field(description="95% interval of the lift (log rate ratio), low end")
    ci_high: float | None = strawberry.field(description="95% interval of the lift (log rate ratio), high end")
    p_value: float | None = strawberry.field(description="Two-sided two-proportion z-test against the control")
    weight: float
    click_throughs: int = strawberry.field(description="Shoppers who clicked a recommendation afterwards")
    click_through_rate: float | None = strawberry.field(description="click_throughs / exposures")
    cart_adds: int = strawberry.field(description="Shoppers who added something to their cart afterwards")
    add_to_cart_rate: float | None = strawberry.field(description="cartAdds / exposures")

    @classmethod
    def from_record(cls, result: experiment_service.VariantResultRecord) -> ExperimentVariantResult:
        c, comparison = result.counts, result.comparison
        return cls(name=c.name, exposures=c.exposures, conversions=c.conversions, rate=result.rate,
                   lift=comparison.lift if comparison else None, ci_low=comparison.ci_low if comparison else None,
                   ci_high=comparison.ci_high if comparison else None,
                   p_value=comparison.p_value if comparison else None, weight=c.weight,
                   click_throughs=c.clickers, click_through_rate=result.click_through_rate,
                   cart_adds=c.cart_adders, add_to_cart_rate=result.add_to_cart_rate)


@strawberry.type
class ExperimentResults:
    key: str
    status: ExperimentStatus
    variants: list[ExperimentVariantResult]
    sample_ratio_mismatch: bool = strawberry.field(description=(
        "The exposures do not match the weights (chi-square goodness of fit, p < 0.001): the split is broken and "
        "the comparisons cannot be trusted"))
    sample_ratio_p_value: float | None = strawberry.field(description="That test's p-value; null without exposures")

    @classmethod
    def from_record(cls, results: experiment_service.ResultsRecord) -> ExperimentResults:
        return cls(key=results.experiment.key, status=results.experiment.status,
                   variants=[ExperimentVariantResult.from_record(v) for v in results.variants],
                   sample_ratio_mismatch=results.sample_ratio_mismatch,
                   sample_ratio_p_value=results.sample_ratio_p_value)


@strawberry.input
class ExperimentVariantInput:
    name: str = strawberry.field(description="1..40 characters: letters, digits, '.', '-' or '_'; unique")
    weight: float = strawberry.field(description=">= 0; the weights' sum must be above 0")
    model_version: str | None = strawberry.field(default=None, description="The model to serve; null: default")
    parameters: JSON | None = strawberry.field(default=None, description="A JSON object of recommender "
                                                                         "parameters, at most 4 KB")

    def to_service(self) -> experiment_service.VariantIn:
        return experiment_service.VariantIn(name=self.name, weight=self.weight, model_version=self.model_version,
                                            parameters=self.parameters)


@strawberry.input
class CreateExperimentInput:
    key: str = strawberry.field(description="Unique, 1..64 characters: letters, digits, '.', '-' or '_'")
    variants: list[ExperimentVariantInput] = strawberry.field(description="2..10; the first is the control")


@strawberry.type
class Query:
    @strawberry.federation.field(provides=PROVIDED_CARD, description=(
        "Products for the signed-in shopper and/or the guest `sessionId`: from what they looked at recently (the "
        "next call already reflects a trackInteraction), never what they just bought, nor out-of-stock or deleted "
        "products; what they just looked at comes last. Anonymous without a sessionId: the most popular products. "
        "first: 1..50."))
    async def recommended_for_you(self, info: Info, first: int | None = 10,
                                  session_id: str | None = None) -> list[Product]:
        ctx = info.context
        ctx.mark_uncacheable()
        found = await service.recommended_for_shopper(await ctx.session(), ctx.redis, await _recommender(ctx),
                                                      ctx.settings, caller=ctx.user, session_id=session_id,
                                                      first=10 if first is None else first)
        return _products(found)

    @strawberry.field(description="ADMIN: every experiment, newest first.")
    async def experiments(self, info: Info) -> list[Experiment]:
        ctx = info.context
        ctx.mark_uncacheable()
        found = await experiment_service.all_experiments(await ctx.session(), caller=ctx.require_user())
        return [Experiment.from_record(e) for e in found]

    @strawberry.field(description="ADMIN: an experiment's results per variant (NOT_FOUND for an unknown key).")
    async def experiment_results(self, info: Info, key: str) -> ExperimentResults:
        ctx = info.context
        ctx.mark_uncacheable()
        results = await experiment_service.results_of(await ctx.session(), caller=ctx.require_user(), key=key)
        return ExperimentResults.from_record(results)


@strawberry.type
class Mutation:
    @strawberry.mutation(description=(
        "Record what a shopper did with a product (signed in, or a guest with input.sessionId: UNAUTHENTICATED "
        "without). NOT_FOUND for an unknown or deleted product; RATE_LIMITED beyond the per-minute limit."))
    async def track_interaction(self, info: Info, input: TrackInteractionInput) -> bool:
        ctx = info.context
        ctx.mark_uncacheable()
        return await service.track_interaction(await ctx.session(), ctx.redis, ctx.settings, caller=ctx.user,
                                               interaction=input.to_service(),
                                               http=ctx.resources.peers)

    @strawberry.mutation(description=(
        "ADMIN: start an experiment of recommendedForYou (the newest RUNNING one applies). Shoppers are split by "
        "weight, each always to the same variant. CONFLICT when the key exists."))
    async def create_experiment(self, info: Info, input: CreateExperimentInput) -> Experiment:
        ctx = info.context
        ctx.mark_uncacheable()
        experiment = await experiment_service.new_experiment(
            await ctx.session(), caller=ctx.require_user(), key=input.key,
            variants=[v.to_service() for v in input.variants])
        return Experiment.from_record(experiment)

    @strawberry.mutation(description="ADMIN: stop an experiment (NOT_FOUND for an unknown key); its results stay.")
    async def stop_experiment(self, info: Info, key: str) -> Experiment:
        ctx = info.context
        ctx.mark_uncacheable()
        experiment = await experiment_service.end_experiment(await ctx.session(), caller=ctx.require_user(), key=key)
        return Experiment.from_record(experiment)


schema = build_schema(query=Query, mutation=Mutation, types=[Product, Cart])
