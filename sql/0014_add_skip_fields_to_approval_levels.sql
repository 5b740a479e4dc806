-- 0014: let an administrator or the initiator skip an approval level.
--
-- When an approver is unavailable, their level can be skipped so the request
-- moves to the next level. The level keeps its approval status (usually
-- PENDING) and is marked skipped; who skipped it, when and why are recorded
-- for the audit trail. A skipped level has no running TAT.

ALTER TABLE approval_levels
    ADD COLUMN IF NOT EXISTS is_skipped   boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS skipped_by   uuid,         -- user who skipped it
    ADD COLUMN IF NOT EXISTS skipped_at   timestamptz,
    ADD COLUMN IF NOT EXISTS skip_reason  text;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'approval_levels'::regclass
                     AND conname = 'chk_approval_levels_skipped_has_time') THEN
        ALTER TABLE approval_levels
            ADD CONSTRAINT chk_approval_levels_skipped_has_time
            CHECK (NOT is_skipped OR skipped_at IS NOT NULL);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'approval_levels'::regclass
                     AND conname = 'chk_approval_levels_skip_fields_only_when_skipped') THEN
        ALTER TABLE approval_levels
            ADD CONSTRAINT chk_approval_levels_skip_fields_only_when_skipped
            CHECK (is_skipped OR (skipped_by IS NULL AND skipped_at IS NULL AND skip_reason IS NULL));
    END IF;
END
$$;

-- Skipped levels of a request (few rows, so a partial index).
CREATE INDEX IF NOT EXISTS idx_approval_levels_skipped
    ON approval_levels (request_id, skipped_at)
    WHERE is_skipped;
