-- Hostile queries for the SQL executor, one per line: QUERY -- expect: ERROR_TYPE
-- $CANARY is a secret file beside the data, $SOURCE the loaded CSV; {TEXT*N} repeats TEXT N times.
-- Each case must come back refused with that error type (or ok), in bounded time, with the canary
-- and the source untouched and the canary's content nowhere in the result.
-- writes and DDL
INSERT INTO people VALUES (9, 'eve', 1) -- expect: not_read_only
UPDATE people SET name = 'x' -- expect: not_read_only
DELETE FROM people -- expect: not_read_only
CREATE TABLE x AS SELECT * FROM people -- expect: not_read_only
DROP TABLE people -- expect: not_read_only
WITH d AS (DELETE FROM people RETURNING *) SELECT * FROM d -- expect: not_read_only
CREATE MACRO m(a) AS a + 1 -- expect: not_read_only
-- ATTACH, COPY, settings, extensions
ATTACH '$CANARY' AS evil -- expect: not_read_only
COPY people TO '$CANARY' -- expect: not_read_only
COPY (SELECT 1) TO '$CANARY.out' (FORMAT csv) -- expect: not_read_only
SET enable_external_access = true -- expect: not_read_only
INSTALL httpfs -- expect: not_read_only
SELECT current_setting('memory_limit') -- expect: forbidden_function
SELECT * FROM duckdb_settings() -- expect: forbidden_function
SELECT getvariable('x') -- expect: forbidden_function
SELECT getenv('HOME') -- expect: forbidden_function
-- files and URLs through table functions, in every position
SELECT * FROM read_csv('$CANARY') -- expect: forbidden_function
SELECT * FROM read_text('$CANARY') -- expect: forbidden_function
SELECT * FROM glob('/*') -- expect: forbidden_function
SELECT * FROM read_csv('https://example.com/x.csv') -- expect: forbidden_function
SELECT * FROM read_parquet('s3://bucket/x.parquet') -- expect: forbidden_function
SELECT * FROM people, LATERAL read_text('$CANARY') -- expect: forbidden_function
SELECT * FROM people, LATERAL (SELECT * FROM read_blob('$CANARY')) -- expect: forbidden_function
WITH c AS (SELECT * FROM read_text('$CANARY')) SELECT * FROM c -- expect: forbidden_function
SELECT * FROM people WHERE name IN (SELECT content FROM read_text('$CANARY')) -- expect: forbidden_function
SELECT name FROM people UNION ALL SELECT content FROM read_text('$CANARY') -- expect: forbidden_function
SELECT * FROM system.main.duckdb_settings() -- expect: forbidden_function
SELECT 'x'.getenv() -- expect: forbidden_function
-- functions that evaluate SQL or names given as strings
SELECT * FROM query('SELECT * FROM duckdb_settings()') -- expect: forbidden_function
SELECT * FROM query_table('people') -- expect: forbidden_function
SELECT json_execute_serialized_sql(json_serialize_sql('SELECT 1')) -- expect: forbidden_function
SELECT list_aggregate([1, 2], 'sum') -- expect: forbidden_function
SELECT * FROM sql_auto_complete('SEL') -- expect: forbidden_function
-- system catalogs, and a CTE named like one in another scope
SELECT * FROM information_schema.tables -- expect: unknown_table
SELECT * FROM pg_catalog.pg_settings -- expect: unknown_table
SELECT * FROM sqlite_master -- expect: unknown_table
SELECT * FROM duckdb_tables -- expect: unknown_table
SELECT * FROM (WITH duckdb_settings AS (SELECT 1 AS x) SELECT * FROM duckdb_settings) a, duckdb_settings -- expect: unknown_table
SELECT * FROM (WITH duckdb_tables AS (SELECT 1 AS x) SELECT 1) a, duckdb_tables -- expect: unknown_table
WITH duckdb_settings AS (SELECT 1 AS x) SELECT x FROM duckdb_settings -- expect: ok
-- multiple statements and replacement scans of file names
SELECT 1; DROP TABLE people -- expect: multiple_statements
SELECT * FROM people; SELECT * FROM read_text('$CANARY') -- expect: multiple_statements
SELECT * FROM '$CANARY' -- expect: forbidden_source
SELECT * FROM '$SOURCE' -- expect: forbidden_source
SELECT * FROM "people.csv" -- expect: forbidden_source
-- nesting and size: refused before parsing, fast
SELECT {(*40}1{)*40} -- expect: too_complex
SELECT * FROM {(SELECT * FROM *100}people{)*100} -- expect: too_complex
SELECT 1{ UNION ALL SELECT 1*19999} -- expect: too_complex
SELECT 1{ UNION SELECT 1*70} -- expect: too_complex
SELECT 1 WHERE {NOT *300}true -- expect: too_complex
SELECT {abs(*24}1{)*24} -- expect: ok
-- result bombs: bytes past the cap, rows past the row cap
SELECT repeat('x', 200000) AS s FROM range(5000) -- expect: too_large
SELECT range AS i FROM range(100000) -- expect: ok
