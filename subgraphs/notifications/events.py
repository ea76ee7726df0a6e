"""The events the notifications domain emits: none. It is a pure consumer (consumers.py); partners receive
events through webhooks instead (service.py, webhooks.py)."""
from __future__ import annotations
