-- One payment per order (order_id UNIQUE): it is what makes order.confirmed idempotent across
-- redeliveries and lets order.cancelled leave a tombstone that a late order.confirmed finds.
-- A tombstone is a CANCELLED row with no amount: the order was cancelled before payments ever heard
-- of its confirmation (order.confirmed and order.cancelled are different topics, not ordered).
CREATE TABLE {schema}.payments (
    id                 bigint PRIMARY KEY,
    order_id           bigint        NOT NULL UNIQUE,
    user_id            bigint        NOT NULL,
    amount             numeric(12,2),
    currency           char(3),
    provider           text,
    status             text          NOT NULL,
    provider_reference text,
    failure_reason     text,
    created_at         timestamptz   NOT NULL DEFAULT now(),
    updated_at         timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT payment_status_known CHECK (status IN
        ('PENDING', 'PROCESSING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'REFUNDED')),
    CONSTRAINT payment_amount_positive CHECK (amount > 0),
    CONSTRAINT payment_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    -- only a tombstone lacks the charge's facts
    CONSTRAINT payment_charge_facts CHECK (
        (amount IS NOT NULL AND currency IS NOT NULL AND provider IS NOT NULL) OR status = 'CANCELLED')
);
CREATE INDEX payments_user_idx ON {schema}.payments(user_id);
-- Reconciliation (webhooks, a sweeper) looks up intents the provider has not decided yet.
CREATE INDEX payments_open_idx ON {schema}.payments(status) WHERE status IN ('PENDING', 'PROCESSING');

-- Audit of every provider call that returned an answer. The idempotency key is the one sent to the
-- provider, so a row proves which request produced which outcome; a retried call (same key, same
-- answer from the provider) updates its row instead of adding a second one.
CREATE TABLE {schema}.provider_calls (
    idempotency_key    text        PRIMARY KEY,
    payment_id         bigint      NOT NULL REFERENCES {schema}.payments(id),
    provider           text        NOT NULL,
    operation          text        NOT NULL,
    outcome            text        NOT NULL,
    provider_reference text,
    failure_reason     text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT provider_call_operation_known CHECK (operation IN ('charge', 'refund', 'cancel')),
    CONSTRAINT provider_call_outcome_known CHECK (outcome IN ('SUCCEEDED', 'FAILED', 'PROCESSING'))
);
CREATE INDEX provider_calls_payment_idx ON {schema}.provider_calls(payment_id);
