"""Postal address rules, once: users' address book and orders' shipping address clean and bound them alike."""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from kernel.errors import BadUserInput

MAX_FIELD_LENGTH = 200
_COUNTRY = re.compile(r"[A-Z]{2}")  # always fullmatch: `^...$` would accept "US\n"
_REQUIRED = (("line1", "line1"), ("city", "city"), ("postal_code", "postalCode"))
_OPTIONAL = (("line2", "line2"), ("region", "region"))


@dataclasses.dataclass(frozen=True)
class PostalAddress:
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None
    region: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"line1": self.line1, "line2": self.line2, "city": self.city, "region": self.region,
                "postal_code": self.postal_code, "country": self.country}


def clean_address(address: PostalAddress, *, field_prefix: str = "") -> PostalAddress:
    """Trimmed, country upper-cased, empty optional parts as None. line1, city and postalCode are 1..200
    characters, line2 and region at most 200, country an ISO 3166 alpha-2 code; otherwise BAD_USER_INPUT
    naming the field (as the client spells it, after `field_prefix`, e.g. "shippingAddress.")."""
    cleaned = PostalAddress(line1=address.line1.strip(), city=address.city.strip(),
                            postal_code=address.postal_code.strip(), country=address.country.strip().upper(),
                            line2=(address.line2 or "").strip() or None, region=(address.region or "").strip() or None)
    for attribute, name in _REQUIRED:
        value = getattr(cleaned, attribute)
        if not value or len(value) > MAX_FIELD_LENGTH:
            raise BadUserInput(f"'{field_prefix}{name}' must be 1..{MAX_FIELD_LENGTH} characters",
                               field=field_prefix + name)
    for attribute, name in _OPTIONAL:
        value = getattr(cleaned, attribute)
        if value is not None and len(value) > MAX_FIELD_LENGTH:
            raise BadUserInput(f"'{field_prefix}{name}' must be at most {MAX_FIELD_LENGTH} characters",
                               field=field_prefix + name)
    if not _COUNTRY.fullmatch(cleaned.country):
        raise BadUserInput(f"'{field_prefix}country' must be an ISO 3166 alpha-2 code such as 'US'",
                           field=field_prefix + "country")
    return cleaned
