-- 0006: the audit / activity log of each request.
--
-- Append-only: one row per thing that happened (created, submitted, approved,
-- rejected, document added, reminder sent, TAT breached, ...). Rows are never
-- updated, so there is no updated_at. activity_type is free text (checked
-- only for format) so new kinds of event need no migration.

CREATE TABLE IF NOT EXISTS activities (
    activity_id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    request_id           uuid          NOT NULL
        REFERENCES workflow_requests (request_id) ON DELETE CASCADE,
    user_id              uuid,          -- NULL for system events (scheduler, TAT monitor)
    user_name            varchar(200),  -- copied at the time of the event
    activity_type        varchar(50)   NOT NULL,  -- e.g. created, approval, tat_breach
    activity_description text          NOT NULL,
    severity             varchar(10)   NOT NULL DEFAULT 'INFO',
    metadata             jsonb         NOT NULL DEFAULT '{}'::jsonb,  -- event details (old/new values, ...)
    ip_address           inet,
    user_agent           text,
    created_at           timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT chk_activities_type_format CHECK (activity_type ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT chk_activities_severity
        CHECK (severity IN ('INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    CONSTRAINT chk_activities_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
);

-- The timeline of a request.
CREATE INDEX IF NOT EXISTS idx_activities_request_created
    ON activities (request_id, created_at DESC);

-- What a user did.
CREATE INDEX IF NOT EXISTS idx_activities_user_created
    ON activities (user_id, created_at DESC)
    WHERE user_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_activities_type_created
    ON activities (activity_type, created_at DESC);
