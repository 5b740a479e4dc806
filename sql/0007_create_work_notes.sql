-- 0007: work notes, the chat-like discussion on a request.
--
-- Participants post notes on a request; a note may reply to another note
-- (parent_note_id) and may mention users, who are then notified. Notes are
-- soft-deleted so that replies keep their context.

CREATE TABLE IF NOT EXISTS work_notes (
    note_id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    request_id       uuid          NOT NULL
        REFERENCES workflow_requests (request_id) ON DELETE CASCADE,
    user_id          uuid          NOT NULL,   -- author
    user_name        varchar(200)  NOT NULL,
    user_role        varchar(50),              -- author's role on the request at the time
    message          text          NOT NULL,
    message_type     varchar(20)   NOT NULL DEFAULT 'COMMENT',
    is_priority      boolean       NOT NULL DEFAULT false,  -- highlighted in the UI
    has_attachment   boolean       NOT NULL DEFAULT false,
    parent_note_id   uuid          -- the note this one replies to
        REFERENCES work_notes (note_id) ON DELETE CASCADE,
    mentioned_users  uuid[]        NOT NULL DEFAULT '{}',
    reactions        jsonb         NOT NULL DEFAULT '{}'::jsonb,  -- {"<emoji>": ["<user uuid>", ...]}
    is_edited        boolean       NOT NULL DEFAULT false,
    is_deleted       boolean       NOT NULL DEFAULT false,
    created_at       timestamptz   NOT NULL DEFAULT now(),
    updated_at       timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT chk_work_notes_message
        CHECK (btrim(message) <> '' AND length(message) <= 10000),
    CONSTRAINT chk_work_notes_message_type
        CHECK (message_type IN ('COMMENT', 'QUESTION', 'CLARIFICATION', 'UPDATE', 'SYSTEM')),
    CONSTRAINT chk_work_notes_not_own_parent CHECK (parent_note_id <> note_id),
    CONSTRAINT chk_work_notes_reactions_object CHECK (jsonb_typeof(reactions) = 'object')
);

-- The conversation of a request, in order.
CREATE INDEX IF NOT EXISTS idx_work_notes_request_created
    ON work_notes (request_id, created_at)
    WHERE NOT is_deleted;

CREATE INDEX IF NOT EXISTS idx_work_notes_parent
    ON work_notes (parent_note_id)
    WHERE parent_note_id IS NOT NULL;

-- "Notes that mention me": mentioned_users @> ARRAY['<uuid>']::uuid[].
CREATE INDEX IF NOT EXISTS idx_work_notes_mentioned_users
    ON work_notes USING gin (mentioned_users);

CREATE OR REPLACE TRIGGER trg_work_notes_updated_at
    BEFORE UPDATE ON work_notes
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
