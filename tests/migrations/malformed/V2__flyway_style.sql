CREATE TABLE flyway_style (x INTEGER);
