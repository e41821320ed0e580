-- Every invalid definition gets its exact error, and nothing is stored.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION flusso;
SELECT plan(57);

CREATE SCHEMA t;
CREATE TABLE t.users (id int PRIMARY KEY, name text, email text, manager_id int REFERENCES t.users (id));
CREATE TABLE t.orders (id int PRIMARY KEY, user_id int REFERENCES t.users (id), total numeric, note text);
CREATE TABLE t.two_fks (id int PRIMARY KEY, a int REFERENCES t.users (id), b int REFERENCES t.users (id));
CREATE TABLE t.nokey (a int, b text);
CREATE TABLE t.uniq (a int NOT NULL UNIQUE, b int NOT NULL UNIQUE, c text);
CREATE TABLE t.lonely (id int PRIMARY KEY, x text);
CREATE VIEW t.v AS SELECT * FROM t.users;
CREATE FUNCTION t.bump() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';

CREATE FUNCTION bad(def text, code text, msg text, what text) RETURNS text LANGUAGE sql AS $f$
    SELECT throws_ok(format('SELECT flusso.create_index(%L, %L::jsonb)', 'x', def), code, msg, what)
$f$;

-- the JSON itself
SELECT bad('[1, 2]', '22023', 'an index definition must be a JSON object', 'not an object');
SELECT bad('{}', '22023', 'the definition has no "table"', 'no table');
SELECT bad('{"table": 5}', '22023', 'table must be a string', 'table not a string');
SELECT bad('{"table": ""}', '22023', 'table must not be empty', 'empty table');
SELECT bad('{"table": "t.users", "colums": ["id"]}', '22023', 'unknown key "colums" in the definition', 'a typo at the root');
SELECT bad('{"table": "t.users", "columns": "id"}', '22023', 'columns must be an array', 'columns not an array');
SELECT bad('{"table": "t.users", "columns": [7]}', '22023', 'columns[0] must be a column name or an object', 'a column that is a number');
SELECT bad('{"table": "t.users", "columns": [""]}', '22023', 'columns[0] is an empty column name', 'an empty column');
SELECT bad('{"table": "t.users", "columns": [{"name": "n", "colum": "name"}]}', '22023', 'unknown key "colum" in a column entry', 'a typo in a column entry');
SELECT bad('{"table": "t.users", "columns": [{"name": "n"}]}', '22023', 'columns[0] needs exactly one of "column" and "expr"', 'neither column nor expr');
SELECT bad('{"table": "t.users", "columns": [{"name": "n", "column": "name", "expr": "1"}]}', '22023', 'columns[0] needs exactly one of "column" and "expr"', 'both column and expr');
SELECT bad('{"table": "t.users", "columns": ["id", {"name": "id", "column": "name"}]}', '42701', 'field "id" appears twice in one object', 'a duplicate field');
SELECT bad('{"table": "t.users", "columns": [{"name": "_id", "column": "id"}]}', '42602', 'field name "_id" at columns[0] starts with an underscore', 'a reserved field name');
SELECT bad('{"table": "t.users", "columns": [{"name": "a.b", "column": "id"}]}', '42602', 'field name "a.b" at columns[0] contains a dot', 'a dotted field name');
SELECT bad('{"table": "t.users", "children": {}}', '22023', 'children must be an array', 'children not an array');
SELECT bad('{"table": "t.users", "children": [{"table": "t.orders", "type": "many"}]}', '22023', 'children[0] has no "name"', 'a child without a name');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders"}]}', '22023', 'children[0] has no "type"', 'a child without a type');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "lots"}]}', '22023', 'unknown type "lots" at children[0].type', 'an unknown type');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "many", "colums": []}]}', '22023', 'unknown key "colums" in a child', 'a typo in a child');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "count", "columns": ["id"]}]}', '22023', 'a "count" child cannot have "columns"', 'count with columns');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "sum"}]}', '22023', 'a "sum" child needs "value"', 'sum without value');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "many", "value": "id", "columns": ["id"]}]}', '22023', 'children[0] has both "value" and "columns"', 'value and columns');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "many", "on": {"user_id": "id"}, "through": {"table": "t.orders"}}]}', '22023', 'children[0] has both "on" and "through"', 'on and through');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "many", "on": {}}]}', '22023', 'children[0].on is empty', 'an empty on');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "many", "on": {"user_id": 1}}]}', '22023', 'children[0].on.user_id must be a column name', 'an on value that is a number');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "one", "limit": 1}]}', '22023', 'a "one" child cannot have "limit"', 'limit on a one child');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "count", "limit": 1}]}', '22023', 'a "count" child cannot have "limit"', 'limit on an aggregate');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "many", "limit": 0}]}', '22023', 'children[0].limit must be a positive integer', 'a limit of 0');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "many", "limit": -3}]}', '22023', 'children[0].limit must be a positive integer', 'a negative limit');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "many", "limit": 2.5}]}', '22023', 'children[0].limit must be a positive integer', 'a limit with a fraction');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "many", "limit": "10"}]}', '22023', 'children[0].limit must be a positive integer', 'a limit that is a string');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "many", "limit": 3000000000}]}', '22023', 'children[0].limit must be a positive integer', 'a limit past 2^31');
SELECT bad('{"table": "t.users", "on_error": "explode"}', '22023', 'unknown failure policy "explode"', 'an unknown failure policy');
SELECT bad('{"table": "t.users", "opensearch": {"mapping": {}}}', '22023', 'unknown key "mapping" in "opensearch"', 'a typo under opensearch');
SELECT bad('{"table": "t.users", "opensearch": {"settings": []}}', '22023', 'opensearch.settings must be an object', 'settings not an object');
SELECT throws_ok($$SELECT flusso.create_index('Users', '{"table": "t.users"}')$$, '42602', '"Users" is not a valid index name', 'an upper-case index name');
SELECT throws_ok($$SELECT flusso.create_index('_x', '{"table": "t.users"}')$$, '42602', '"_x" is not a valid index name', 'an index name starting with _');
SELECT throws_ok($$SELECT flusso.create_index('a b', '{"table": "t.users"}')$$, '42602', '"a b" is not a valid index name', 'an index name with a space');

