-- Undoes 0010: drops tat_alerts with its rows, and its enum type.
DROP TABLE IF EXISTS tat_alerts;
DROP TYPE IF EXISTS tat_alert_type;
