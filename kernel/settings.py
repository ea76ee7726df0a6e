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

    # Database pool per process. Kept connections cover a process's usual peak (16 requests in flight, a worker's
    # concurrent batches): an overflow connection is closed as soon as it is returned to a full pool, and with 10
    # kept the cart opened ~600 new Postgres sessions in a 20 s addToCart run at 16 clients, each a backend
    # forked and its prepared statements made again. 20 + 5 (bench/README: Performance) cut Postgres' CPU per
    # paid order by about a quarter; the overflow is slack for a transaction that opens a second one (payments).
    db_pool_size: int = 20
    db_max_overflow: int = 5

    # Worker: how old a fetched event may grow in a background consumer group (notifications, search, shipping's
    # and reviews' projections...) before the group applies it even though the groups a shopper waits for keep
    # the process busy (kernel/consumer.py PromptFirst). Longer gives more of a burst's CPU to the order saga; the
    # projections lag by about this much at most during it (README: Performance).
    worker_background_max_defer_seconds: float = 10.0

    # Outbox relay.
    outbox_batch_size: int = 1000  # rows per relay round; bench/relay_bench.py measured 200 slower
    outbox_idle_poll_seconds: float = 1.0
    # Published rows stay this long, so the events a broker loses (the embedded one keeps topics in memory)
    # can be published again; the relay looks for such a broker this often, and prunes this often.
    outbox_retention_seconds: float = 24 * 3600
    outbox_broker_check_seconds: float = 15.0
    outbox_prune_interval_seconds: float = 60.0
    relay_health_port: int = 0  # 0: no /health and /metrics server

    # Tracing (kernel/tracing.py): spans are exported over OTLP/HTTP only when this standard OpenTelemetry variable
    # is set; the exporter reads the other OTEL_EXPORTER_OTLP_* variables itself. Empty: tracing off, at no cost.
    otel_exporter_otlp_endpoint: str = ""

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
    # The cart asks catalog and inventory about a variant its projections have not heard of yet.
    inventory_service_url: str = "http://127.0.0.1:4004"
    internal_http_timeout_seconds: float = 5.0

    # Cart.
    cart_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60, description="abandoned carts expire")
    cart_max_lines: int = 100

    # Order saga.
    order_payment_timeout_seconds: float = Field(default=15 * 60, gt=0,
                                                 description="AWAITING_PAYMENT longer than this is cancelled")
    saga_sweep_interval_seconds: float = Field(default=5.0, gt=0)
    # The saga watchdog: a PENDING or AWAITING_PAYMENT order whose step has not moved for this long is asked
    # about again (its order.placed / order.confirmed re-sent; the consumers answer a re-sent event from what
    # they recorded); a PENDING order older than saga_pending_give_up_seconds is cancelled (PAYMENT_TIMEOUT)
    # and its stock released. That deadline is its own setting, longer than a worker restart under load: while
    # inventory's answer is still queued in Kafka, re-asking is right and cancelling is not.
    saga_step_timeout_seconds: float = Field(default=30.0, gt=0)
    saga_pending_give_up_seconds: float = Field(default=15 * 60, gt=0)

    # Payments.
    payment_providers: str = "simulated"  # comma-separated providers placeOrder accepts
    # Stripe (subgraphs/payments/providers/stripe.py), used when PAYMENT_PROVIDERS names `stripe`.
    stripe_api_key: str = ""  # sk_test_... / sk_live_...; required when `stripe` is accepted
    stripe_api_base: str = ""  # empty: Stripe itself; e.g. a localstripe URL in tests and demos
    stripe_webhook_secret: str = ""  # whsec_...: POST /webhooks/stripe refuses every request without it
    stripe_max_network_retries: int = Field(default=2, ge=0, le=10)  # same idempotency key on every retry
    stripe_timeout_seconds: float = Field(default=20.0, gt=0)
    # The reconciler settles payments (and refunds) the provider has not answered for at least `after` seconds.
    payment_reconcile_interval_seconds: float = Field(default=15.0, gt=0)
    payment_reconcile_after_seconds: float = Field(default=60.0, ge=0)

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

    # Search (subgraphs/search): Elasticsearch when set (e.g. http://elasticsearch:9200), else Postgres full-text.
    elasticsearch_url: str = ""
    elasticsearch_index: str = "products"  # the alias searches read; each rebuild creates <alias>-<timestamp>

    # GraphQL subscriptions on one WebSocket to a subgraph. The router multiplexes every subscriber with the same
    # credentials (all anonymous ones, say) onto one socket per router process, so this bounds a router process's
    # subscribers per credential, not one shopper's. Strawberry's default of 100 refused the 101st anonymous
    # `flashSaleStock` subscriber with "Subscription limit reached".
    subscriptions_per_connection: int = Field(default=10_000, ge=1)

    # Worker process (workers/runtime.py).
    worker_health_port: int = 0

    # Reviews (subgraphs/reviews). Auto-approve: a review is APPROVED (public) as written, and stays so when
    # edited, instead of waiting for an ADMIN. Writes (create, edit, delete, vote, reply) per user per minute.
    reviews_auto_approve: bool = False
    reviews_writes_per_minute: int = Field(default=20, ge=1)

    # Notifications (subgraphs/notifications). Email over SMTP to SMTP_URL (smtp://host:port, smtps:// for TLS,
    # user:password@ for AUTH; empty: the email channel is off); SMS and push through one HTTP provider each
    # (empty: that channel is off). The secret key signs unsubscribe links and encrypts webhook signing secrets
    # (empty: generated once and shared through Redis; set it in production). Sends and webhook deliveries are
    # retried with exponential backoff by the worker's jobs, then parked.
    smtp_url: str = ""
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    notifications_mail_from: str = "NexusCart <no-reply@nexuscart.dev>"
    notifications_public_url: str = "http://localhost:4011"  # where unsubscribe links point (this subgraph)
    notifications_shop_url: str = "http://localhost:4000"  # the storefront: order links in messages
    notifications_secret_key: str = ""
    sms_provider_url: str = ""
    push_provider_url: str = ""
    notifications_send_max_attempts: int = Field(default=8, ge=1)
    notifications_retry_interval_seconds: float = Field(default=5.0, gt=0)
    notifications_send_lease_seconds: float = Field(default=120.0, gt=0)
    notifications_webhook_max_attempts: int = Field(default=6, ge=1)
    notifications_webhook_backoff_seconds: float = Field(default=2.0, gt=0)
    notifications_webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    notifications_flash_sale_lead_seconds: float = Field(default=900.0, ge=0)
    notifications_flash_sale_check_interval_seconds: float = Field(default=15.0, gt=0)

    # Shipping (subgraphs/shipping). Orders asks SHIPPING_SERVICE_URL for the shipping price at placeOrder (empty:
    # no shipping subgraph, every order ships for 0), bounded by the quote timeout. A variant whose weight shipping
    # has not learnt from catalog's events yet weighs the default.
    shipping_service_url: str = ""
    shipping_quote_timeout_seconds: float = Field(default=2.0, gt=0)
    shipping_default_weight_grams: int = Field(default=500, ge=0)

    # Recommendations (subgraphs/recommendations). The model registry's directory (ml/registry.py; None: no model,
    # every list comes from popularity in the domain's projection). The subgraph checks the registry's current
    # version and refreshes its popularity figures this often, off the request path; the worker retrains this
    # often, from the interactions of the last `training_days`. trackInteraction per shopper per minute; a bought
    # product is not recommended to its buyer for `bought_exclusion_days`.
    recommendations_model_dir: Path | None = None
    recommendations_refresh_seconds: float = Field(default=5.0, gt=0)
    recommendations_retrain_interval_seconds: float = Field(default=3600.0, gt=0)
    recommendations_training_days: int = Field(default=90, ge=1)
    recommendations_interactions_per_minute: int = Field(default=120, ge=1)
    recommendations_bought_exclusion_days: int = Field(default=30, ge=1)

    def require_peers(self, *names: str) -> None:
        missing = [n for n in names if not getattr(self, n)]
        if missing:
            env = ", ".join(n.upper() for n in missing)
            raise SystemExit(f"{self.service_name}: missing required setting(s) {env}; "
                             f"set them or start everything with `make run`.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
