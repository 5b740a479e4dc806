-- 0008: files attached to work notes.
--
-- Kept apart from documents (0004): these are files shared in the
-- discussion, not formal documents of the request. They go with their note.

CREATE TABLE IF NOT EXISTS work_note_attachments (
    attachment_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    note_id          uuid          NOT NULL
        REFERENCES work_notes (note_id) ON DELETE CASCADE,
    file_name        varchar(255)  NOT NULL,
    file_type        varchar(100)  NOT NULL,  -- MIME type
    file_size        bigint        NOT NULL,  -- bytes
    file_path        varchar(500)  NOT NULL,  -- storage key
    storage_url      varchar(1000),
    is_downloadable  boolean       NOT NULL DEFAULT true,
    download_count   integer       NOT NULL DEFAULT 0,
    uploaded_at      timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT chk_work_note_attachments_file_size CHECK (file_size > 0),
    CONSTRAINT chk_work_note_attachments_download_count CHECK (download_count >= 0)
);

CREATE INDEX IF NOT EXISTS idx_work_note_attachments_note
    ON work_note_attachments (note_id);
