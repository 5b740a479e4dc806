CREATE SCHEMA "tenant_one";
CREATE FUNCTION "tenant_one".greet(n int) RETURNS text LANGUAGE plpgsql AS $body$
DECLARE
    who text := ':tenant';
    total int;
BEGIN
    total := n + 1;
    RETURN who || $$ :tenant $$ || total;
END
$body$;
COMMENT ON FUNCTION "tenant_one".greet(int) IS 'acme';
CREATE VIEW "tenant_one".dollars AS
    SELECT $$:tenant$$ AS untagged, $t$ $$ :tenant $$ $t$ AS tagged, $a$b$ :tenant $a$ AS tag_in_body,
           'acme' AS tenant, "a$b$"."x$" AS ident_with_dollars
    FROM (SELECT 1 AS "x$") AS "a$b$";
