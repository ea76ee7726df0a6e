"""Business rules of the users domain: accounts, credentials, sessions, roles, address book.

Service functions take the session first and only flush; the caller (GraphQL edge or a worker) owns
the transaction.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import secrets
import uuid
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.auth import TokenIssuer
from kernel.errors import BadUserInput, Forbidden
from kernel.ids import next_id
from kernel.outbox import add_event
from kernel.settings import Settings
from subgraphs.users import repository
from subgraphs.users.errors import (AccountLocked, AddressNotFound, EmailTaken, InvalidCredentials, InvalidEmail,
                                    InvalidRefreshToken, RefreshTokenReused, UserNotFound, WeakPassword)
from subgraphs.users.models import SCHEMA, AddressRow, RefreshTokenRow, UserRow

ROLES = ("CUSTOMER", "SELLER", "ADMIN")
_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters
_DUMMY_HASH = _hasher.hash("not-a-real-password-used-for-timing")
_COMMON_PASSWORDS = frozenset({"password", "password1", "password123", "1234567890", "qwertyuiop", "letmein123",
                               "iloveyou12", "admin12345", "welcome123", "passw0rd12", "abc1234567"})
_COUNTRY = re.compile(r"^[A-Z]{2}$")
# The lockout window starts at the first failure; works on Redis 6.2 (no EXPIRE NX there).
_COUNT_FAILURE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n"""


@dataclasses.dataclass(frozen=True)
class AuthSession:
    access_token: str
    refresh_token: str
    expires_in: int
    user: UserRow


@dataclasses.dataclass(frozen=True)
class AddressIn:
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None
    region: str | None = None
    is_default_shipping: bool = False
    is_default_billing: bool = False


# ---- validation -------------------------------------------------------------------------------------------

def normalize_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise InvalidEmail() from None


