"""Pricing rules and carrier tracking URLs, without I/O."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from kernel.address import PostalAddress
from subgraphs.shipping import carriers
from subgraphs.shipping.models import MethodRecord, RateKind, ValueTier, ZoneRecord
from subgraphs.shipping.service import best_zone, price_of


def method(kind: RateKind, **terms: object) -> MethodRecord:
    values: dict[str, object] = {"id": 1, "zone_id": 1, "name": "M", "carrier": "UPS", "kind": kind, "currency": "USD",
                                 "price": Decimal("4.99"), "price_per_kg": Decimal("0"), "value_tiers": [],
                                 "free_above": None, "max_weight_grams": None, "min_days": 1, "max_days": 3,
                                 "deleted": False}
    values.update(terms)
    return MethodRecord(**values)  # type: ignore[arg-type]


def zone(zone_id: int, countries: list[str], regions: list[str] | None = None,
         prefixes: list[str] | None = None) -> ZoneRecord:
    return ZoneRecord(id=zone_id, name=str(zone_id), countries=countries, regions=regions or [],
                      postal_prefixes=prefixes or [], created_at=datetime.now(UTC))


def address(country: str, postal_code: str = "10001", region: str | None = None) -> PostalAddress:
    return PostalAddress(line1="1 St", city="C", postal_code=postal_code, country=country, region=region)


def test_flat_weight_and_order_value_rates_and_free_above() -> None:
    flat = method(RateKind.FLAT, price=Decimal("14.99"))
    assert price_of(flat, weight_grams=99_000, value=Decimal("10")) == Decimal("14.99")
    by_weight = method(RateKind.WEIGHT, price=Decimal("4.99"), price_per_kg=Decimal("1.50"), free_above=Decimal("50"))
    assert price_of(by_weight, weight_grams=0, value=Decimal("10")) == Decimal("4.99")
    assert price_of(by_weight, weight_grams=1001, value=Decimal("10")) == Decimal("7.99")  # 2 started kg
    assert price_of(by_weight, weight_grams=1001, value=Decimal("50.00")) == Decimal("0.00")  # free from 50
    by_value = method(RateKind.ORDER_VALUE, value_tiers=[ValueTier(Decimal("0"), Decimal("9.00")),
                                                         ValueTier(Decimal("100"), Decimal("4.00"))])
    assert price_of(by_value, weight_grams=0, value=Decimal("99.99")) == Decimal("9.00")
    assert price_of(by_value, weight_grams=0, value=Decimal("100")) == Decimal("4.00")
    heavy_limit = method(RateKind.FLAT, max_weight_grams=2000)
    assert price_of(heavy_limit, weight_grams=2001, value=Decimal("1")) is None


def test_the_most_specific_covering_zone_wins() -> None:
    country, region, postal = zone(1, ["US"]), zone(2, ["US"], regions=["AK", "HI"]), zone(3, ["US"], prefixes=["100"])
    zones = [country, region, postal]
    assert best_zone(zones, address("US", "10001")) is postal
    assert best_zone(zones, address("US", "99501", region="AK")) is region
    assert best_zone(zones, address("US", "60601", region="IL")) is country
    assert best_zone(zones, address("CA", "H2X")) is None


def test_tracking_urls_per_carrier() -> None:
    assert carriers.carrier_key("FedEx") == "FEDEX" and carriers.carrier_key(" ups ") == "UPS"
    assert carriers.carrier_key("Pigeon Post") is None
    assert carriers.tracking_url("UPS", "1Z999AA10123456784") == "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    assert carriers.tracking_url("FEDEX", "123456789012") == "https://www.fedex.com/fedextrack/?trknbr=123456789012"
    assert carriers.tracking_url("DHL", "JD014600006281230704") == (
        "https://www.dhl.com/global-en/home/tracking/tracking-express.html?tracking-id=JD014600006281230704")
    assert carriers.tracking_url("USPS", "9400 1000") == (
        "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400%201000")
