-- 0001: the core table of the workflow-approval backend.
--
-- A workflow request is raised by an employee (the initiator) and then goes
-- through numbered approval levels (table approval_levels, next step). This step
-- also creates the enum types the request needs and a shared trigger function
-- that keeps updated_at current; later steps reuse set_updated_at().
-- Users live in an external identity system: user ids are plain uuid columns.

DO $$
BEGIN
    IF to_regtype('workflow_status') IS NULL THEN
        CREATE TYPE workflow_status AS ENUM (
            'DRAFT',        -- saved, not submitted yet
            'PENDING',      -- submitted, waiting for the first approver
            'IN_PROGRESS',  -- at least one level acted on, more to go
            'APPROVED',     -- all levels approved
            'REJECTED',     -- rejected at some level
            'CLOSED',       -- concluded by the initiator after approval/rejection
            'CANCELLED'     -- withdrawn by the initiator
        );
    END IF;
END
$$;

DO $$
BEGIN
    IF to_regtype('workflow_priority') IS NULL THEN
        -- STANDARD TAT counts working hours only; EXPRESS counts calendar hours.
        CREATE TYPE workflow_priority AS ENUM ('STANDARD', 'EXPRESS');
    END IF;
END
$$;

-- Shared by every table with an updated_at column.
CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS
$$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TABLE IF NOT EXISTS workflow_requests (
    request_id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    request_number      varchar(30)       NOT NULL,  -- human-readable, e.g. REQ-2025-000123
    title               varchar(500)      NOT NULL,
    description         text,
    template_type       varchar(20)       NOT NULL DEFAULT 'CUSTOM',  -- CUSTOM or built from a TEMPLATE
    template_id         uuid,                                         -- template it was built from, if any
    priority            workflow_priority NOT NULL DEFAULT 'STANDARD',
    status              workflow_status   NOT NULL DEFAULT 'DRAFT',
    initiator_id        uuid              NOT NULL,
    department          varchar(100),
    current_level       integer           NOT NULL DEFAULT 1,  -- level_number now waiting for action
    total_levels        integer           NOT NULL DEFAULT 1,
    total_tat_hours     numeric(10,2)     NOT NULL DEFAULT 0,  -- sum of the TAT of all levels
    submission_date     timestamptz,
    closure_date        timestamptz,
    conclusion_remark   text,              -- final remark written when the request is closed
    is_draft            boolean           NOT NULL DEFAULT true,
    is_deleted          boolean           NOT NULL DEFAULT false,  -- soft delete
    metadata            jsonb             NOT NULL DEFAULT '{}'::jsonb,  -- free-form form data
    created_at          timestamptz       NOT NULL DEFAULT now(),
    updated_at          timestamptz       NOT NULL DEFAULT now(),
    CONSTRAINT uq_workflow_requests_number UNIQUE (request_number),
    CONSTRAINT chk_workflow_requests_template_type
        CHECK (template_type IN ('CUSTOM', 'TEMPLATE')),
    CONSTRAINT chk_workflow_requests_title_not_blank CHECK (btrim(title) <> ''),
    CONSTRAINT chk_workflow_requests_levels
        CHECK (total_levels BETWEEN 1 AND 10 AND current_level BETWEEN 1 AND total_levels),
    CONSTRAINT chk_workflow_requests_total_tat CHECK (total_tat_hours >= 0),
    CONSTRAINT chk_workflow_requests_submitted
        CHECK (status = 'DRAFT' OR submission_date IS NOT NULL),
    CONSTRAINT chk_workflow_requests_closure_after_submission
        CHECK (closure_date IS NULL OR submission_date IS NULL OR closure_date >= submission_date),
    CONSTRAINT chk_workflow_requests_metadata_object
        CHECK (jsonb_typeof(metadata) = 'object')
);

-- "My requests" list of an initiator, newest first.
CREATE INDEX IF NOT EXISTS idx_workflow_requests_initiator
    ON workflow_requests (initiator_id, created_at DESC)
    WHERE NOT is_deleted;

-- Dashboards filter by status; deleted rows are never shown.
CREATE INDEX IF NOT EXISTS idx_workflow_requests_status
    ON workflow_requests (status, submission_date DESC)
    WHERE NOT is_deleted;

-- Open requests only: the set the TAT monitor and inboxes work on.
CREATE INDEX IF NOT EXISTS idx_workflow_requests_open
    ON workflow_requests (current_level)
    WHERE status IN ('PENDING', 'IN_PROGRESS') AND NOT is_deleted;

CREATE INDEX IF NOT EXISTS idx_workflow_requests_created_at
    ON workflow_requests (created_at);

CREATE OR REPLACE TRIGGER trg_workflow_requests_updated_at
    BEFORE UPDATE ON workflow_requests
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
