"""The carriers shipments may name, and how each one's tracking page is addressed. A shipment names one of these
(case-insensitive; stored as the key); any other carrier is BAD_USER_INPUT, so a typo never yields a shipment
without a working tracking link. Adding a carrier is one entry here."""
from __future__ import annotations

from urllib.parse import quote

CARRIERS: dict[str, tuple[str, str]] = {
    # key: (display name, tracking URL template; {tracking} is the URL-encoded tracking number)
    "UPS": ("UPS", "https://www.ups.com/track?tracknum={tracking}"),
    "FEDEX": ("FedEx", "https://www.fedex.com/fedextrack/?trknbr={tracking}"),
    "DHL": ("DHL", "https://www.dhl.com/global-en/home/tracking/tracking-express.html?tracking-id={tracking}"),
    "USPS": ("USPS", "https://tools.usps.com/go/TrackConfirmAction?tLabels={tracking}"),
}


def carrier_key(name: str) -> str | None:
    """The carrier's key for a name as a client writes it ("FedEx", "fedex", " UPS "), or None if unknown."""
    key = name.strip().upper().replace(" ", "")
    return key if key in CARRIERS else None


def tracking_url(carrier: str, tracking_number: str) -> str | None:
    entry = CARRIERS.get(carrier)
    return entry[1].format(tracking=quote(tracking_number, safe="")) if entry else None
