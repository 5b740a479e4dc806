CREATE VIEW casts AS
    SELECT '1'::int AS one, :'n'::int AS n_from_text, :n::text AS n_as_text, (:n)::bigint AS big,
           ARRAY[1, 2]::int[] AS arr, CAST(:n AS numeric) AS num, :n:::"type" AS typed;
