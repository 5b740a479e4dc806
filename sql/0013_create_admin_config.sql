-- 0013: admin-editable configuration.
--
-- Settings that used to be environment variables (TAT alert thresholds,
-- working hours, upload limits, ...) move here so an administrator can change
-- them from the UI without a deploy. Values are stored as text with a declared
-- type that the application parses; the CHECK catches the obvious mistakes.
-- Defaults are seeded below; existing rows are never overwritten.

CREATE TABLE IF NOT EXISTS admin_config (
    config_id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    config_key        varchar(100)  NOT NULL,  -- UPPER_SNAKE_CASE
    config_category   varchar(30)   NOT NULL,
    config_value      text          NOT NULL,
    value_type        varchar(10)   NOT NULL,  -- how to parse config_value
    display_name      varchar(200)  NOT NULL,
    description       text,
    default_value     text,                    -- for "reset to default" in the UI
    validation_rules  jsonb         NOT NULL DEFAULT '{}'::jsonb,  -- e.g. {"min": 1, "max": 100}
    is_editable       boolean       NOT NULL DEFAULT true,   -- false: shown read-only
    is_sensitive      boolean       NOT NULL DEFAULT false,  -- true: value masked in UI and logs
    requires_restart  boolean       NOT NULL DEFAULT false,
    sort_order        integer       NOT NULL DEFAULT 0,
    last_modified_by  uuid,
    created_at        timestamptz   NOT NULL DEFAULT now(),
    updated_at        timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT uq_admin_config_key UNIQUE (config_key),
    CONSTRAINT chk_admin_config_key_format CHECK (config_key ~ '^[A-Z][A-Z0-9_]*$'),
    CONSTRAINT chk_admin_config_category CHECK (config_category IN (
        'TAT_SETTINGS', 'WORKING_HOURS', 'NOTIFICATION_RULES',
        'DOCUMENT_POLICY', 'WORKFLOW', 'SYSTEM')),
    CONSTRAINT chk_admin_config_value_type
        CHECK (value_type IN ('STRING', 'NUMBER', 'BOOLEAN', 'TIME', 'JSON')),
    -- JSON values are validated by the application (IS JSON needs PostgreSQL 16).
    CONSTRAINT chk_admin_config_value_matches_type CHECK (
        CASE value_type
            WHEN 'NUMBER'  THEN config_value ~ '^-?[0-9]+(\.[0-9]+)?$'
            WHEN 'BOOLEAN' THEN config_value IN ('true', 'false')
            WHEN 'TIME'    THEN config_value ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'
            ELSE true
        END),
    CONSTRAINT chk_admin_config_validation_rules_object
        CHECK (jsonb_typeof(validation_rules) = 'object')
);

CREATE INDEX IF NOT EXISTS idx_admin_config_category
    ON admin_config (config_category, sort_order);

CREATE OR REPLACE TRIGGER trg_admin_config_updated_at
    BEFORE UPDATE ON admin_config
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

INSERT INTO admin_config
    (config_key, config_category, config_value, value_type, display_name,
     description, default_value, validation_rules, sort_order)
VALUES
    ('TAT_REMINDER_THRESHOLD_1', 'TAT_SETTINGS', '50', 'NUMBER',
     'First TAT alert (%)', 'Percentage of a level''s TAT at which the approver gets the first reminder.',
     '50', '{"min": 1, "max": 99}', 10),
    ('TAT_REMINDER_THRESHOLD_2', 'TAT_SETTINGS', '75', 'NUMBER',
     'Second TAT alert (%)', 'Percentage of a level''s TAT at which the approver gets the second reminder.',
     '75', '{"min": 1, "max": 99}', 20),
    ('DEFAULT_TAT_STANDARD_HOURS', 'TAT_SETTINGS', '48', 'NUMBER',
     'Default TAT, standard (hours)', 'TAT proposed for a new level of a STANDARD request, in working hours.',
     '48', '{"min": 1, "max": 720}', 30),
    ('DEFAULT_TAT_EXPRESS_HOURS', 'TAT_SETTINGS', '24', 'NUMBER',
     'Default TAT, express (hours)', 'TAT proposed for a new level of an EXPRESS request, in calendar hours.',
     '24', '{"min": 1, "max": 720}', 40),
    ('WORK_START_TIME', 'WORKING_HOURS', '09:00', 'TIME',
     'Working day starts', 'Start of working hours, used to compute working-hour TAT.',
     '09:00', '{}', 10),
    ('WORK_END_TIME', 'WORKING_HOURS', '18:00', 'TIME',
     'Working day ends', 'End of working hours, used to compute working-hour TAT.',
     '18:00', '{}', 20),
    ('WORKING_DAYS', 'WORKING_HOURS', '[1, 2, 3, 4, 5]', 'JSON',
     'Working days', 'ISO weekdays that count as working days (1 = Monday).',
     '[1, 2, 3, 4, 5]', '{}', 30),
    ('MAX_FILE_SIZE_MB', 'DOCUMENT_POLICY', '10', 'NUMBER',
     'Maximum upload size (MB)', 'Largest document or attachment a user may upload.',
     '10', '{"min": 1, "max": 100}', 10),
    ('ENABLE_PUSH_NOTIFICATIONS', 'NOTIFICATION_RULES', 'true', 'BOOLEAN',
     'Web-push notifications', 'Send browser push notifications in addition to e-mail.',
     'true', '{}', 10)
ON CONFLICT (config_key) DO NOTHING;
