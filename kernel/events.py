"""Domain events: the envelope every event travels in, and the typed payloads that are each topic's contract.

A topic's payload is ONE frozen dataclass in the producing domain's `events.py`, declared with its topic:

    @dataclasses.dataclass(frozen=True, slots=True)
    class OrderPaid(EventPayload, topic="order.paid"):
        order_id: Id
        user_id: Id
        items: list[OrderLine]

The producer hands an instance to `kernel.outbox.add_event` (which takes the topic from it); a consumer gets
the same type back from `OrderPaid.from_payload(envelope.payload)`, which raises `MalformedEvent` for anything
that does not match (retried, then parked on the DLQ). The wire format follows the field types:
  `Id`                 a 64-bit id, written as a decimal string ("123"), read from that string (or an int)
  `Money`              a Decimal, written with exactly 2 places ("19.90"), read from such a string
  `datetime`           ISO-8601 text (`isoformat()`)
  `int` `str` `bool`   as themselves (an int field refuses a bool and a string)
  `X | None`           null or X;  `list[X]` a JSON array;  a nested dataclass a JSON object;  `Any` as is
A field with a default may be missing from a payload (events written before it existed); one declared with
`omitted_when_none()` is left out of the payload while it is None.

Every declared payload type is registered by its topic (`payload_types()`), which is how kernel/kafka.py knows
the topics to create: `load_contracts()` imports each domain's `events.py`.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, TypeVar

import orjson

from kernel.ids import is_valid_id
from kernel.money import CENT, format_money


@dataclasses.dataclass(frozen=True, slots=True)
class EventEnvelope:
    event_id: str
    event_type: str
    event_version: int
    timestamp: str
    correlation_id: str | None
    payload: dict[str, Any]

    @classmethod
    def new(cls, event_type: str, payload: dict[str, Any], *, correlation_id: str | None = None,
            event_version: int = 1) -> EventEnvelope:
        return cls(event_id=str(uuid.uuid4()), event_type=event_type, event_version=event_version,
                   timestamp=datetime.now(UTC).isoformat(), correlation_id=correlation_id,
                   payload=payload)

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> EventEnvelope:
        data = orjson.loads(raw)
        missing = {f.name for f in dataclasses.fields(cls)} - data.keys()
        if missing:
            raise ValueError(f"event envelope is missing {sorted(missing)}")
        return cls(event_id=str(data["event_id"]), event_type=str(data["event_type"]),
                   event_version=int(data["event_version"]), timestamp=str(data["timestamp"]),
                   correlation_id=data["correlation_id"], payload=dict(data["payload"]))


class MalformedEvent(ValueError):
    """A payload that does not match its topic's contract: a producer bug. The consumer retries the event,
    then parks it on the DLQ for an operator; it never guesses."""

    def __init__(self, topic: str, field: str, problem: str) -> None:
        super().__init__(f"{topic}: '{field}' {problem}")
        self.topic = topic
        self.field = field


# ---- wire types -------------------------------------------------------------------------------------------

class _Wire:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_ID, _MONEY = _Wire("Id"), _Wire("Money")
Id = Annotated[int, _ID]
Money = Annotated[Decimal, _MONEY]

_OMIT_WHEN_NONE = "nexuscart_omit_when_none"


def omitted_when_none() -> Any:
    """A field left out of the payload while it is None (and None when a payload lacks it)."""
    return dataclasses.field(default=None, metadata={_OMIT_WHEN_NONE: True})


def parse_id(value: object) -> int:
    """A payload id: its decimal string (ASCII digits only: producers write exactly that) or the int, in
    kernel.ids' range; ValueError otherwise."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if not is_valid_id(value):
        raise ValueError("is not an id")
    return value


