"""Partners: API keys for third-party clients (scopes, persisted-only, rate limits) and their usage."""
