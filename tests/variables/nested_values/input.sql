CREATE VIEW nested AS SELECT :expr AS lowered, :{?word} AS word_is_set, :{?missing} AS missing_is_set;
