-- Undoes 0001: drops workflow_requests with its rows, its trigger function and its enum types.
DROP TABLE IF EXISTS workflow_requests;
DROP FUNCTION IF EXISTS set_updated_at();
DROP TYPE IF EXISTS workflow_priority;
DROP TYPE IF EXISTS workflow_status;
