-- 0010: one row per TAT alert of an approval level.
--
-- The TAT monitor inserts a row when it schedules or sends an alert at 50%,
-- 75% or 100% (breach) of a level's TAT, and fills in alert_sent_at once it
-- went out. One alert of each type per level. Kept for reminders, escalation
-- and the TAT compliance reports (0011).

DO $$
BEGIN
    IF to_regtype('tat_alert_type') IS NULL THEN
        CREATE TYPE tat_alert_type AS ENUM ('TAT_50', 'TAT_75', 'TAT_100');
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS tat_alerts (
    alert_id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    request_id                uuid           NOT NULL
        REFERENCES workflow_requests (request_id) ON DELETE CASCADE,
    level_id                  uuid           NOT NULL
        REFERENCES approval_levels (level_id) ON DELETE CASCADE,
    approver_id               uuid           NOT NULL,
    alert_type                tat_alert_type NOT NULL,
    threshold_percentage      smallint       NOT NULL,  -- 50, 75 or 100; matches alert_type
    tat_hours_allocated       numeric(10,2)  NOT NULL,  -- the level's TAT when the alert was raised
    tat_hours_elapsed         numeric(10,2)  NOT NULL,
    tat_hours_remaining       numeric(10,2)  NOT NULL,  -- negative after a breach
    level_start_time          timestamptz    NOT NULL,
    alert_due_time            timestamptz    NOT NULL,  -- when the threshold is reached
    expected_completion_time  timestamptz    NOT NULL,  -- the level's TAT deadline
    alert_sent_at             timestamptz,               -- NULL until sent
    alert_message             text,
    notification_sent         boolean        NOT NULL DEFAULT false,
    notification_channels     text[]         NOT NULL DEFAULT '{}',  -- where it went: email, push, in_app, sms
    is_breached               boolean        NOT NULL DEFAULT false,
    was_completed_on_time     boolean,        -- filled in when the level is decided
    completion_time           timestamptz,
    metadata                  jsonb          NOT NULL DEFAULT '{}'::jsonb,
    created_at                timestamptz    NOT NULL DEFAULT now(),
    CONSTRAINT uq_tat_alerts_level_type UNIQUE (level_id, alert_type),
    CONSTRAINT chk_tat_alerts_threshold CHECK (
        (alert_type = 'TAT_50'  AND threshold_percentage = 50) OR
        (alert_type = 'TAT_75'  AND threshold_percentage = 75) OR
        (alert_type = 'TAT_100' AND threshold_percentage = 100)),
    CONSTRAINT chk_tat_alerts_hours CHECK (tat_hours_allocated > 0 AND tat_hours_elapsed >= 0),
    CONSTRAINT chk_tat_alerts_breach CHECK (alert_type <> 'TAT_100' OR is_breached),
    CONSTRAINT chk_tat_alerts_sent_has_time CHECK (NOT notification_sent OR alert_sent_at IS NOT NULL),
    CONSTRAINT chk_tat_alerts_channels
        CHECK (notification_channels <@ ARRAY['email', 'push', 'in_app', 'sms']::text[]),
    CONSTRAINT chk_tat_alerts_times CHECK (expected_completion_time > level_start_time),
    CONSTRAINT chk_tat_alerts_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
);

-- The monitor's work queue: alerts not sent yet, by deadline.
CREATE INDEX IF NOT EXISTS idx_tat_alerts_due
    ON tat_alerts (expected_completion_time)
    WHERE NOT notification_sent;

CREATE INDEX IF NOT EXISTS idx_tat_alerts_request
    ON tat_alerts (request_id, created_at);

CREATE INDEX IF NOT EXISTS idx_tat_alerts_approver
    ON tat_alerts (approver_id, alert_sent_at DESC);

CREATE INDEX IF NOT EXISTS idx_tat_alerts_breached
    ON tat_alerts (alert_sent_at)
    WHERE is_breached;
