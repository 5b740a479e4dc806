CREATE TABLE escaped (id int, body text);
INSERT INTO escaped VALUES
    (1, E'an escaped quote \' keeps :tenant'),
    (2, E'a backslash \\' || 'acme'),
    (3, e'\\\\' || ' ' || 'acme'),
    (4, E'\x41\101\u0041 :tenant' || 'acme');