def parse_money(value: object) -> Decimal:
    """A payload amount: a decimal string (or int) with at most 2 places; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("is not a decimal amount")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError("is not a decimal amount") from None
    if not amount.is_finite() or amount.adjusted() > 15 or amount != amount.quantize(CENT):
        raise ValueError("is not an amount with at most 2 decimal places")
    return amount.quantize(CENT)


_Encode = Callable[[Any], Any]
_Decode = Callable[[Any, str], Any]  # (raw value, the field's path for the error) -> value


def _same(value: Any) -> Any:
    return value


def _checked(kind: type, what: str) -> _Decode:
    def decode(raw: Any, path: str) -> Any:
        if not isinstance(raw, kind) or (kind is int and isinstance(raw, bool)):
            raise _Problem(path, f"is not {what}")
        return raw
    return decode


class _Problem(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem


def _wrapped(parse: Callable[[Any], Any]) -> _Decode:
    def decode(raw: Any, path: str) -> Any:
        try:
            return parse(raw)
        except ValueError as exc:
            raise _Problem(path, str(exc)) from None
    return decode


def _parse_datetime(raw: Any) -> datetime:
    if not isinstance(raw, str):
        raise ValueError("is not an ISO-8601 timestamp")
    return datetime.fromisoformat(raw)  # ValueError for anything else


def _codec(hint: Any) -> tuple[_Encode, _Decode]:
    """How a value of type `hint` is written to and read from a payload."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        marker = hint.__metadata__[0]
        if marker is _ID:
            return str, _wrapped(parse_id)
        if marker is _MONEY:
            return format_money, _wrapped(parse_money)
        return _codec(args[0])
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) != 1 or len(args) != 2:
            raise TypeError(f"payload field type {hint!r}: only `X | None` unions are supported")
        encode, decode = _codec(options[0])
        return (lambda v: None if v is None else encode(v)), (lambda r, p: None if r is None else decode(r, p))
    if origin is list:
        item_encode, item_decode = _codec(args[0])

        def decode_list(raw: Any, path: str) -> list[Any]:
            if not isinstance(raw, list):
                raise _Problem(path, "is not a list")
            return [item_decode(item, f"{path}[{i}]") for i, item in enumerate(raw)]
        return (lambda v: [item_encode(i) for i in v]), decode_list
    if origin is dict:
        return dict, _checked(dict, "an object")
    if hint is Any:
        return _same, lambda raw, path: raw
    if hint is bool:
        return _same, _checked(bool, "true or false")
    if hint is int:
        return _same, _checked(int, "an integer")
    if hint is str:
        return _same, _checked(str, "a string")
    if hint is datetime:
        return datetime.isoformat, _wrapped(_parse_datetime)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        fields = _fields(hint)

        def decode_object(raw: Any, path: str) -> Any:
            if not isinstance(raw, Mapping):
                raise _Problem(path, "is not an object")
            return _build(hint, fields, raw, f"{path}.")
        return (lambda v: _write(fields, v)), decode_object
    raise TypeError(f"payload field type {hint!r} has no wire format (kernel/events.py)")


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    encode: _Encode
    decode: _Decode
    required: bool
    omit_when_none: bool


_FIELDS: dict[type, tuple[_Field, ...]] = {}


def _fields(cls: type) -> tuple[_Field, ...]:
    cached = _FIELDS.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        cached = _FIELDS[cls] = tuple(
            _Field(f.name, *_codec(hints[f.name]),
                   required=f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
                   omit_when_none=bool(f.metadata.get(_OMIT_WHEN_NONE)))
            for f in dataclasses.fields(cls) if f.init)
    return cached


def _write(fields: tuple[_Field, ...], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        item = getattr(value, f.name)
        if item is None and f.omit_when_none:
            continue
        out[f.name] = f.encode(item)
    return out


def _build(cls: type, fields: tuple[_Field, ...], raw: Mapping[str, Any], prefix: str) -> Any:
    values: dict[str, Any] = {}
    for f in fields:
        if f.name in raw:
            values[f.name] = f.decode(raw[f.name], f"{prefix}{f.name}")
        elif f.required:
            raise _Problem(f"{prefix}{f.name}", "is missing")
    return cls(**values)


# ---- payloads and their registry --------------------------------------------------------------------------

P = TypeVar("P", bound="EventPayload")
_BY_TOPIC: dict[str, type[EventPayload]] = {}


class EventPayload:
    """Base of every topic's payload type; a subclass names its topic: `class X(EventPayload, topic="...")`,
    and is a frozen dataclass whose fields use the wire types above."""

    __slots__ = ()
    topic: ClassVar[str]

    def __init_subclass__(cls, *, topic: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if topic is None:
            # dataclass(slots=True) rebuilds the class, without the keyword but with its `topic` attribute: the
            # rebuilt class replaces the first one.
            topic = cls.__dict__.get("topic")
            if topic is None:
                return
        # Two different payloads for one topic are a mistake (the same module and name is a rebuild).
        known = _BY_TOPIC.get(topic)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise TypeError(f"topic {topic!r} already has the payload {known.__module__}.{known.__qualname__}")
        cls.topic = topic
        _BY_TOPIC[topic] = cls

    def to_payload(self) -> dict[str, Any]:
        """The JSON-ready dict the envelope carries."""
        return _write(_fields(type(self)), self)

    @classmethod
    def from_payload(cls: type[P], payload: Mapping[str, Any]) -> P:
        """The payload as this type; MalformedEvent when it does not match the contract."""
        try:
            if not isinstance(payload, Mapping):
                raise _Problem("payload", "is not an object")
            return _build(cls, _fields(cls), payload, "")
        except _Problem as exc:
            raise MalformedEvent(cls.topic, exc.path, exc.problem) from None


def payload_types() -> dict[str, type[EventPayload]]:
    """Topic -> payload type of every contract imported so far (see `load_contracts`)."""
    return dict(_BY_TOPIC)


def load_contracts(package: str = "subgraphs") -> dict[str, type[EventPayload]]:
    """Import every domain's `events.py` (`<package>.<domain>.events`) and return all topics' payload types."""
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__):
        name = f"{package}.{info.name}.events"
        if info.ispkg and importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    return payload_types()
