"""DataLoaders bound to one request's context (never module-level: a module-level loader caches forever)."""
from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from strawberry.dataloader import DataLoader

if TYPE_CHECKING:
    from kernel.graphql.context import RequestContext

K = TypeVar("K")
V = TypeVar("V")


class ContextLoader(DataLoader[K, V], Generic[K, V], metaclass=abc.ABCMeta):
    """A DataLoader bound to one request's context; subclasses implement `batch_load`."""

    def __init__(self, context: RequestContext) -> None:
        self.context = context
        super().__init__(load_fn=self.batch_load)

    @abc.abstractmethod
    async def batch_load(self, keys: list[K]) -> Sequence[V | BaseException]:
        """One query for all `keys`; results in the same order, None (or an exception) where missing."""