-- against the catalogs
SELECT bad('{"table": "t.nope"}', '42P01', 'table "t.nope" at table does not exist', 'a missing root table');
SELECT bad('{"table": "t.v"}', '42809', '"t.v" at table is not a table', 'a view as root');
SELECT bad('{"table": "t.users", "columns": ["nope"]}', '42703', 'column "nope" at columns[0] does not exist in table t.users', 'a missing column');
SELECT bad('{"table": "t.nokey"}', '42P16', 'table t.nokey has no primary key and no unique NOT NULL key', 'no key at all');
SELECT bad('{"table": "t.uniq"}', '42P16', 'table t.uniq has no primary key', 'two candidate keys');
SELECT bad('{"table": "t.users", "key": "name"}', '42P10', 'the columns at "key" are not a unique NOT NULL key of t.users', 'a key that is not unique');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.nope", "type": "many"}]}', '42P01', 'table "t.nope" at children[0].table does not exist', 'a missing child table');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.lonely", "type": "many"}]}', '42830', 'cannot tell how t.lonely joins t.users at children[0]', 'no foreign key to derive the join');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.two_fks", "type": "many"}]}', '42830', 'cannot tell how t.two_fks joins t.users at children[0]', 'two foreign keys');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "many", "on": {"nope": "id"}}]}', '42703', 'column "nope" at children[0].on does not exist in table t.orders', 'a missing join column');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "many", "on": {"note": "id"}}]}', '42804', 'cannot join orders.note (text) to users.id (integer) at children[0].on', 'join columns of incompatible types');
SELECT bad('{"table": "t.users", "filter": "id > 0; DROP TABLE t.users"}', '42601', 'filter at filter is not a single SQL expression', 'a second statement in a filter');
SELECT bad('{"table": "t.users", "filter": "true) OR (true"}', '42601', 'filter at filter is not a single SQL expression', 'parentheses that escape the wrapping');
SELECT bad('{"table": "t.users", "filter": "name"}', '42804', 'filter at filter is of type text, not boolean', 'a filter that is not boolean');
SELECT bad('{"table": "t.users", "filter": "nope = 1"}', '42703', 'filter at filter is invalid: column "nope" does not exist', 'a filter over a missing column');
SELECT bad('{"table": "t.users", "filter": "id IN (SELECT user_id FROM t.orders)"}', '0A000', 'filter at filter uses a subquery, an aggregate, a window or a set-returning function', 'a subquery in a filter');
SELECT bad('{"table": "t.users", "columns": [{"name": "n", "expr": "t.bump()"}]}', '0A000', 'expression at columns[0].expr calls a volatile function', 'a volatile function');
SELECT bad('{"table": "t.users", "children": [{"name": "o", "table": "t.orders", "type": "many", "children": [{"name": "u", "table": "t.users", "type": "one", "on": {"id": "user_id"}}]}]}', '42P19', 'children[0].children[0] joins back to t.users by the same columns children[0] came in by', 'a cycle');

SELECT is((SELECT count(*)::int FROM flusso.definitions), 0, 'no invalid definition was stored');

SELECT * FROM finish();
ROLLBACK;
