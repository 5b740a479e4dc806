-- 0012: the holiday calendar.
--
-- STANDARD-priority TAT counts working hours only, so the TAT calculation
-- must skip weekends and these days. A recurring holiday falls on the same
-- month and day every year (holiday_date's year is then the first year).
-- Holidays are deactivated rather than deleted, to keep past TAT figures
-- explainable. is_holiday(date) answers the question for one day.

CREATE TABLE IF NOT EXISTS holidays (
    holiday_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    holiday_date    date          NOT NULL,
    holiday_name    varchar(200)  NOT NULL,
    description     text,
    holiday_type    varchar(20)   NOT NULL DEFAULT 'ORGANIZATIONAL',
    is_recurring    boolean       NOT NULL DEFAULT false,
    applies_to_locations text[],  -- NULL: every location
    is_active       boolean       NOT NULL DEFAULT true,
    created_by      uuid,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    updated_at      timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT uq_holidays_date_name UNIQUE (holiday_date, holiday_name),
    CONSTRAINT chk_holidays_type
        CHECK (holiday_type IN ('NATIONAL', 'REGIONAL', 'ORGANIZATIONAL', 'OPTIONAL')),
    CONSTRAINT chk_holidays_name_not_blank CHECK (btrim(holiday_name) <> '')
);

CREATE INDEX IF NOT EXISTS idx_holidays_active_date
    ON holidays (holiday_date)
    WHERE is_active;

-- Recurring holidays are matched on month and day.
CREATE INDEX IF NOT EXISTS idx_holidays_recurring_month_day
    ON holidays ((extract(month FROM holiday_date)), (extract(day FROM holiday_date)))
    WHERE is_active AND is_recurring;

CREATE OR REPLACE TRIGGER trg_holidays_updated_at
    BEFORE UPDATE ON holidays
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- True when d is an active holiday (location-specific holidays included).
CREATE OR REPLACE FUNCTION is_holiday(d date) RETURNS boolean
LANGUAGE sql STABLE AS
$$
    SELECT EXISTS (
        SELECT 1 FROM holidays h
        WHERE h.is_active
          AND (h.holiday_date = d
               OR (h.is_recurring
                   AND h.holiday_date <= d
                   AND extract(month FROM h.holiday_date) = extract(month FROM d)
                   AND extract(day FROM h.holiday_date) = extract(day FROM d)))
    )
$$;
