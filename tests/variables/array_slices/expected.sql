CREATE TABLE arrays (a int[], lo int, hi int, n int);
INSERT INTO arrays VALUES (ARRAY[10, 20, 30, 40], 2, 3, 4);
CREATE VIEW slices AS
    SELECT a[1:2] AS digits, a[lo:hi] AS columns, a[lo: 3] AS variable, a[lo:n] AS escaped,
           a[:2] AS open_lower, a[3:] AS open_upper, a[1:lo] AS column_bound
    FROM arrays;
