CREATE SCHEMA :"schema";
CREATE TABLE :"schema".:"table" ("a quoted :table stays" int, U&"unicode :table" int, :"column" text);
CREATE SCHEMA :bare;
CREATE TABLE :bare.plain_:suffix (x int);
