"""GraphQL types several subgraphs share: defined once here (output value types `@shareable` for the router)."""
from __future__ import annotations

from decimal import Decimal

import strawberry

from kernel.address import PostalAddress
from kernel.money import format_money


@strawberry.federation.type(shareable=True, description="An amount of money; amount is a decimal string.")
class Money:
    amount: str = strawberry.field(description="Decimal string with 2 places, e.g. \"19.99\"")
    currency: str = strawberry.field(description="ISO 4217 code, e.g. \"USD\"")

    @classmethod
    def of(cls, amount: Decimal, currency: str) -> Money:
        return cls(amount=format_money(amount), currency=currency)


@strawberry.federation.type(shareable=True)
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.input
class PostalAddressInput:
    """The fields every postal-address input shares; `ShippingAddressInput` (orders) and `AddressInput` (users)
    extend it, and kernel.address.clean_address validates what it converts to."""
    line1: str
    city: str
    postal_code: str
    country: str = strawberry.field(description="ISO 3166-1 alpha-2, e.g. US")
    line2: str | None = None
    region: str | None = None

    def to_postal_address(self) -> PostalAddress:
        return PostalAddress(line1=self.line1, line2=self.line2, city=self.city, region=self.region,
                             postal_code=self.postal_code, country=self.country)
