CREATE VIEW casts AS
    SELECT '1'::int AS one, '3'::int AS n_from_text, 3::text AS n_as_text, (3)::bigint AS big,
           ARRAY[1, 2]::int[] AS arr, CAST(3 AS numeric) AS num, 3::"text" AS typed;
