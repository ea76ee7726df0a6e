"""SQL for the users domain (the rule: kernel/db.py). The address book and the user row are written the ORM way
(load the row, change its attributes, flush), here only; everything else is Core statements."""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db import any_of, rowcount
from subgraphs.users.models import AddressRow, RefreshTokenRow, UserRow


async def insert_user_if_email_free(session: AsyncSession, row: dict) -> UserRow | None:
    """One statement, race-free: concurrent registrations of one email leave exactly one winner."""
    stmt = insert(UserRow).values(**row).on_conflict_do_nothing(index_elements=["email"]).returning(UserRow)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_user(session: AsyncSession, user_id: int, *, for_update: bool = False) -> UserRow | None:
    stmt = select(UserRow).where(UserRow.id == user_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_user_by_email(session: AsyncSession, email: str) -> UserRow | None:
    return (await session.execute(select(UserRow).where(UserRow.email == email))).scalar_one_or_none()


async def users_by_ids(session: AsyncSession, ids: Sequence[int]) -> list[UserRow]:
    return list((await session.execute(select(UserRow).where(any_of(UserRow.id, ids)))).scalars())


async def addresses_by_user_ids(session: AsyncSession, user_ids: Sequence[int]) -> list[AddressRow]:
    stmt = select(AddressRow).where(any_of(AddressRow.user_id, user_ids)).order_by(AddressRow.id)
    return list((await session.execute(stmt)).scalars())


async def get_address(session: AsyncSession, address_id: int) -> AddressRow | None:
    return await session.get(AddressRow, address_id)


async def insert_address(session: AsyncSession, values: dict[str, Any]) -> AddressRow:
    row = AddressRow(**values)
    session.add(row)
    await session.flush()
    return row


async def update_address(session: AsyncSession, row: AddressRow, values: dict[str, Any]) -> AddressRow:
    """`values`: the columns to change on this (loaded) address."""
    for column, value in values.items():
        setattr(row, column, value)
    await session.flush()
    return row


async def delete_address(session: AsyncSession, row: AddressRow) -> None:
    await session.delete(row)
    await session.flush()


async def clear_default_flags(session: AsyncSession, user_id: int, *, shipping: bool, billing: bool) -> None:
    if shipping:
        await session.execute(update(AddressRow).where(AddressRow.user_id == user_id, AddressRow.is_default_shipping)
                              .values(is_default_shipping=False))
    if billing:
        await session.execute(update(AddressRow).where(AddressRow.user_id == user_id, AddressRow.is_default_billing)
                              .values(is_default_billing=False))


async def insert_refresh_token(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(RefreshTokenRow).values(**values))


async def mark_refresh_token_used(session: AsyncSession, row: RefreshTokenRow, at: datetime) -> None:
    row.used_at = at
    await session.flush()


async def get_refresh_token_for_update(session: AsyncSession, token_hash: bytes) -> RefreshTokenRow | None:
    stmt = select(RefreshTokenRow).where(RefreshTokenRow.token_hash == token_hash).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def revoke_token_family(session: AsyncSession, family_id: uuid.UUID, at: datetime) -> int:
    result = await session.execute(
        update(RefreshTokenRow).where(RefreshTokenRow.family_id == family_id, RefreshTokenRow.revoked_at.is_(None))
        .values(revoked_at=at))
    return rowcount(result)


async def touch_user(session: AsyncSession, user: UserRow) -> None:
    user.updated_at = (await session.execute(select(func.now()))).scalar_one()


async def update_user(session: AsyncSession, user: UserRow, values: dict[str, Any]) -> UserRow:
    """`values`: the columns to change on this (loaded, locked) user; updated_at moves too."""
    for column, value in values.items():
        setattr(user, column, value)
    await touch_user(session, user)
    await session.flush()
    return user
