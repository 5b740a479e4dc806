-- Undoes 0014: drops the skip columns (and their values) of approval_levels; their index and CHECK
-- constraints go with them.
ALTER TABLE approval_levels
    DROP COLUMN IF EXISTS is_skipped,
    DROP COLUMN IF EXISTS skipped_by,
    DROP COLUMN IF EXISTS skipped_at,
    DROP COLUMN IF EXISTS skip_reason;
