"""Process settings, read from environment variables when first asked for (never at import time)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    # Peers. The launcher fills these in for the embedded stack; a service started on its own
    # fails fast (see `require_peers`) rather than guessing an address.
    database_url: str = ""
    redis_url: str = ""
    kafka_bootstrap_servers: str = ""

    service_name: str = "nexuscart"
    environment: str = "development"
    log_level: str = "INFO"
    node_id: int = Field(default=0, ge=0, le=1023, description="Snowflake worker id, unique per process")

    # Auth: RS256 key pair files. Only the users subgraph needs the private key.
    jwt_private_key_file: Path | None = None
    jwt_public_key_file: Path | None = None
    jwt_issuer: str = "nexuscart"
    jwt_audience: str = "nexuscart-api"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    login_max_failures: int = 5
    login_lockout_seconds: int = 15 * 60

    # Catalog cache-aside, and whole-response caches (kernel/response_cache.py).
    catalog_cache_ttl_seconds: int = 300
    response_cache_ttl_seconds: int = 300

    # Database pool per process.
    db_pool_size: int = 10
    db_max_overflow: int = 10

    # Outbox relay.
    outbox_batch_size: int = 200
    outbox_idle_poll_seconds: float = 1.0
    relay_health_port: int = 0  # 0: no /health and /metrics server

    # Consumer retry policy before a message is parked on the DLQ topic.
    consumer_max_attempts: int = 5
    consumer_backoff_base_seconds: float = 0.2

    # Internal service-to-service addresses (the launcher fills them in; compose sets them). Orders asks the
    # cart for a checkout snapshot and users for a saved address instead of reading their stores.
    cart_service_url: str = "http://127.0.0.1:4003"
    users_service_url: str = "http://127.0.0.1:4001"
    catalog_service_url: str = "http://127.0.0.1:4002"
    orders_service_url: str = "http://127.0.0.1:4005"
    promotions_service_url: str = "http://127.0.0.1:4007"
    internal_http_timeout_seconds: float = 5.0

    # Cart.
    cart_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60, description="abandoned carts expire")
    cart_max_lines: int = 100

    # Order saga.
    order_payment_timeout_seconds: float = Field(default=15 * 60, gt=0,
                                                 description="AWAITING_PAYMENT longer than this is cancelled")
    saga_sweep_interval_seconds: float = Field(default=5.0, gt=0)

    # Payments.
    payment_providers: str = "simulated"  # comma-separated providers placeOrder accepts

    # Flash sales (subgraphs/promotions). Tokens: issued from `early` seconds before the start until the end,
    # valid `ttl` seconds, at most `issue_per_minute` per user per sale. Buckets: sustained rate per second and
    # burst, per user and per client IP, on purchaseFlashSale.
    flash_sale_token_secret: str = ""  # HMAC key of purchase tokens; empty: generated once, shared via Redis
    flash_sale_token_ttl_seconds: int = Field(default=120, ge=5)
    flash_sale_token_early_seconds: int = Field(default=300, ge=0)
    flash_sale_token_issue_per_minute: int = Field(default=10, ge=1)
    flash_sale_user_rate_per_second: float = Field(default=5.0, gt=0)
    flash_sale_user_burst: int = Field(default=10, ge=1)
    flash_sale_ip_rate_per_second: float = Field(default=200.0, gt=0)
    flash_sale_ip_burst: int = Field(default=400, ge=1)
    # The reconciler turns reservations that are older than `grace` and have no order yet into orders.
    flash_sale_reconcile_interval_seconds: float = Field(default=1.0, gt=0)
    flash_sale_reconcile_grace_seconds: float = Field(default=5.0, ge=0)
    flash_sale_stock_push_interval_seconds: float = Field(default=0.25, gt=0)

    # Worker process (workers/runtime.py).
    worker_health_port: int = 0

    def require_peers(self, *names: str) -> None:
        missing = [n for n in names if not getattr(self, n)]
        if missing:
            env = ", ".join(n.upper() for n in missing)
            raise SystemExit(f"{self.service_name}: missing required setting(s) {env}; "
                             f"set them or start everything with `make run`.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
