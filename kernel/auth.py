"""RS256 access tokens: issuing (users subgraph only), verifying (every subgraph), roles, JWKS."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kernel.errors import Forbidden, Unauthenticated
from kernel.settings import Settings

ALGORITHM = "RS256"


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    roles: frozenset[str]

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def require_role(self, *roles: str) -> Principal:
        if not self.has_role(*roles):
            raise Forbidden()
        return self


@dataclasses.dataclass(frozen=True, slots=True)
class PartnerKey:
    """A partner API key the router has verified (router/partners.mjs), as it tells the subgraphs: a short-lived
    RS256 token in the `x-nexuscart-partner` header, signed with the platform's key pair."""
    key_id: str
    scopes: frozenset[str]

    def require_scope(self, scope: str) -> PartnerKey:
        if scope not in self.scopes:
            raise Forbidden(f"This API key does not have the scope '{scope}'")
        return self


PARTNER_HEADER = "x-nexuscart-partner"


def partner_audience(audience: str) -> str:
    """Partner tokens have an audience of their own, so one never passes for a user's access token."""
    return f"{audience}:partner"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint: stable for a key, different for the next one (rotation)."""
    numbers = public_key.public_numbers()
    canonical = f'{{"e":"{_b64url_uint(numbers.e)}","kty":"RSA","n":"{_b64url_uint(numbers.n)}"}}'
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "use": "sig", "alg": ALGORITHM, "kid": key_id(public_key),
            "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}


def ensure_keypair(directory: Path) -> tuple[Path, Path]:
    """Create an RSA key pair under `directory` once (make run / tests); returns (private, public) paths."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / "jwt-private.pem", directory / "jwt-public.pem"
    if not private_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
        private_path.chmod(0o600)
        public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def _key_file(path: Path | None, variable: str, purpose: str) -> bytes:
    """A PEM file named by a setting; a missing setting stops the process at start-up with a clear message."""
    if path is None:
        raise SystemExit(f"{variable} is required to {purpose}")
    return Path(path).read_bytes()


# Tokens whose signature was verified, with their claims, until they expire. An RS256 check costs ~0.2 ms of
# CPU, and every signed-in request made it in every subgraph it reached (4.5% of the search subgraph's CPU under
# load); a shopper's token is the same on each request until it expires. Only verified tokens are kept, keyed by
# the whole token, so a changed byte is a miss and is verified.
VERIFIED_TOKENS_KEPT = 10_000


class TokenVerifier:
    def __init__(self, public_keys: list[rsa.RSAPublicKey], *, issuer: str, audience: str) -> None:
        self._keys = {key_id(k): k for k in public_keys}
        self._issuer = issuer
        self._audience = audience
        self._verified: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        key = serialization.load_pem_public_key(
            _key_file(settings.jwt_public_key_file, "JWT_PUBLIC_KEY_FILE", "verify access tokens"))
        if not isinstance(key, rsa.RSAPublicKey):
            raise SystemExit("JWT_PUBLIC_KEY_FILE must hold an RSA public key")
        return cls([key], issuer=settings.jwt_issuer, audience=settings.jwt_audience)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(k) for k in self._keys.values()]}

    def _claims(self, token: str, *, audience: str, required: list[str], invalid: str,
                expired: str) -> dict[str, Any]:
        """The claims of a token signed by one of our keys, for `audience`; Unauthenticated otherwise."""
        cached = self._verified.get((token, audience))
        if cached is not None:
            if cached["exp"] > time.time():  # PyJWT's own rule: expired once exp <= now
                self._verified.move_to_end((token, audience))
                return cached
            del self._verified[(token, audience)]
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(header.get("kid", ""))
            if key is None or header.get("alg") != ALGORITHM:
                raise Unauthenticated(invalid)
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=[ALGORITHM], issuer=self._issuer,
                                                audience=audience, options={"require": required})
            self._verified[(token, audience)] = claims
            if len(self._verified) > VERIFIED_TOKENS_KEPT:
                self._verified.popitem(last=False)
            return claims
        except jwt.ExpiredSignatureError:
            raise Unauthenticated(expired) from None
        except jwt.PyJWTError:
            raise Unauthenticated(invalid) from None

    def verify(self, token: str) -> Principal:
        claims = self._claims(token, audience=self._audience, required=["exp", "sub", "iat"],
                              invalid="Invalid access token", expired="Access token expired")
        try:
            return Principal(user_id=int(claims["sub"]), roles=frozenset(claims.get("roles", [])))
        except (TypeError, ValueError):
            raise Unauthenticated("Invalid access token") from None


    def verify_partner(self, token: str) -> PartnerKey:
        claims = self._claims(token, audience=partner_audience(self._audience), required=["exp", "sub"],
                              invalid="Invalid partner credential", expired="Invalid partner credential")
        scopes = claims.get("scopes")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise Unauthenticated("Invalid partner credential")
        return PartnerKey(key_id=str(claims["sub"]), scopes=frozenset(scopes))


class TokenIssuer:
    def __init__(self, private_key: rsa.RSAPrivateKey, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._key = private_key
        self._kid = key_id(private_key.public_key())
        self._issuer = issuer
        self._audience = audience
        self.ttl_seconds = ttl_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenIssuer:
        key = serialization.load_pem_private_key(
            _key_file(settings.jwt_private_key_file, "JWT_PRIVATE_KEY_FILE", "issue access tokens"), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise SystemExit("JWT_PRIVATE_KEY_FILE must hold an RSA private key")
        return cls(key, issuer=settings.jwt_issuer, audience=settings.jwt_audience,
                   ttl_seconds=settings.access_token_ttl_seconds)

    def issue(self, user_id: int, roles: list[str], *, ttl_seconds: int | None = None) -> str:
        now = int(time.time())
        claims = {"sub": str(user_id), "roles": sorted(roles), "iss": self._issuer, "aud": self._audience,
                  "iat": now, "exp": now + (ttl_seconds if ttl_seconds is not None else self.ttl_seconds),
                  "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self._kid})

    def issue_partner(self, key_id: str, scopes: list[str], *, ttl_seconds: int = 120) -> str:
        """What the router mints for a verified API key (router/partners.mjs does the same in JavaScript)."""
        now = int(time.time())
        claims = {"sub": key_id, "scopes": sorted(scopes), "iss": self._issuer,
                  "aud": partner_audience(self._audience), "iat": now, "exp": now + ttl_seconds}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self._kid})
