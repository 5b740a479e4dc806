-- Undoes 0008: drops work_note_attachments with its rows.
DROP TABLE IF EXISTS work_note_attachments;
