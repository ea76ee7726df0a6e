from __future__ import annotations

from collections import defaultdict

from kernel.graphql import ContextLoader
from subgraphs.users import repository
from subgraphs.users.models import AddressRow, UserRow


class UserByIdLoader(ContextLoader[int, UserRow | None]):
    async def batch_load(self, keys: list[int]) -> list[UserRow | None]:
        rows = await repository.users_by_ids(await self.context.session(), keys)
        by_id = {r.id: r for r in rows}
        return [by_id.get(k) for k in keys]


class AddressesByUserIdLoader(ContextLoader[int, list[AddressRow]]):
    async def batch_load(self, keys: list[int]) -> list[list[AddressRow]]:
        grouped: dict[int, list[AddressRow]] = defaultdict(list)
        for row in await repository.addresses_by_user_ids(await self.context.session(), keys):
            grouped[row.user_id].append(row)
        return [grouped[k] for k in keys]
