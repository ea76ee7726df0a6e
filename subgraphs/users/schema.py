"""GraphQL adapter of the users domain: validates input, calls service.py, maps rows to types."""
from __future__ import annotations

import enum
from typing import Any

import strawberry

from kernel.auth import TokenIssuer
from kernel.graphql import Info, PostalAddressInput, build_schema
from kernel.ids import parse_id
from kernel.response_cache import response_cache_extension
from subgraphs.users import cache, service
from subgraphs.users.dataloaders import AddressesByUserIdLoader, UserByIdLoader
from subgraphs.users.errors import RefreshTokenReused
from subgraphs.users.models import AddressRow, UserRow


@strawberry.enum
class Role(enum.Enum):
    CUSTOMER = "CUSTOMER"
    SELLER = "SELLER"
    ADMIN = "ADMIN"


@strawberry.type
class Address:
    id: strawberry.ID
    line1: str
    line2: str | None
    city: str
    region: str | None
    postal_code: str
    country: str
    is_default_shipping: bool
    is_default_billing: bool

    @classmethod
    def from_row(cls, row: AddressRow) -> Address:
        return cls(id=strawberry.ID(str(row.id)), line1=row.line1, line2=row.line2, city=row.city,
                   region=row.region, postal_code=row.postal_code, country=row.country,
                   is_default_shipping=row.is_default_shipping, is_default_billing=row.is_default_billing)


@strawberry.federation.type(keys=["id"])
class User:
    id: strawberry.ID
    first_name: str | None
    last_name: str | None
    roles: list[Role]
    email_address: strawberry.Private[str]
    # An auth payload's user is the caller, who has just proved it, though the request carries no token yet.
    is_caller: strawberry.Private[bool] = False

    @classmethod
    def from_row(cls, row: UserRow, *, is_caller: bool = False) -> User:
        return cls(id=strawberry.ID(str(row.id)), email_address=row.email, first_name=row.first_name,
                   last_name=row.last_name, roles=[Role(r) for r in row.roles], is_caller=is_caller)

    @strawberry.field(description=(
        "Seen by the user themself and by ADMINs. A seller's (SELLER or ADMIN role) is its shop's public contact; "
        "anyone else's is FORBIDDEN (UNAUTHENTICATED without a token): a review's author is a customer."))
    def email(self, info: Info) -> str:
        if self.is_caller or Role.SELLER in self.roles or Role.ADMIN in self.roles:
            return self.email_address
        ctx = info.context
        ctx.mark_uncacheable()  # private, per caller
        service.check_can_view_user(ctx.require_user(), int(self.id))
        return self.email_address

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID, **_unknown: Any) -> User | None:
        row = await info.context.loader(UserByIdLoader).load(int(id))
        return cls.from_row(row) if row else None

    @strawberry.field(description="The address book; visible to the user and to admins only.")
    async def addresses(self, info: Info) -> list[Address]:
        ctx = info.context
        ctx.mark_uncacheable()  # private, per caller
        service.check_can_view_address_book(ctx.require_user(), int(self.id))
        return [Address.from_row(r) for r in await ctx.loader(AddressesByUserIdLoader).load(int(self.id))]


@strawberry.type
class AuthPayload:
    access_token: str
    refresh_token: str
    expires_in: int = strawberry.field(description="Seconds until the access token expires")
    user: User

    @classmethod
    def from_session(cls, auth: service.AuthSession) -> AuthPayload:
        return cls(access_token=auth.access_token, refresh_token=auth.refresh_token, expires_in=auth.expires_in,
                   user=User.from_row(auth.user, is_caller=True))


@strawberry.input
class RegisterInput:
    email: str
    password: str
    first_name: str | None = None
    last_name: str | None = None


@strawberry.input
class UpdateProfileInput:
    first_name: str | None = None
    last_name: str | None = None


@strawberry.input
class AddressInput(PostalAddressInput):
    is_default_shipping: bool = False
    is_default_billing: bool = False

    def to_service(self) -> service.AddressIn:
        return service.AddressIn(**vars(self.to_postal_address()), is_default_shipping=self.is_default_shipping,
                                 is_default_billing=self.is_default_billing)


