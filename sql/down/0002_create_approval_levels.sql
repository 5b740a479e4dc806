-- Undoes 0002: drops approval_levels with its rows, and its enum type.
DROP TABLE IF EXISTS approval_levels;
DROP TYPE IF EXISTS approval_status;
