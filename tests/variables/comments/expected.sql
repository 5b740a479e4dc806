/* a comment keeps :tenant /* and a nested one :tenant */ still :tenant */
-- a line comment keeps :tenant
CREATE TABLE commented (x text DEFAULT 'acme'); -- so does a trailing one, :tenant
/* :tenant */ COMMENT ON TABLE commented IS /* :tenant */ 'acme' /* after :tenant */;
CREATE VIEW dashes AS SELECT 1 - -1 AS two, 2 --:tenant
    + 1 AS three, 4 /* :tenant */ / 2 AS half;
