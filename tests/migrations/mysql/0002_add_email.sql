ALTER TABLE users ADD COLUMN email VARCHAR(100);
CREATE UNIQUE INDEX users_email ON users (email);
