"""OpenTelemetry tracing: one order's saga is one trace, from the router through the subgraphs, the outbox,
Kafka and the consumers to the next outbox.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set: then `setup_tracing` configures the SDK with a batching OTLP/HTTP
exporter (which reads the standard `OTEL_EXPORTER_OTLP_*` variables itself) and `OTEL_SERVICE_NAME`, when set,
names the process. While it is off, nothing here touches the OpenTelemetry context: `current_traceparent()` is
None after one global check, `consumer_span` is a shared no-op context manager, and the HTTP middleware is not
installed at all; the request and event hot paths pay nothing more.

The context crosses each hop as a W3C `traceparent`:
  HTTP request header  -> `TracingMiddleware` (a server span per request)
  `add_event`          -> the outbox row's `traceparent` column (the span active when the event was added)
  the relay            -> the Kafka record's `traceparent` header
  the consumer         -> `consumer_span`, whose parent is that header, so the handler's own `add_event`
                          carries the same trace on to the next hop.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from kernel.settings import Settings

TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()

# Set by setup_tracing when tracing is on; None means every helper below is a no-op.
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None


def enabled() -> bool:
    return _tracer is not None


def setup_tracing(service_name: str, settings: Settings, *, exporter: SpanExporter | None = None) -> bool:
    """Turn tracing on for this process when `settings.otel_exporter_otlp_endpoint` is set (or, in tests, when an
    `exporter` is given: its spans are exported one by one, synchronously). Returns whether tracing is on.
    Idempotent: a process configures tracing once, whoever asks first."""
    global _provider, _tracer
    if _tracer is not None:
        return True
    if exporter is None and not settings.otel_exporter_otlp_endpoint:
        return False
    # The SDK is imported only when tracing is on: a process without an endpoint never loads it.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # No endpoint argument: the exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, ... itself and
        # appends /v1/traces the standard way.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        # The global provider too, so any library instrumentation lands in the same pipeline. Only here: the
        # global can be set once per process, and tests switch tracing on and off.
        trace.set_tracer_provider(provider)
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _provider = provider
    _tracer = provider.get_tracer("nexuscart")
    return True


def shutdown_tracing() -> None:
    """Flush what is buffered and turn tracing off (process exit, and tests)."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def current_traceparent() -> str | None:
    """The W3C traceparent of the span active now, or None (tracing off, or no span)."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def inject(carrier: dict[str, str]) -> dict[str, str]:
    """Add the active span's `traceparent` (and `tracestate`) to `carrier`, e.g. an outgoing request's headers;
    unchanged while tracing is off."""
    if _tracer is not None:
        _PROPAGATOR.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str]) -> otel_context.Context:
    """The context a `traceparent` in `carrier` names (an empty context when there is none or it is invalid)."""
    return _PROPAGATOR.extract(carrier)


def _header(headers: Iterable[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode("latin-1")
    return None


def consumer_span(record: ConsumerRecord[Any, Any], group: str) -> contextlib.AbstractContextManager[Any]:
    """Run an event handler inside this: a consumer span whose parent is the record's `traceparent` header, so
    what the handler adds to the outbox continues the trace. A shared no-op while tracing is off (the record is
    not even looked at)."""
    if _tracer is None:
        return _NO_SPAN
    return _consumer_span(_tracer, record.topic, group, _header(record.headers, TRACEPARENT))


@contextlib.contextmanager
def _consumer_span(tracer: trace.Tracer, topic: str, group: str, traceparent: str | None) -> Iterator[None]:
    parent = extract({TRACEPARENT: traceparent}) if traceparent else None
    with tracer.start_as_current_span(f"{topic} process", context=parent, kind=SpanKind.CONSUMER,
                                      attributes={"messaging.system": "kafka",
                                                  "messaging.destination.name": topic,
                                                  "messaging.consumer.group.name": group}):
        yield


class TracingMiddleware:
    """Pure ASGI: a server span per HTTP request, the child of the caller's `traceparent` header (the router's
    span), current while the request is handled. Installed by kernel.app only while tracing is on."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        tracer = _tracer
        if scope["type"] != "http" or tracer is None:
            await self.app(scope, receive, send)
            return
        carrier: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            if name in (b"traceparent", b"tracestate"):
                carrier[name.decode()] = value.decode("latin-1")
        method = scope.get("method", "GET")
        path = scope.get("path", "")
        with tracer.start_as_current_span(f"{method} {path}", context=extract(carrier), kind=SpanKind.SERVER,
                                          attributes={"http.request.method": method, "url.path": path}) as span:

            async def send_with_status(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, send_with_status)
