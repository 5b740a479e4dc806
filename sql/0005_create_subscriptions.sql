-- 0005: web-push notification subscriptions of users.
--
-- One row per browser/device a user allowed notifications on (the Push API
-- PushSubscription object). The endpoint URL identifies a subscription; a
-- user may have several. Rows are removed when the push service reports the
-- endpoint as gone (HTTP 404/410).

CREATE TABLE IF NOT EXISTS subscriptions (
    subscription_id     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid          NOT NULL,
    endpoint            text          NOT NULL,  -- push service URL
    p256dh              text          NOT NULL,  -- client public key (base64url)
    auth                text          NOT NULL,  -- client auth secret (base64url)
    user_agent          text,
    expiration_time     timestamptz,             -- from the browser, usually NULL
    last_used_at        timestamptz,             -- last successful push
    failure_count       integer       NOT NULL DEFAULT 0,  -- consecutive failed pushes
    created_at          timestamptz   NOT NULL DEFAULT now(),
    updated_at          timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT uq_subscriptions_endpoint UNIQUE (endpoint),
    CONSTRAINT chk_subscriptions_endpoint_https CHECK (endpoint LIKE 'https://%'),
    CONSTRAINT chk_subscriptions_failure_count CHECK (failure_count >= 0)
);

CREATE INDEX IF NOT EXISTS idx_subscriptions_user
    ON subscriptions (user_id);

CREATE OR REPLACE TRIGGER trg_subscriptions_updated_at
    BEFORE UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