def check_password_strength(password: str) -> None:
    if len(password) < 10:
        raise WeakPassword("use at least 10 characters")
    if len(password) > 256:
        raise WeakPassword("use at most 256 characters")
    classes = sum(bool(re.search(p, password)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9]"))
    if classes < 2:
        raise WeakPassword("mix at least two of lowercase, uppercase, digits and symbols")
    if password.lower() in _COMMON_PASSWORDS or len(set(password)) < 4:
        raise WeakPassword("this password is too common")


def _clean_name(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > 100:
        raise BadUserInput(f"'{field}' is longer than 100 characters", field=field)
    return value or None


def _check_address(address: AddressIn) -> AddressIn:
    cleaned = dataclasses.replace(
        address, line1=address.line1.strip(), city=address.city.strip(), postal_code=address.postal_code.strip(),
        country=address.country.strip().upper(), line2=(address.line2 or "").strip() or None,
        region=(address.region or "").strip() or None)
    for field in ("line1", "city", "postal_code"):
        value = getattr(cleaned, field)
        if not value or len(value) > 200:
            raise BadUserInput(f"'{field}' must be 1..200 characters", field=field)
    if not _COUNTRY.match(cleaned.country):
        raise BadUserInput("'country' must be an ISO 3166 alpha-2 code such as 'US'", field="country")
    return cleaned


# ---- accounts ---------------------------------------------------------------------------------------------

async def register(session: AsyncSession, *, email: str, password: str, first_name: str | None,
                   last_name: str | None, roles: tuple[str, ...] = ("CUSTOMER",)) -> UserRow:
    email = normalize_email(email)
    check_password_strength(password)
    first_name, last_name = _clean_name(first_name, "firstName"), _clean_name(last_name, "lastName")
    password_hash = await asyncio.to_thread(_hasher.hash, password)  # ~tens of ms of CPU: off the event loop
    user = await repository.insert_user_if_email_free(session, {
        "id": next_id(), "email": email, "password_hash": password_hash, "first_name": first_name,
        "last_name": last_name, "roles": list(roles)})
    if user is None:
        raise EmailTaken()
    await add_event(session, SCHEMA, "user.registered", key=user.id, payload={
        "user_id": str(user.id), "email": user.email, "first_name": user.first_name,
        "last_name": user.last_name, "roles": user.roles})
    return user


def _failures_key(email: str) -> str:
    return f"users:login-failures:{email}"


async def authenticate(session: AsyncSession, redis: Redis, settings: Settings, *, email: str,
                       password: str) -> UserRow:
    """Check credentials with a lockout after `login_max_failures` failures for `login_lockout_seconds`."""
    try:
        email = normalize_email(email)
    except InvalidEmail:
        raise InvalidCredentials() from None
    key = _failures_key(email)
    failures = int(await redis.get(key) or 0)
    if failures >= settings.login_max_failures:
        raise AccountLocked(max(0, await redis.ttl(key)))
    user = await repository.get_user_by_email(session, email)
    # Unknown emails still pay for one hash check, so response time does not reveal which emails exist.
    password_ok = await asyncio.to_thread(_verify_password, user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not password_ok:
        await redis.eval(_COUNT_FAILURE, 1, key, settings.login_lockout_seconds)
        raise InvalidCredentials()
    await redis.delete(key)
    return user


def _verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def start_session(session: AsyncSession, issuer: TokenIssuer, settings: Settings, user: UserRow, *,
                        family_id: uuid.UUID | None = None) -> AuthSession:
    refresh_token = secrets.token_urlsafe(32)
    session.add(RefreshTokenRow(
        id=next_id(), token_hash=_hash_refresh_token(refresh_token), family_id=family_id or uuid.uuid4(),
        user_id=user.id, expires_at=datetime.now(timezone.utc) + timedelta(seconds=settings.refresh_token_ttl_seconds)))
    await session.flush()
    return AuthSession(access_token=issuer.issue(user.id, user.roles), refresh_token=refresh_token,
                       expires_in=issuer.ttl_seconds, user=user)


async def rotate_refresh_token(session: AsyncSession, issuer: TokenIssuer, settings: Settings,
                               refresh_token: str) -> AuthSession:
    """Exchange a refresh token for a new pair. A token presented twice revokes its whole family.

    On reuse this raises RefreshTokenReused AFTER flushing the revocation: the caller must commit
    before reporting the error, or the revocation would be rolled back with the request.
    """
    row = await repository.get_refresh_token_for_update(session, _hash_refresh_token(refresh_token))
    now = datetime.now(timezone.utc)
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise InvalidRefreshToken()
    if row.used_at is not None:
        await repository.revoke_token_family(session, row.family_id, now)
        await session.flush()
        raise RefreshTokenReused()
    row.used_at = now
    user = await repository.get_user(session, row.user_id)
    if user is None:
        raise InvalidRefreshToken()
    return await start_session(session, issuer, settings, user, family_id=row.family_id)


async def logout(session: AsyncSession, refresh_token: str) -> bool:
    """Revoke the login behind this refresh token (its whole family). False if it was not active."""
    row = await repository.get_refresh_token_for_update(session, _hash_refresh_token(refresh_token))
    if row is None or row.revoked_at is not None:
        return False
    return await repository.revoke_token_family(session, row.family_id, datetime.now(timezone.utc)) > 0


async def get_user_or_raise(session: AsyncSession, user_id: int, *, for_update: bool = False) -> UserRow:
    user = await repository.get_user(session, user_id, for_update=for_update)
    if user is None:
        raise UserNotFound()
    return user


async def update_profile(session: AsyncSession, user_id: int, *, first_name: str | None,
                         last_name: str | None) -> UserRow:
    user = await get_user_or_raise(session, user_id, for_update=True)
    if first_name is not None:
        user.first_name = _clean_name(first_name, "firstName")
    if last_name is not None:
        user.last_name = _clean_name(last_name, "lastName")
    await repository.touch_user(session, user)
    await session.flush()
    return user


async def grant_role(session: AsyncSession, user_id: int, role: str) -> UserRow:
    if role not in ROLES:
        raise BadUserInput(f"Unknown role '{role}'", field="role")
    user = await get_user_or_raise(session, user_id, for_update=True)
    if role not in user.roles:
        user.roles = [*user.roles, role]
        await repository.touch_user(session, user)
        await session.flush()
    return user


# ---- address book -----------------------------------------------------------------------------------------

async def add_address(session: AsyncSession, user_id: int, address_in: AddressIn) -> AddressRow:
    address_in = _check_address(address_in)
    await get_user_or_raise(session, user_id, for_update=True)  # serialises one user's address changes
    existing = await repository.addresses_by_user_ids(session, [user_id])
    if len(existing) >= 50:
        raise BadUserInput("An address book holds at most 50 addresses")
    shipping = address_in.is_default_shipping or not any(a.is_default_shipping for a in existing)
    billing = address_in.is_default_billing or not any(a.is_default_billing for a in existing)
    await repository.clear_default_flags(session, user_id, shipping=shipping, billing=billing)
    row = AddressRow(id=next_id(), user_id=user_id, line1=address_in.line1, line2=address_in.line2,
                     city=address_in.city, region=address_in.region, postal_code=address_in.postal_code,
                     country=address_in.country, is_default_shipping=shipping, is_default_billing=billing)
    session.add(row)
    await session.flush()
    return row


async def _owned_address_or_raise(session: AsyncSession, user_id: int, address_id: int) -> AddressRow:
    row = await repository.get_address(session, address_id)
    if row is None:
        raise AddressNotFound()
    if row.user_id != user_id:
        raise Forbidden("This address belongs to another user")
    return row


async def get_address_for_checkout(session: AsyncSession, user_id: int, address_id: int) -> AddressRow:
    """A saved address for placing an order (the internal route orders calls): only its owner's checkout."""
    return await _owned_address_or_raise(session, user_id, address_id)


async def update_address(session: AsyncSession, user_id: int, address_id: int, address_in: AddressIn) -> AddressRow:
    address_in = _check_address(address_in)
    await get_user_or_raise(session, user_id, for_update=True)
    row = await _owned_address_or_raise(session, user_id, address_id)
    # A default can be moved to another address but not switched off, so a user with addresses keeps one.
    shipping = address_in.is_default_shipping and not row.is_default_shipping
    billing = address_in.is_default_billing and not row.is_default_billing
    await repository.clear_default_flags(session, user_id, shipping=shipping, billing=billing)
    for field in ("line1", "line2", "city", "region", "postal_code", "country"):
        setattr(row, field, getattr(address_in, field))
    row.is_default_shipping = row.is_default_shipping or shipping
    row.is_default_billing = row.is_default_billing or billing
    await session.flush()
    return row


async def delete_address(session: AsyncSession, user_id: int, address_id: int) -> bool:
    await get_user_or_raise(session, user_id, for_update=True)
    row = await _owned_address_or_raise(session, user_id, address_id)
    was_shipping, was_billing = row.is_default_shipping, row.is_default_billing
    await session.delete(row)
    await session.flush()
    remaining = await repository.addresses_by_user_ids(session, [user_id])
    if remaining and (was_shipping or was_billing):
        heir = remaining[0]  # the oldest remaining address inherits the default
        heir.is_default_shipping = heir.is_default_shipping or was_shipping
        heir.is_default_billing = heir.is_default_billing or was_billing
        await session.flush()
    return True
