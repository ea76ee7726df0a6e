CREATE TABLE {schema}.applied (event_id uuid PRIMARY KEY, amount int NOT NULL);
