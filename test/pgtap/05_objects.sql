-- flusso._object(): the objects of every generated document.  It must
-- return what json_build_object() returns, byte for byte, for every kind of
-- value, and refuse what json_build_object() refuses.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION flusso;
SELECT plan(24);
SET TIME ZONE 'Europe/Rome';

CREATE DOMAIN pos_int AS integer CHECK (VALUE > 0);
CREATE DOMAIN doc AS json;
CREATE TYPE pair AS (a int, b text);
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE TYPE tagged AS ENUM ('x');
CREATE FUNCTION tagged_json(tagged) RETURNS json LANGUAGE sql IMMUTABLE AS $$SELECT '"<x>"'::json$$;
CREATE CAST (tagged AS json) WITH FUNCTION tagged_json(tagged);

-- one value of each kind, as json_build_object() and flusso._object() write it
CREATE FUNCTION same(v anyelement) RETURNS boolean LANGUAGE sql AS
    $$SELECT flusso._object('k', v, 'n', 1)::text = json_build_object('k', v, 'n', 1)::text$$;

SELECT ok(same(true) AND same(false), 'boolean');
SELECT ok(same(0::int2) AND same((-32768)::int2) AND same(2147483647) AND same('-9223372036854775808'::int8), 'integers, the extremes included');
SELECT ok(same(2.50::numeric) AND same('NaN'::numeric) AND same('Infinity'::numeric) AND same('-Infinity'::numeric), 'numeric, NaN and infinities (strings)');
SELECT ok(same(1.5::float4) AND same('NaN'::float8) AND same('-Infinity'::float8) AND same(1e300::float8), 'floats');
SELECT ok(same(date '2024-02-29') AND same('infinity'::date), 'date');
SELECT ok(same(timestamp '2024-02-29 12:34:56.789') AND same(timestamptz '2024-07-01 00:00:00+00'), 'timestamp and timestamptz, in the session''s time zone');
SELECT ok(same('plain'::text) AND same(E'quote " backslash \\ tab \t newline \n ctrl \x01 unicode é ✓'::text), 'text, escaped');
SELECT ok(same('v'::varchar(5)) AND same('ab'::char(4)) AND same('nm'::name), 'varchar, char (padded) and name');
SELECT ok(same('{"a" : [1, 2], "b":null}'::json), 'json as it is');
SELECT ok(same('{"b": 1, "a": [1, 2]}'::jsonb), 'jsonb');
SELECT ok(same(ARRAY[1, NULL, 3]) AND same(ARRAY[['a', 'b'], ['c', 'd']]) AND same('{}'::int[]), 'arrays');
SELECT ok(same(ROW(1, 'x')::pair) AND same(ARRAY[ROW(1, 'x')::pair, ROW(2, NULL)::pair]), 'composites');
SELECT ok(same(3::pos_int) AND same('{"x":1}'::doc), 'domains');
SELECT ok(same('ok'::mood) AND same('1.2.3.4'::inet) AND same('12:00'::time) AND same('1 day'::interval), 'other types: their text, escaped');
SELECT ok(same('x'::tagged), 'a type with a cast to json');
SELECT ok(same(NULL::int) AND same(NULL::json) AND same(NULL::pair), 'NULL values');

SELECT is(flusso._object()::text, json_build_object()::text, 'no arguments: {}');
SELECT is(flusso._object('a', 1, 2, 'b', true, 'c', 1.5, 'd')::text,
          json_build_object('a', 1, 2, 'b', true, 'c', 1.5, 'd')::text, 'keys of other types');
SELECT is((SELECT string_agg(flusso._object('i', i, 'sq', i * i)::text, ',' ORDER BY i) FROM generate_series(1, 3) AS i),
          (SELECT string_agg(json_build_object('i', i, 'sq', i * i)::text, ',' ORDER BY i) FROM generate_series(1, 3) AS i),
          'one call site, many rows');
SELECT is((SELECT string_agg(flusso._object(k, v)::text, ',' ORDER BY k) FROM (VALUES ('a', 1), ('b', 2)) AS t(k, v)),
          '{"a" : 1},{"b" : 2}', 'keys that change from row to row');

SELECT throws_ok($$SELECT flusso._object('a')$$, '22023', 'argument list must have even number of elements', 'an odd number of arguments');
SELECT throws_ok($$SELECT flusso._object(NULL::text, 1)$$, '22023', 'argument 1 cannot be null', 'a NULL key');
SELECT throws_ok($$SELECT flusso._object(ARRAY[1], 1)$$, '22023', 'key value must be scalar, not array, composite, or json', 'an array key');
SELECT throws_ok($$SELECT flusso._object(VARIADIC ARRAY['a', 'b'])$$, '0A000', NULL, 'a VARIADIC array');

SELECT * FROM finish();
ROLLBACK;
