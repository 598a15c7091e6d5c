-- The first migration: users. (tests/migrations/basic, in MySQL's words:
-- a TEXT column cannot be a key there.)
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name VARCHAR(100) NOT NULL
);
