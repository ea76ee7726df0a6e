"""The value rules every domain shares, defined once: money (kernel/money.py), ids (kernel/ids.py) and postal
addresses (kernel/address.py)."""
from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from kernel.address import PostalAddress, clean_address
from kernel.errors import BadUserInput
from kernel.ids import MAX_ID, as_id, is_valid_id
from kernel.money import MAX_PRICE, check_currency, format_money, is_currency, parse_amount

# ---- currencies -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["USD", "EUR", "JPY"])
def test_a_currency_is_three_ascii_capitals(code: str) -> None:
    assert is_currency(code)
    assert check_currency(code) == code


@pytest.mark.parametrize("code", ["USD\n", "USD\r\n", "\nUSD", " USD", "USD ", "usd", "US", "USDX", "", "ÜSD",
                                  "ＵＳＤ", None, 840, b"USD"])
def test_anything_else_is_not_a_currency(code: object) -> None:
    assert not is_currency(code)
    with pytest.raises(BadUserInput) as refused:
        check_currency(code, field="input.currency")
    assert refused.value.field == "input.currency"


# ---- amounts ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [("19.99", "19.99"), ("5", "5.00"), (7, "7.00"), (" 7.5 ", "7.50"),
                                          ("19.990", "19.99"), ("0", "0.00"), ("999999999999.99", "999999999999.99")])
def test_parse_amount_reads_decimal_strings_to_cents(raw: object, expected: str) -> None:
    amount = parse_amount(raw, field="amount")
    assert amount == Decimal(expected) and format_money(amount) == expected


@pytest.mark.parametrize("raw", ["-1", "1.999", "abc", "1e3", "NaN", "Infinity", "", "1,50", "0x10", "+5", "١٢",
                                 "1000000000000.00", True, None, 1.5, Decimal("1.00")])
def test_parse_amount_refuses_everything_else_naming_the_field(raw: object) -> None:
    with pytest.raises(BadUserInput) as refused:
        parse_amount(raw, field="subtotal")
    assert refused.value.field == "subtotal"


def test_parse_amount_takes_a_domain_maximum_and_can_refuse_zero() -> None:
    assert parse_amount(str(MAX_PRICE), field="price", maximum=MAX_PRICE) == MAX_PRICE
    with pytest.raises(BadUserInput, match="at most"):
        parse_amount("10000000000.00", field="price", maximum=MAX_PRICE)
    with pytest.raises(BadUserInput, match="greater than 0"):
        parse_amount("0.00", field="price", allow_zero=False)


def test_format_money_always_writes_two_places() -> None:
    assert [format_money(Decimal(v)) for v in ("0", "1.5", "19.999", "-2")] == ["0.00", "1.50", "20.00", "-2.00"]


# ---- ids --------------------------------------------------------------------------------------------------

def test_an_id_is_a_positive_63_bit_int() -> None:
    assert is_valid_id(1) and is_valid_id(MAX_ID) and MAX_ID == 2**63 - 1
    assert not any(is_valid_id(v) for v in (0, -1, MAX_ID + 1, True, "1", 1.0, None))
    assert as_id("42") == 42 and as_id(42) == 42
    assert all(as_id(v) is None for v in ("0", str(MAX_ID + 1), "abc", "", True, None, 4.2))


# ---- postal addresses -------------------------------------------------------------------------------------

ADDRESS = PostalAddress(line1=" 1 Main St ", city=" Springfield", postal_code="12345 ", country=" us ",
                        line2="  ", region=None)


def test_an_address_is_trimmed_with_empty_parts_as_none_and_the_country_upper_cased() -> None:
    assert clean_address(ADDRESS) == PostalAddress(line1="1 Main St", city="Springfield", postal_code="12345",
                                                   country="US", line2=None, region=None)


@pytest.mark.parametrize(("change", "field"), [
    ({"line1": " "}, "line1"), ({"line1": "x" * 201}, "line1"), ({"city": ""}, "city"),
    ({"postal_code": "x" * 201}, "postalCode"), ({"line2": "x" * 201}, "line2"), ({"region": "x" * 201}, "region"),
    ({"country": "USA"}, "country"), ({"country": "U"}, "country"), ({"country": "Ü1"}, "country"),
])
def test_each_part_is_bounded_and_the_error_names_it_as_the_client_does(change: dict, field: str) -> None:
    with pytest.raises(BadUserInput) as refused:
        clean_address(dataclasses.replace(ADDRESS, **change), field_prefix="shippingAddress.")
    assert refused.value.field == f"shippingAddress.{field}"


def test_two_hundred_characters_are_kept() -> None:
    cleaned = clean_address(dataclasses.replace(ADDRESS, line2="y" * 200, region="z" * 200))
    assert (cleaned.line2, cleaned.region) == ("y" * 200, "z" * 200)
