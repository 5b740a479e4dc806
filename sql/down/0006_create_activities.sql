-- Undoes 0006: drops activities with its rows.
DROP TABLE IF EXISTS activities;
