"""Business rules of the users domain: accounts, credentials, sessions, roles, address book.

Service functions take the session first and only flush; the caller (GraphQL edge or a worker) owns
the transaction. A change to a user queues the refresh of the subgraph's cached answers (cache.py) to run
once that transaction has committed.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.address import PostalAddress, clean_address
from kernel.auth import Principal, TokenIssuer
from kernel.errors import BadUserInput, Forbidden
from kernel.ids import next_id
from kernel.outbox import add_event
from kernel.settings import Settings
from subgraphs.users import cache, repository
from subgraphs.users.errors import (
    AccountLocked,
    AddressNotFound,
    EmailTaken,
    InvalidCredentials,
    InvalidEmail,
    InvalidRefreshToken,
    RefreshTokenReused,
    UserNotFound,
    WeakPassword,
)
from subgraphs.users.events import UserRegistered
from subgraphs.users.models import SCHEMA, AddressRow, UserRow

ROLES = ("CUSTOMER", "SELLER", "ADMIN")
_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters
_DUMMY_HASH = _hasher.hash("not-a-real-password-used-for-timing")
_COMMON_PASSWORDS = frozenset({"password", "password1", "password123", "1234567890", "qwertyuiop", "letmein123",
                               "iloveyou12", "admin12345", "welcome123", "passw0rd12", "abc1234567"})
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
class AddressIn(PostalAddress):
    """A postal address (kernel/address.py) with the address book's default flags."""
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
    """The kernel's postal-address rules (the same as orders' shipping address); the flags pass through."""
    cleaned = clean_address(address)
    return AddressIn(**cleaned.as_dict(), is_default_shipping=address.is_default_shipping,
                     is_default_billing=address.is_default_billing)


# ---- accounts ---------------------------------------------------------------------------------------------

def _refresh_cached_users(session: AsyncSession, redis: Redis) -> None:
    """Cached `_entities` answers must not outlive a committed change to a user: refresh them after the commit
    (nothing if the transaction rolls back)."""
    cache.GENERATION.bump_after_commit(session, redis)


def check_can_view_user(caller: Principal, user_id: int) -> None:
    """A user's account is the user's own business, and an admin's."""
    if caller.user_id != user_id:
        caller.require_role("ADMIN")


def check_can_view_address_book(caller: Principal, user_id: int) -> None:
    if caller.user_id != user_id and not caller.has_role("ADMIN"):
        raise Forbidden("Only the user or an admin can see this address book")


async def register(session: AsyncSession, *, email: str, password: str, first_name: str | None,
                   last_name: str | None, roles: tuple[str, ...] = ("CUSTOMER",),
                   redis: Redis | None = None) -> UserRow:
    """A new account. `redis`: the users subgraph's cache, refreshed once the account commits; None only
    where no subgraph can have cached answers about it (test fixtures)."""
    email = normalize_email(email)
    check_password_strength(password)
    first_name, last_name = _clean_name(first_name, "firstName"), _clean_name(last_name, "lastName")
    password_hash = await asyncio.to_thread(_hasher.hash, password)  # ~tens of ms of CPU: off the event loop
    user = await repository.insert_user_if_email_free(session, {
        "id": next_id(), "email": email, "password_hash": password_hash, "first_name": first_name,
        "last_name": last_name, "roles": list(roles)})
    if user is None:
        raise EmailTaken()
    await add_event(session, SCHEMA, UserRegistered(user_id=user.id, email=user.email, first_name=user.first_name,
                                                    last_name=user.last_name, roles=list(user.roles)), key=user.id)
    if redis is not None:
        _refresh_cached_users(session, redis)
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
    await repository.insert_refresh_token(session, {
        "id": next_id(), "token_hash": _hash_refresh_token(refresh_token), "family_id": family_id or uuid.uuid4(),
        "user_id": user.id,
        "expires_at": datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds)})
    return AuthSession(access_token=issuer.issue(user.id, user.roles), refresh_token=refresh_token,
                       expires_in=issuer.ttl_seconds, user=user)


