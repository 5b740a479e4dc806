-- Undoes 0005: drops subscriptions with its rows.
DROP TABLE IF EXISTS subscriptions;
