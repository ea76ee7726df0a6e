-- Real providers (Stripe): a charge that waits for the shopper (3-D Secure), partial refunds, reconciliation.
ALTER TABLE {schema}.payments DROP CONSTRAINT payment_status_known;
ALTER TABLE {schema}.payments ADD CONSTRAINT payment_status_known CHECK (status IN
    ('PENDING', 'PROCESSING', 'REQUIRES_ACTION', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'PARTIALLY_REFUNDED',
     'REFUNDED'));

ALTER TABLE {schema}.payments
    -- The client's payment token (a Stripe PaymentMethod id, never card data): the reconciler resumes with it a
    -- charge whose provider call never got through.
    ADD COLUMN payment_method   text,
    -- What the shopper must do while REQUIRES_ACTION (Payment.nextAction).
    ADD COLUMN next_action_type text,
    ADD COLUMN client_secret    text,
    ADD COLUMN redirect_url     text,
    ADD COLUMN captured_amount  numeric(12,2),
    ADD COLUMN refunded_amount  numeric(12,2) NOT NULL DEFAULT 0;

UPDATE {schema}.payments SET captured_amount = amount WHERE status IN ('SUCCEEDED', 'REFUNDED');
UPDATE {schema}.payments SET refunded_amount = amount WHERE status = 'REFUNDED';

-- The settled refunds never exceed what was captured (pending ones are checked under the row lock).
ALTER TABLE {schema}.payments ADD CONSTRAINT payment_refunds_within_capture
    CHECK (refunded_amount >= 0 AND refunded_amount <= coalesce(captured_amount, 0));

DROP INDEX {schema}.payments_open_idx;
-- The reconciler and the webhooks look up intents the provider has not decided yet, and payments by intent id.
CREATE INDEX payments_open_idx ON {schema}.payments(updated_at)
    WHERE status IN ('PENDING', 'PROCESSING', 'REQUIRES_ACTION');
CREATE INDEX payments_reference_idx ON {schema}.payments(provider_reference);

ALTER TABLE {schema}.provider_calls DROP CONSTRAINT provider_call_outcome_known;
ALTER TABLE {schema}.provider_calls ADD CONSTRAINT provider_call_outcome_known
    CHECK (outcome IN ('SUCCEEDED', 'FAILED', 'PROCESSING', 'REQUIRES_ACTION'));

-- One row per refund, written PENDING and committed BEFORE the provider is asked, so a crash after the
-- provider's answer leaves a row the reconciler settles (and the over-refund guard counts it meanwhile).
-- No foreign key to payments: the row is written in its own transaction while the caller may hold the
-- payment's row lock, and the key check would wait on that lock.
CREATE TABLE {schema}.refunds (
    id                 bigint        PRIMARY KEY,
    payment_id         bigint        NOT NULL,
    amount             numeric(12,2) NOT NULL CHECK (amount > 0),
    currency           char(3)       NOT NULL,
    reason             text,
    status             text          NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    provider_reference text,
    failure_reason     text,
    created_at         timestamptz   NOT NULL DEFAULT now(),
    updated_at         timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX refunds_payment_idx ON {schema}.refunds(payment_id);
CREATE INDEX refunds_pending_idx ON {schema}.refunds(updated_at) WHERE status = 'PENDING';

-- The provider's intent for a charge, committed as soon as the provider created it and BEFORE it is confirmed
-- (the payments row itself is locked by the charging transaction until the answer is recorded). A crash after
-- the confirmation leaves this row, so a retry or the reconciler asks about that intent instead of charging
-- again. No foreign key, for the same reason as refunds.
CREATE TABLE {schema}.charge_intents (
    payment_id  bigint      PRIMARY KEY,
    reference   text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
