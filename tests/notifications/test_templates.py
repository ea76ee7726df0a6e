"""Every template renders, in plain text and HTML (escaped), with what its event carries."""
from __future__ import annotations

import markupsafe
import pytest

from subgraphs.notifications import templates
from subgraphs.notifications.models import Kind

ORDER = {"number": "NC-5", "currency": "EUR", "subtotal": "30.00", "discount": "0.00", "total": "30.00",
         "order_url": "https://shop.example/orders/5",
         "lines": [{"name": "Mug <script>alert(1)</script>", "sku": "MUG-1", "quantity": 3, "unit_price": "10.00"}]}
CONTEXTS = {
    Kind.ORDER_PLACED: ORDER, Kind.ORDER_PAID: ORDER, Kind.ORDER_DELIVERED: ORDER,
    Kind.ORDER_SHIPPED: {**ORDER, "tracking_number": "1Z999", "tracking_url": "https://track.example/1Z999"},
    Kind.ORDER_CANCELLED: {**ORDER, "reason_text": "an item ran out of stock", "was_paid": False},
    Kind.PAYMENT_FAILED: {**ORDER, "reason": "card declined"},
    Kind.REFUND_ISSUED: {**ORDER, "amount": "12.50", "fully_refunded": False},
    Kind.REVIEW_APPROVED: {"for_seller": False, "rating": 4, "title": "Nice <mug>"},
    Kind.LOW_STOCK: {"variant_id": 77, "available": 1, "threshold": 5},
    Kind.FLASH_SALE_STARTING: {"sale_id": 9, "starts_at_text": "2026-12-01 10:00 UTC",
                               "ends_at_text": "2026-12-01 11:00 UTC",
                               "unsubscribe_url": "https://n.example/unsubscribe?token=t"},
}
EXPECTED = {
    Kind.ORDER_PLACED: ("We received your order NC-5", "3 x Mug <script>alert(1)</script> (MUG-1)  10.00 EUR"),
    Kind.ORDER_PAID: ("Payment received for order NC-5", "Total: 30.00 EUR"),
    Kind.ORDER_SHIPPED: ("Your order NC-5 is on its way", "Track it: https://track.example/1Z999"),
    Kind.ORDER_DELIVERED: ("Your order NC-5 was delivered", "https://shop.example/orders/5"),
    Kind.ORDER_CANCELLED: ("Your order NC-5 was cancelled", "cancelled: an item ran out of stock."),
    Kind.PAYMENT_FAILED: ("Payment for order NC-5 failed", "(30.00 EUR) failed: card declined."),
    Kind.REFUND_ISSUED: ("Refund of 12.50 EUR for order NC-5", "We refunded 12.50 EUR for order NC-5."),
    Kind.REVIEW_APPROVED: ("Your review is live", 'Your review "Nice <mug>" (4 stars) is now public.'),
    Kind.LOW_STOCK: ("Low stock: variant 77 has 1 left", "down to 1 available units (threshold 5)"),
    Kind.FLASH_SALE_STARTING: ("The flash sale you asked about starts 2026-12-01 10:00 UTC",
                               "Unsubscribe from these emails: https://n.example/unsubscribe?token=t"),
}


def test_every_kind_has_templates() -> None:
    assert templates.kinds_with_templates() == list(Kind)
    assert set(CONTEXTS) == set(Kind)


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.value)
def test_each_template_renders_text_and_escaped_html(kind: Kind) -> None:
    rendered = templates.render(kind, CONTEXTS[kind])
    subject, in_text = EXPECTED[kind]
    assert rendered.subject == subject
    assert in_text in rendered.text
    assert rendered.summary and "\n" not in rendered.summary
    assert rendered.html.startswith("<!doctype html>")
    assert f"<title>{markupsafe.escape(rendered.subject)}</title>" in rendered.html
    assert "<script>" not in rendered.html and "<mug>" not in rendered.html
    if "lines" in CONTEXTS[kind] and kind is not Kind.REFUND_ISSUED and kind is not Kind.PAYMENT_FAILED \
            and kind is not Kind.ORDER_DELIVERED:
        assert "Mug &lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html


def test_a_shipped_order_without_tracking_says_nothing_about_it() -> None:
    rendered = templates.render(Kind.ORDER_SHIPPED, {**ORDER, "tracking_number": None, "tracking_url": None})
    assert "Track" not in rendered.text and "Track" not in rendered.html and "Tracking" not in rendered.summary


def test_a_missing_value_is_an_error_not_a_blank() -> None:
    with pytest.raises(Exception, match="number"):
        templates.render(Kind.ORDER_PAID, {k: v for k, v in ORDER.items() if k != "number"})
