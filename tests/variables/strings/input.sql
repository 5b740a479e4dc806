CREATE TABLE notes (id int, body text, tenant text);
INSERT INTO notes VALUES
    (1, 'a string keeps :tenant and :''tenant''', :'tenant'),
    (2, 'it''s :tenant too', :'note'),
    (3, 'a:tenant:b', 'x' || :'tenant'),
    (4, N'national :tenant', U&'unicode :tenant'),
    (5, 'continued' -- :tenant
        ' :tenant on the next line', B'101'::text || X'1F'::text);
