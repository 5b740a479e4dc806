-- Undoes 0004: drops documents with its rows.
DROP TABLE IF EXISTS documents;
