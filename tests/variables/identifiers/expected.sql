CREATE SCHEMA "Tenant ""One""";
CREATE TABLE "Tenant ""One"""."line items" ("a quoted :table stays" int, U&"unicode :table" int, "naïve" text);
CREATE SCHEMA tenant_two;
CREATE TABLE tenant_two.plain_2024 (x int);
