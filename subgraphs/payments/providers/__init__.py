"""Payment providers: the interface and registry (base.py) and one module per provider, registered on import.

Adding a provider is one module beside these (implement `PaymentProvider`, call `register_provider`) and its
import below; `PAYMENT_PROVIDERS` then accepts its name.
"""
from __future__ import annotations

from subgraphs.payments.providers import simulated, stripe  # noqa: F401 - importing registers them
from subgraphs.payments.providers.base import (
    PROVIDERS_EXTRA,
    IdempotencyKeyReused,
    InvalidProviderRequest,
    NextAction,
    PaymentProvider,
    ProviderError,
    ProviderResult,
    Providers,
    ProviderStatus,
    ReferenceRecorder,
    accepted_providers,
    build_providers,
    register_provider,
    shared_providers,
)
from subgraphs.payments.providers.simulated import SimulatedProvider

__all__ = ["PROVIDERS_EXTRA", "IdempotencyKeyReused", "InvalidProviderRequest", "NextAction", "PaymentProvider",
           "ProviderError", "ProviderResult", "ProviderStatus", "Providers", "ReferenceRecorder", "SimulatedProvider",
           "accepted_providers", "build_providers", "register_provider", "shared_providers"]
