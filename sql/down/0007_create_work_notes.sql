-- Undoes 0007: drops work_notes with its rows.
DROP TABLE IF EXISTS work_notes;
