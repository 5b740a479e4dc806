-- Undoes 0013: drops admin_config with its rows (the defaults 0013 inserted, and any changes made since).
DROP TABLE IF EXISTS admin_config;
