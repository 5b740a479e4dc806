-- 0009: fields for TAT (turnaround time) tracking and alerts.
--
-- A scheduled TAT monitor now measures, for every active level, how much of
-- its TAT is used, and warns the approver at 50% and 75% and on breach (100%).
-- These columns hold the monitor's latest figures and make sure each alert is
-- sent once. Hours are working hours for STANDARD requests, calendar hours for
-- EXPRESS ones. The alerts themselves are recorded in tat_alerts (0010).

-- Per level ---------------------------------------------------------------

ALTER TABLE approval_levels
    ADD COLUMN IF NOT EXISTS tat_start_time      timestamptz,  -- when the TAT clock started (usually level_start_time)
    ADD COLUMN IF NOT EXISTS tat_due_time        timestamptz,  -- deadline: tat_start_time + tat_hours (working hours)
    ADD COLUMN IF NOT EXISTS elapsed_hours       numeric(10,2) NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS remaining_hours     numeric(10,2),  -- negative once breached
    ADD COLUMN IF NOT EXISTS tat_percentage_used numeric(7,2)  NOT NULL DEFAULT 0,  -- elapsed / tat_hours * 100, may exceed 100
    ADD COLUMN IF NOT EXISTS tat50_alert_sent    boolean       NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS tat75_alert_sent    boolean       NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS tat_breached        boolean       NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS tat_breached_at     timestamptz,
    ADD COLUMN IF NOT EXISTS tat_last_checked_at timestamptz;  -- last run of the monitor on this level

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'approval_levels'::regclass
                     AND conname = 'chk_approval_levels_tat_figures') THEN
        ALTER TABLE approval_levels
            ADD CONSTRAINT chk_approval_levels_tat_figures
            CHECK (elapsed_hours >= 0 AND tat_percentage_used >= 0);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'approval_levels'::regclass
                     AND conname = 'chk_approval_levels_breach_time') THEN
        ALTER TABLE approval_levels
            ADD CONSTRAINT chk_approval_levels_breach_time
            CHECK (NOT tat_breached OR tat_breached_at IS NOT NULL);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'approval_levels'::regclass
                     AND conname = 'chk_approval_levels_tat_due') THEN
        ALTER TABLE approval_levels
            ADD CONSTRAINT chk_approval_levels_tat_due
            CHECK (tat_due_time IS NULL OR tat_start_time IS NULL OR tat_due_time > tat_start_time);
    END IF;
END
$$;

-- What the TAT monitor scans: active levels not breached yet, by deadline.
CREATE INDEX IF NOT EXISTS idx_approval_levels_tat_monitor
    ON approval_levels (tat_due_time)
    WHERE status IN ('PENDING', 'IN_PROGRESS') AND tat_start_time IS NOT NULL AND NOT tat_breached;

-- Breached levels, for escalation lists and reports.
CREATE INDEX IF NOT EXISTS idx_approval_levels_breached
    ON approval_levels (tat_breached_at)
    WHERE tat_breached;

-- Per request --------------------------------------------------------------

ALTER TABLE workflow_requests
    ADD COLUMN IF NOT EXISTS tat_start_time        timestamptz,  -- start of the overall TAT (first submission)
    ADD COLUMN IF NOT EXISTS total_elapsed_hours   numeric(10,2) NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS tat_percentage_used   numeric(7,2)  NOT NULL DEFAULT 0,  -- against total_tat_hours
    ADD COLUMN IF NOT EXISTS tat_breached          boolean       NOT NULL DEFAULT false,  -- any level breached
    ADD COLUMN IF NOT EXISTS tat_breached_level    integer;      -- first level_number that breached

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'workflow_requests'::regclass
                     AND conname = 'chk_workflow_requests_tat_figures') THEN
        ALTER TABLE workflow_requests
            ADD CONSTRAINT chk_workflow_requests_tat_figures
            CHECK (total_elapsed_hours >= 0 AND tat_percentage_used >= 0);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'workflow_requests'::regclass
                     AND conname = 'chk_workflow_requests_breached_level') THEN
        ALTER TABLE workflow_requests
            ADD CONSTRAINT chk_workflow_requests_breached_level
            CHECK (tat_breached_level IS NULL
                   OR (tat_breached AND tat_breached_level BETWEEN 1 AND total_levels));
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS idx_workflow_requests_tat_breached
    ON workflow_requests (submission_date)
    WHERE tat_breached AND NOT is_deleted;
