CREATE VIEW nested AS SELECT lower('MiXeD') AS lowered, TRUE AS word_is_set, FALSE AS missing_is_set;
