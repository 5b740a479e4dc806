CREATE TABLE quoting (name text, value text);
INSERT INTO quoting VALUES
    ('quote', 'it''s'), ('backslash',  E'C:\\temp\\new'), ('both',  E'a\\''b'''''), ('newline', 'two
lines'),
    ('ident', 'say "hi"'), ('empty', '');
CREATE TABLE "say ""hi""" (x int);
COMMENT ON TABLE "say ""hi""" IS  E'a\\''b''''';
