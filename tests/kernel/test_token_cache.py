"""kernel.auth.TokenVerifier keeps verified tokens until they expire: the signature is checked once per token,
never again for the same bytes, and never past the token's expiry."""
from __future__ import annotations

import time
from types import SimpleNamespace

import jwt
import pytest

import kernel.auth
from kernel.auth import TokenIssuer, TokenVerifier
from kernel.errors import Unauthenticated
from kernel.settings import Settings


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    checked: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: object, **kwargs: object) -> object:
        checked.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(kernel.auth.jwt, "decode", counting_decode)
    return checked


def test_a_token_is_verified_once_then_served_from_memory_until_it_expires(
        settings: Settings, token_issuer: TokenIssuer, signature_checks: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier.from_settings(settings)
    token = token_issuer.issue(41, ["CUSTOMER"], ttl_seconds=60)
    assert verifier.verify(token).user_id == 41
    assert verifier.verify(token).roles == frozenset({"CUSTOMER"})
    assert len(signature_checks) == 1

    # Past its expiry the memory is not trusted: the token goes through the full check again.
    now = time.time()
    monkeypatch.setattr(kernel.auth, "time", SimpleNamespace(time=lambda: now + 61))
    verifier.verify(token)  # still valid by the real clock PyJWT reads
    assert len(signature_checks) == 2


def test_a_changed_token_is_never_a_memory_hit(settings: Settings, token_issuer: TokenIssuer,
                                               signature_checks: list[str]) -> None:
    verifier = TokenVerifier.from_settings(settings)
    token = token_issuer.issue(42, ["CUSTOMER"])
    verifier.verify(token)
    header, claims, signature = token.split(".")
    forged_claims = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(claims).replace(b'"CUSTOMER"', b'"ADMIN"')).decode()
    with pytest.raises(Unauthenticated):
        verifier.verify(f"{header}.{forged_claims}.{signature}")
    assert len(signature_checks) == 2

