CREATE TABLE unicode (k text, v text);
INSERT INTO unicode VALUES ('ключ', 'значение'), ('emoji', '🐘 elephant'), ('é', 'café');
COMMENT ON TABLE unicode IS 'naïve :ключ stays';
CREATE TABLE "🐘 elephant" ("значение" text);