def _issuer(info: Info) -> TokenIssuer:
    return info.context.resources.extras["issuer"]


@strawberry.type
class Query:
    @strawberry.field(description="The caller; null without a token, UNAUTHENTICATED with a bad one.")
    async def me(self, info: Info) -> User | None:
        ctx = info.context
        if ctx.user is None:
            return None
        row = await ctx.loader(UserByIdLoader).load(ctx.user.user_id)
        return User.from_row(row) if row else None

    @strawberry.field(description="A user by id (ADMIN, or the user themself).")
    async def user(self, info: Info, id: strawberry.ID) -> User | None:
        ctx = info.context
        user_id = parse_id(id)
        service.check_can_view_user(ctx.require_user(), user_id)
        row = await ctx.loader(UserByIdLoader).load(user_id)
        return User.from_row(row) if row else None


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def register(self, info: Info, input: RegisterInput) -> AuthPayload:
        ctx = info.context
        session = await ctx.session()
        user = await service.register(session, email=input.email, password=input.password,
                                      first_name=input.first_name, last_name=input.last_name, redis=ctx.redis)
        return AuthPayload.from_session(await service.start_session(session, _issuer(info), ctx.settings, user))

    @strawberry.mutation
    async def login(self, info: Info, email: str, password: str) -> AuthPayload:
        ctx = info.context
        session = await ctx.session()
        user = await service.authenticate(session, ctx.redis, ctx.settings, email=email, password=password)
        return AuthPayload.from_session(await service.start_session(session, _issuer(info), ctx.settings, user))

    @strawberry.mutation
    async def refresh_token(self, info: Info, refresh_token: str) -> AuthPayload:
        ctx = info.context
        try:
            auth = await service.rotate_refresh_token(await ctx.session(), _issuer(info), ctx.settings, refresh_token)
        except RefreshTokenReused:
            await ctx.finish(commit=True)  # the family revocation must survive the error response
            raise
        return AuthPayload.from_session(auth)

    @strawberry.mutation
    async def logout(self, info: Info, refresh_token: str) -> bool:
        return await service.logout(await info.context.session(), refresh_token)

    @strawberry.mutation
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> User:
        ctx = info.context
        caller = ctx.require_user()
        row = await service.update_profile(await ctx.session(), ctx.redis, caller.user_id,
                                           first_name=input.first_name, last_name=input.last_name)
        return User.from_row(row)

    @strawberry.mutation
    async def add_address(self, info: Info, input: AddressInput) -> Address:
        ctx = info.context
        caller = ctx.require_user()
        return Address.from_row(await service.add_address(await ctx.session(), caller.user_id, input.to_service()))

    @strawberry.mutation
    async def update_address(self, info: Info, id: strawberry.ID, input: AddressInput) -> Address:
        ctx = info.context
        caller = ctx.require_user()
        row = await service.update_address(await ctx.session(), caller.user_id, parse_id(id), input.to_service())
        return Address.from_row(row)

    @strawberry.mutation
    async def delete_address(self, info: Info, id: strawberry.ID) -> bool:
        ctx = info.context
        caller = ctx.require_user()
        return await service.delete_address(await ctx.session(), caller.user_id, parse_id(id))

    @strawberry.mutation(description="ADMIN only. The role is in the user's next access token.")
    async def grant_role(self, info: Info, user_id: strawberry.ID, role: Role) -> User:
        ctx = info.context
        row = await service.grant_role(await ctx.session(), ctx.redis, caller=ctx.require_user(),
                                       user_id=parse_id(user_id, field="userId"), role=role.value)
        return User.from_row(row)


# Only the router's entity fetches (`_entities`: public User fields, e.g. Product.seller) are cached;
# `me`, `user` and `addresses` depend on the caller and always execute.
ResponseCache = response_cache_extension(generation=cache.GENERATION, root_fields=frozenset({"_entities"}))
schema = build_schema(query=Query, mutation=Mutation, types=[User], extensions=[ResponseCache])
