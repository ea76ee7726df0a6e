"""When a live order-status stream may end: only once no further transition can come."""
from __future__ import annotations

from datetime import UTC


def _history(*steps: tuple[str | None, str, str | None]) -> list:
    from datetime import datetime

    from subgraphs.orders.models import HistoryRecord, OrderStatus
    return [HistoryRecord(order_id=1, seq=n, from_status=OrderStatus(f) if f else None, to_status=OrderStatus(t),
                          reason=r, at=datetime.now(UTC)) for n, (f, t, r) in enumerate(steps, 1)]


def test_status_streams_end_only_when_no_further_transition_can_come() -> None:
    from subgraphs.orders.service import is_final_for_watchers
    placed = (None, "PENDING", None)
    awaiting = ("PENDING", "AWAITING_PAYMENT", None)
    # nothing can follow these
    assert is_final_for_watchers(_history(placed, ("PENDING", "CANCELLED", "OUT_OF_STOCK")))
    assert is_final_for_watchers(_history(placed, awaiting, ("AWAITING_PAYMENT", "CANCELLED", "PAYMENT_DECLINED")))
    assert is_final_for_watchers(_history(placed, awaiting, ("AWAITING_PAYMENT", "PAID", None),
                                          ("PAID", "CANCELLED", "CUSTOMER_CANCELLED"), ("CANCELLED", "REFUNDED", None)))
    # a late charge may still be refunded after these, so watchers stay for REFUNDED
    assert not is_final_for_watchers(_history(placed, awaiting, ("AWAITING_PAYMENT", "CANCELLED", "PAYMENT_TIMEOUT")))
    assert not is_final_for_watchers(_history(placed, awaiting,
                                              ("AWAITING_PAYMENT", "CANCELLED", "CUSTOMER_CANCELLED")))
    assert not is_final_for_watchers(_history(placed, awaiting, ("AWAITING_PAYMENT", "PAID", None),
                                              ("PAID", "CANCELLED", "CUSTOMER_CANCELLED")))
