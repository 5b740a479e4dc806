CREATE TABLE quoting (name text, value text);
INSERT INTO quoting VALUES
    ('quote', :'quote'), ('backslash', :'backslash'), ('both', :'both'), ('newline', :'newline'),
    ('ident', :'ident'), ('empty', :'empty');
CREATE TABLE :"ident" (x int);
COMMENT ON TABLE :"ident" IS :'both';