async def rotate_refresh_token(session: AsyncSession, issuer: TokenIssuer, settings: Settings,
                               refresh_token: str) -> AuthSession:
    """Exchange a refresh token for a new pair. A token presented twice revokes its whole family.

    On reuse this raises RefreshTokenReused AFTER flushing the revocation: the caller must commit
    before reporting the error, or the revocation would be rolled back with the request.
    """
    row = await repository.get_refresh_token_for_update(session, _hash_refresh_token(refresh_token))
    now = datetime.now(UTC)
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise InvalidRefreshToken()
    if row.used_at is not None:
        await repository.revoke_token_family(session, row.family_id, now)
        await session.flush()
        raise RefreshTokenReused()
    await repository.mark_refresh_token_used(session, row, now)
    user = await repository.get_user(session, row.user_id)
    if user is None:
        raise InvalidRefreshToken()
    return await start_session(session, issuer, settings, user, family_id=row.family_id)


async def logout(session: AsyncSession, refresh_token: str) -> bool:
    """Revoke the login behind this refresh token (its whole family). False if it was not active."""
    row = await repository.get_refresh_token_for_update(session, _hash_refresh_token(refresh_token))
    if row is None or row.revoked_at is not None:
        return False
    return await repository.revoke_token_family(session, row.family_id, datetime.now(UTC)) > 0


async def get_user_or_raise(session: AsyncSession, user_id: int, *, for_update: bool = False) -> UserRow:
    user = await repository.get_user(session, user_id, for_update=for_update)
    if user is None:
        raise UserNotFound()
    return user


async def update_profile(session: AsyncSession, redis: Redis, user_id: int, *, first_name: str | None,
                         last_name: str | None) -> UserRow:
    user = await get_user_or_raise(session, user_id, for_update=True)
    changes = {}
    if first_name is not None:
        changes["first_name"] = _clean_name(first_name, "firstName")
    if last_name is not None:
        changes["last_name"] = _clean_name(last_name, "lastName")
    await repository.update_user(session, user, changes)
    _refresh_cached_users(session, redis)
    return user


async def grant_role(session: AsyncSession, redis: Redis, *, caller: Principal, user_id: int, role: str) -> UserRow:
    """ADMIN only. The role is in the user's next access token."""
    caller.require_role("ADMIN")
    if role not in ROLES:
        raise BadUserInput(f"Unknown role '{role}'", field="role")
    user = await get_user_or_raise(session, user_id, for_update=True)
    if role not in user.roles:
        await repository.update_user(session, user, {"roles": [*user.roles, role]})
    _refresh_cached_users(session, redis)
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
    return await repository.insert_address(session, {
        "id": next_id(), "user_id": user_id, "line1": address_in.line1, "line2": address_in.line2,
        "city": address_in.city, "region": address_in.region, "postal_code": address_in.postal_code,
        "country": address_in.country, "is_default_shipping": shipping, "is_default_billing": billing})


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
    return await repository.update_address(session, row, {
        **address_in.as_dict(), "is_default_shipping": row.is_default_shipping or shipping,
        "is_default_billing": row.is_default_billing or billing})


async def delete_address(session: AsyncSession, user_id: int, address_id: int) -> bool:
    await get_user_or_raise(session, user_id, for_update=True)
    row = await _owned_address_or_raise(session, user_id, address_id)
    was_shipping, was_billing = row.is_default_shipping, row.is_default_billing
    await repository.delete_address(session, row)
    remaining = await repository.addresses_by_user_ids(session, [user_id])
    if remaining and (was_shipping or was_billing):
        heir = remaining[0]  # the oldest remaining address inherits the default
        await repository.update_address(session, heir, {
            "is_default_shipping": heir.is_default_shipping or was_shipping,
            "is_default_billing": heir.is_default_billing or was_billing})
    return True
