-- Undoes 0003: drops participants with its rows, and its enum type.
DROP TABLE IF EXISTS participants;
DROP TYPE IF EXISTS participant_type;
