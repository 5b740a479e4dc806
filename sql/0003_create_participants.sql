-- 0003: the people involved in a request and what each may do.
--
-- Everyone who can see a request has one row here: the initiator, the
-- approvers of its levels, spectators (read-only watchers) and people
-- consulted for an opinion. Permissions are per request.

DO $$
BEGIN
    IF to_regtype('participant_type') IS NULL THEN
        CREATE TYPE participant_type AS ENUM ('INITIATOR', 'APPROVER', 'SPECTATOR', 'CONSULTATION');
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS participants (
    participant_id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    request_id              uuid             NOT NULL
        REFERENCES workflow_requests (request_id) ON DELETE CASCADE,
    user_id                 uuid             NOT NULL,
    user_email              varchar(255)     NOT NULL,
    user_name               varchar(200)     NOT NULL,
    participant_type        participant_type NOT NULL,
    can_comment             boolean          NOT NULL DEFAULT true,
    can_view_documents      boolean          NOT NULL DEFAULT true,
    can_download_documents  boolean          NOT NULL DEFAULT false,
    notification_enabled    boolean          NOT NULL DEFAULT true,
    added_by                uuid,            -- NULL when added by the system
    added_at                timestamptz      NOT NULL DEFAULT now(),
    is_active               boolean          NOT NULL DEFAULT true,  -- false once removed
    created_at              timestamptz      NOT NULL DEFAULT now(),
    updated_at              timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT uq_participants_request_user UNIQUE (request_id, user_id),
    CONSTRAINT chk_participants_email CHECK (user_email LIKE '%_@_%'),
    CONSTRAINT chk_participants_download_needs_view
        CHECK (NOT can_download_documents OR can_view_documents)
);

-- "Requests I take part in".
CREATE INDEX IF NOT EXISTS idx_participants_user_active
    ON participants (user_id, participant_type)
    WHERE is_active;

CREATE OR REPLACE TRIGGER trg_participants_updated_at
    BEFORE UPDATE ON participants
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
