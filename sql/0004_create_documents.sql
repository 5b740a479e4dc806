-- 0004: documents attached to a request.
--
-- The file itself lives in object storage; this row holds its metadata and
-- storage key. A new version of a document points at the one it replaces.

CREATE TABLE IF NOT EXISTS documents (
    document_id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    request_id          uuid          NOT NULL
        REFERENCES workflow_requests (request_id) ON DELETE CASCADE,
    uploaded_by         uuid          NOT NULL,
    file_name           varchar(255)  NOT NULL,  -- name in storage (made unique)
    original_file_name  varchar(255)  NOT NULL,  -- name as uploaded
    mime_type           varchar(100)  NOT NULL,
    file_extension      varchar(20),
    file_size           bigint        NOT NULL,  -- bytes
    file_path           varchar(500)  NOT NULL,  -- storage key
    storage_url         varchar(1000),
    checksum_sha256     char(64),                -- hex digest, to detect duplicates/corruption
    category            varchar(20)   NOT NULL DEFAULT 'SUPPORTING',
    version             integer       NOT NULL DEFAULT 1,
    parent_document_id  uuid          -- previous version of this document
        REFERENCES documents (document_id) ON DELETE SET NULL,
    is_deleted          boolean       NOT NULL DEFAULT false,  -- soft delete
    download_count      integer       NOT NULL DEFAULT 0,
    uploaded_at         timestamptz   NOT NULL DEFAULT now(),
    updated_at          timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT chk_documents_file_size CHECK (file_size > 0),
    CONSTRAINT chk_documents_category
        CHECK (category IN ('SUPPORTING', 'APPROVAL', 'REFERENCE', 'FINAL', 'OTHER')),
    CONSTRAINT chk_documents_version CHECK (version >= 1),
    CONSTRAINT chk_documents_not_own_parent CHECK (parent_document_id <> document_id),
    CONSTRAINT chk_documents_download_count CHECK (download_count >= 0),
    CONSTRAINT chk_documents_checksum CHECK (checksum_sha256 ~ '^[0-9a-f]{64}$')
);

CREATE INDEX IF NOT EXISTS idx_documents_request
    ON documents (request_id, uploaded_at DESC)
    WHERE NOT is_deleted;

CREATE INDEX IF NOT EXISTS idx_documents_uploaded_by
    ON documents (uploaded_by);

CREATE INDEX IF NOT EXISTS idx_documents_parent
    ON documents (parent_document_id)
    WHERE parent_document_id IS NOT NULL;

CREATE OR REPLACE TRIGGER trg_documents_updated_at
    BEFORE UPDATE ON documents
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
