-- 0002: the numbered approval levels of a request.
--
-- Each request has 1..N levels, each with one approver and a turnaround time
-- (TAT, in hours). Level 1 starts when the request is submitted; the next
-- level starts when the previous one is approved. Approver name and email are
-- copied from the identity system so history reads correctly after changes there.

DO $$
BEGIN
    IF to_regtype('approval_status') IS NULL THEN
        CREATE TYPE approval_status AS ENUM (
            'PENDING',      -- not reached yet, or reached and waiting
            'IN_PROGRESS',  -- the approver has opened / is working on it
            'APPROVED',
            'REJECTED'
        );
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS approval_levels (
    level_id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    request_id          uuid            NOT NULL
        REFERENCES workflow_requests (request_id) ON DELETE CASCADE,
    level_number        integer         NOT NULL,
    level_name          varchar(100),    -- e.g. "Department head"
    approver_id         uuid            NOT NULL,
    approver_email      varchar(255)    NOT NULL,
    approver_name       varchar(200)    NOT NULL,
    tat_hours           numeric(10,2)   NOT NULL,  -- allowed turnaround time of this level
    status              approval_status NOT NULL DEFAULT 'PENDING',
    level_start_time    timestamptz,     -- when this level became the active one
    level_end_time      timestamptz,     -- when the approver approved/rejected
    comments            text,
    rejection_reason    text,
    is_final_approver   boolean         NOT NULL DEFAULT false,
    created_at          timestamptz     NOT NULL DEFAULT now(),
    updated_at          timestamptz     NOT NULL DEFAULT now(),
    CONSTRAINT uq_approval_levels_request_level UNIQUE (request_id, level_number),
    CONSTRAINT chk_approval_levels_level_number CHECK (level_number BETWEEN 1 AND 10),
    CONSTRAINT chk_approval_levels_tat_positive CHECK (tat_hours > 0),
    CONSTRAINT chk_approval_levels_email CHECK (approver_email LIKE '%_@_%'),
    CONSTRAINT chk_approval_levels_times
        CHECK (level_end_time IS NULL OR level_start_time IS NULL OR level_end_time >= level_start_time),
    CONSTRAINT chk_approval_levels_decided_has_end
        CHECK (status NOT IN ('APPROVED', 'REJECTED') OR level_end_time IS NOT NULL)
);

-- The approver's inbox: levels waiting for action.
CREATE INDEX IF NOT EXISTS idx_approval_levels_approver_open
    ON approval_levels (approver_id, level_start_time)
    WHERE status IN ('PENDING', 'IN_PROGRESS');

-- History of one approver (performance reports).
CREATE INDEX IF NOT EXISTS idx_approval_levels_approver
    ON approval_levels (approver_id, level_end_time DESC);

CREATE OR REPLACE TRIGGER trg_approval_levels_updated_at
    BEFORE UPDATE ON approval_levels
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
