CREATE TABLE unicode (k text, v text);
INSERT INTO unicode VALUES ('ключ', :'ключ'), ('emoji', :'emoji'), ('é', :'tenant_é');
COMMENT ON TABLE unicode IS 'naïve :ключ stays';
CREATE TABLE :"emoji" (:"ключ" text);
