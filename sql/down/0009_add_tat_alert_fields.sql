-- Undoes 0009: drops the TAT columns (and their values) of approval_levels and workflow_requests;
-- their indexes and CHECK constraints go with them.
ALTER TABLE workflow_requests
    DROP COLUMN IF EXISTS tat_start_time,
    DROP COLUMN IF EXISTS total_elapsed_hours,
    DROP COLUMN IF EXISTS tat_percentage_used,
    DROP COLUMN IF EXISTS tat_breached,
    DROP COLUMN IF EXISTS tat_breached_level;

ALTER TABLE approval_levels
    DROP COLUMN IF EXISTS tat_start_time,
    DROP COLUMN IF EXISTS tat_due_time,
    DROP COLUMN IF EXISTS elapsed_hours,
    DROP COLUMN IF EXISTS remaining_hours,
    DROP COLUMN IF EXISTS tat_percentage_used,
    DROP COLUMN IF EXISTS tat50_alert_sent,
    DROP COLUMN IF EXISTS tat75_alert_sent,
    DROP COLUMN IF EXISTS tat_breached,
    DROP COLUMN IF EXISTS tat_breached_at,
    DROP COLUMN IF EXISTS tat_last_checked_at;
