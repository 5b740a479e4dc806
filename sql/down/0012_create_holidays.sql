-- Undoes 0012: drops holidays with its rows, and is_holiday().
DROP FUNCTION IF EXISTS is_holiday(date);
DROP TABLE IF EXISTS holidays;
