-- Notifications. What this domain learns from others' events (recipients, orders, flash sales) is kept in its own
-- tables; every effect of an event is written in the inbox's transaction.

-- Who can be told: user.registered (the address and the roles, nothing else about the person).
CREATE TABLE {schema}.recipients (
    user_id     bigint      PRIMARY KEY,
    email       text        NOT NULL,
    roles       text[]      NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recipients_admin_idx ON {schema}.recipients (user_id) WHERE 'ADMIN' = ANY (roles);

-- What order.placed said about an order: later events (paid, shipped, payment failed, refunds) carry only ids.
CREATE TABLE {schema}.order_facts (
    order_id    bigint      PRIMARY KEY,
    user_id     bigint      NOT NULL,
    number      text        NOT NULL,
    currency    text        NOT NULL,
    subtotal    numeric(18, 2) NOT NULL,
    discount    numeric(18, 2) NOT NULL,
    total       numeric(18, 2) NOT NULL,
    lines       jsonb       NOT NULL,
    placed_at   timestamptz NOT NULL
);

-- In-app notifications, one per (event, user, kind): a redelivered event inserts nothing.
CREATE TABLE {schema}.notifications (
    id          bigint      PRIMARY KEY,
    user_id     bigint      NOT NULL,
    event_id    uuid        NOT NULL,
    kind        text        NOT NULL,
    category    text        NOT NULL,
    title       text        NOT NULL,
    body        text        NOT NULL,
    order_id    bigint,
    link        text,
    in_app      boolean     NOT NULL,
    read_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notification_once UNIQUE (event_id, user_id, kind),
    CONSTRAINT notification_category CHECK (category IN ('TRANSACTIONAL', 'MARKETING'))
);
CREATE INDEX notifications_user_idx ON {schema}.notifications (user_id, id DESC) WHERE in_app;
CREATE INDEX notifications_unread_idx ON {schema}.notifications (user_id, id DESC) WHERE in_app AND read_at IS NULL;

-- The send ledger: one row per (event, channel, recipient), written in the same transaction as the notification.
-- PENDING rows are sent after the commit (and by the retry job when that never happened); the others say why
-- nothing was sent. `claimed_until` is the lease of the process sending it, so two senders never both send.
CREATE TABLE {schema}.deliveries (
    id               bigint      PRIMARY KEY,
    notification_id  bigint      NOT NULL REFERENCES {schema}.notifications (id) ON DELETE CASCADE,
    event_id         uuid        NOT NULL,
    channel          text        NOT NULL,
    recipient        bigint      NOT NULL,
    address          text,
    status           text        NOT NULL,
    subject          text        NOT NULL,
    text_body        text        NOT NULL,
    html_body        text,
    marketing        boolean     NOT NULL DEFAULT false,
    attempts         integer     NOT NULL DEFAULT 0,
    last_error       text,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claimed_until    timestamptz,
    sent_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT delivery_once UNIQUE (event_id, channel, recipient),
    CONSTRAINT delivery_channel CHECK (channel IN ('EMAIL', 'SMS', 'PUSH')),
    CONSTRAINT delivery_status CHECK (status IN ('PENDING', 'SENT', 'FAILED', 'UNAVAILABLE', 'DISABLED',
                                                 'NO_ADDRESS'))
);
CREATE INDEX deliveries_due_idx ON {schema}.deliveries (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX deliveries_notification_idx ON {schema}.deliveries (notification_id);

-- A user's choice per (category, channel); no row: the default (see service.DEFAULTS).
CREATE TABLE {schema}.preferences (
    user_id     bigint      NOT NULL,
    category    text        NOT NULL,
    channel     text        NOT NULL,
    enabled     boolean     NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, category, channel)
);

-- Flash sales (flashsale.scheduled), and who asked to be told when one starts.
CREATE TABLE {schema}.flash_sales (
    sale_id     bigint      PRIMARY KEY,
    variant_id  bigint      NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    announced_at timestamptz
);
CREATE INDEX flash_sales_due_idx ON {schema}.flash_sales (starts_at) WHERE announced_at IS NULL;

CREATE TABLE {schema}.flash_sale_reminders (
    sale_id     bigint      NOT NULL,
    user_id     bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sale_id, user_id)
);

-- Partner webhooks. The signing secret is needed in clear to sign, so it is stored encrypted (AES-GCM under
-- NOTIFICATIONS_SECRET_KEY), never hashed.
CREATE TABLE {schema}.webhook_subscriptions (
    id                bigint      PRIMARY KEY,
    url               text        NOT NULL,
    event_types       text[]      NOT NULL,
    secret_encrypted  bytea       NOT NULL,
    created_by        bigint      NOT NULL,
    active            boolean     NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {schema}.webhook_deliveries (
    id               bigint      PRIMARY KEY,
    subscription_id  bigint      NOT NULL REFERENCES {schema}.webhook_subscriptions (id) ON DELETE CASCADE,
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    body             bytea       NOT NULL,
    status           text        NOT NULL DEFAULT 'PENDING',
    attempts         integer     NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error       text,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claimed_until    timestamptz,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_delivery_once UNIQUE (subscription_id, event_id),
    CONSTRAINT webhook_delivery_status CHECK (status IN ('PENDING', 'DELIVERED', 'PARKED'))
);
CREATE INDEX webhook_deliveries_due_idx ON {schema}.webhook_deliveries (next_attempt_at) WHERE status = 'PENDING';
