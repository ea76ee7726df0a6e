"""A currency is an ISO 4217 code and nothing more (kernel.money.is_currency): "USD\\n" must not pass for "USD".

A `^[A-Z]{3}$` regex with `.match` accepted "USD\\n" (`$` matches before a trailing newline), so a malformed
currency got as far as the insert, whose char(3) column failed it as an internal error."""
from __future__ import annotations

import pytest

from kernel.ids import next_id
from subgraphs.orders import service
from tests.log_capture import captured_records
from tests.orders.conftest import PLACE_ORDER, place_input


def reservation(user_id: int, currency: str) -> dict:
    return {"reservation_id": str(next_id()), "sale_id": str(next_id()), "user_id": str(user_id),
            "variant_id": "111", "product_id": "1110", "sku": "SKU-111", "name": "Thing 111", "quantity": 1,
            "unit_price": "9.99", "currency": currency}


@pytest.mark.parametrize("currency", ["USD\n", "usd", "US", "USDX", " USD", ""])
def test_a_reservation_in_a_malformed_currency_is_refused(currency: str) -> None:
    with pytest.raises(ValueError):
        service.flash_sale_reservation(reservation(42, currency))


def test_a_reservation_in_a_currency_is_accepted() -> None:
    assert service.flash_sale_reservation(reservation(42, "EUR")).currency == "EUR"


async def test_the_flash_sale_order_endpoint_refuses_a_newline_after_the_currency(orders_api, token_issuer,
                                                                                  db_admin) -> None:
    # given the buyer's reservation, its currency followed by a newline
    user_id = next_id()
    headers = {"authorization": f"Bearer {token_issuer.issue(user_id, ['CUSTOMER'])}"}
    # when promotions posts it to orders
    response = await orders_api.http.post("/internal/flash-sale-orders", json=reservation(user_id, "USD\n"),
                                          headers=headers)
    # then it is a malformed reservation, and no order exists
    assert (response.status_code, response.json()["code"]) == (400, "BAD_USER_INPUT")
    assert await db_admin.fetchval("SELECT count(*) FROM orders.orders") == 0
    # while the same reservation in "USD" makes its order
    ok = await orders_api.http.post("/internal/flash-sale-orders", json=reservation(user_id, "USD"), headers=headers)
    assert ok.status_code == 200 and ok.json()["created"] is True


async def test_a_cart_snapshot_with_a_newline_after_the_currency_is_a_malformed_answer(orders_api, customer, peers,
                                                                                       db_admin) -> None:
    # given a cart whose checkout snapshot says "USD\n"
    ada = customer()
    peers.add_cart(ada.user_id, currency="USD\n")
    with captured_records("nexuscart.errors") as records:
        # when the customer places the order
        body = await orders_api.raw(PLACE_ORDER, {"input": place_input()}, token=ada.token)
    # then the cart's answer is refused as malformed before anything is written (not by the insert failing)
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert await db_admin.fetchval("SELECT count(*) FROM orders.orders") == 0
    causes = [str(r.exc_info[1]) for r in records if r.exc_info]
    assert any("malformed checkout snapshot" in c for c in causes), causes
