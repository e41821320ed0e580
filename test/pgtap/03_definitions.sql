-- Definition features, identifier torture, injection attempts, and the
-- resolve step for every kind of change.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION flusso;
SELECT plan(54);
SET TIME ZONE 'UTC';

CREATE SCHEMA app;
SET search_path = app, public;
CREATE TABLE companies (id int PRIMARY KEY, name text);
CREATE TABLE users (id int PRIMARY KEY, name text, company_id int REFERENCES companies, active bool NOT NULL DEFAULT true);
CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users, total numeric NOT NULL, status text NOT NULL);
CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders, sku text, qty int);
CREATE TABLE tags (id int PRIMARY KEY, name text);
CREATE TABLE user_tags (user_id int REFERENCES users, tag_id int REFERENCES tags, PRIMARY KEY (user_id, tag_id));
ALTER TABLE orders REPLICA IDENTITY FULL;
ALTER TABLE items REPLICA IDENTITY FULL;
INSERT INTO companies VALUES (1, 'Acme');
INSERT INTO users VALUES (1, 'Ada', 1, true), (2, 'Bob', 1, true), (3, 'Cy', NULL, false);
INSERT INTO orders VALUES (10, 1, 5, 'paid'), (11, 1, 7, 'open'), (20, 2, 1, 'cancelled');
INSERT INTO items VALUES (100, 10, 'a', 1), (101, 11, 'b', 2), (200, 20, 'c', 3);
INSERT INTO tags VALUES (1, 'x'), (2, 'y');
INSERT INTO user_tags VALUES (1, 1), (2, 1), (2, 2);

-- a root on the search_path, joins derived from foreign keys
SELECT lives_ok($$SELECT flusso.create_index('u', '{
  "table": "users", "filter": "active",
  "columns": ["id", "name"],
  "children": [
    {"name": "orders", "table": "orders", "type": "many", "columns": ["id", "total"],
     "filter": "status <> ''cancelled''", "order_by": "total DESC",
     "children": [{"name": "skus", "table": "items", "type": "many", "value": "sku"}]},
    {"name": "company", "table": "companies", "type": "one", "value": "name"},
    {"name": "tags", "table": "tags", "type": "many", "value": "name", "order_by": "name DESC",
     "through": {"table": "user_tags"}},
    {"name": "n", "table": "orders", "type": "count", "filter": "status = ''paid''"}]}')$$,
    'create an index on the search_path with derived joins');

SELECT is(flusso.preview('u', '1')::jsonb,
    '{"id": 1, "name": "Ada", "orders": [{"id": 11, "total": 7, "skus": ["b"]}, {"id": 10, "total": 5, "skus": ["a"]}],
      "company": "Acme", "tags": ["x"], "n": 1}'::jsonb, 'nested shape of user 1');
SELECT is(flusso.preview('u', '1')::text ~ '"orders" : \[\{"id" : 11', true, 'child arrays keep their order');
SELECT is(flusso.preview('u', '2')::jsonb,
    '{"id": 2, "name": "Bob", "orders": [], "company": "Acme", "tags": ["y", "x"], "n": 0}'::jsonb,
    'a child filtered out leaves the parent''s array');
SELECT is(flusso.preview('u', '3')::text, NULL, 'a root row outside the filter has no document');

-- resolve: root, child, grandchild, link, linked, many-to-one, aggregate
CREATE FUNCTION docs(tbl regclass, o jsonb, n jsonb) RETURNS text[] LANGUAGE sql AS
  $$ SELECT coalesce(array_agg(d ORDER BY d), '{}') FROM flusso.affected_documents('u', tbl, o, n) AS d $$;
SELECT is(docs('users', NULL, '{"id": 5}'), '{5}', 'insert of a root row');
SELECT is(docs('users', '{"id": 1}', '{"id": 9}'), '{1,9}', 'a primary-key change: old and new document');
SELECT is(docs('users', '{"id": 3}', NULL), '{3}', 'delete of a root row');
SELECT is(docs('orders', NULL, '{"id": 12, "user_id": 2}'), '{2}', 'insert of a child');
SELECT is(docs('orders', '{"id": 10, "user_id": 1}', '{"id": 10, "user_id": 2}'), '{1,2}', 're-parenting a child rebuilds both parents');
SELECT is(docs('orders', '{"id": 20, "user_id": 2}', NULL), '{2}', 'delete of a child');
SELECT is(docs('items', NULL, '{"id": 102, "order_id": 11}'), '{1}', 'insert of a grandchild');
SELECT is(docs('items', '{"id": 100, "order_id": 10}', '{"id": 100, "order_id": 20}'), '{1,2}', 're-parenting a grandchild');
SELECT is(docs('items', '{"id": 100, "order_id": 999}', NULL), '{}', 'a grandchild whose order is gone maps to nothing');
SELECT is(docs('user_tags', NULL, '{"user_id": 3, "tag_id": 1}'), '{3}', 'insert into the link table');
SELECT is(docs('user_tags', '{"user_id": 2, "tag_id": 2}', NULL), '{2}', 'delete from the link table');
SELECT is(docs('tags', '{"id": 1}', '{"id": 1}'), '{1,2}', 'update of a linked row: every document linking it');
SELECT is(docs('companies', '{"id": 1}', '{"id": 1}'), '{1,2}', 'update of a many-to-one parent: every document pointing at it');
SELECT is(docs('items', NULL, NULL), '{}', 'no image, no document');

-- aggregates follow their child rows
UPDATE orders SET status = 'paid' WHERE id = 11;
SELECT is((flusso.preview('u', '1')::jsonb)->'n', '2'::jsonb, 'count follows a child update');

-- errors carry a detail and a hint naming the path
CREATE FUNCTION err(def text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text; h text;
BEGIN
  PERFORM flusso.create_index('e', def::jsonb);
  RETURN 'no error';
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
  RETURN d || ' | ' || h;
END $$;
SELECT is(err('{"table": "users", "children": [{"name": "o", "table": "orders", "type": "many", "colums": []}]}'),
  'The keys allowed in a child are "name", "table", "type", "on", "through", "columns", "value", "filter", "order_by", "limit", "children". | Remove or correct the key at children[0].colums.',
  'an unknown key: detail lists the keys, hint names the path');
SELECT is(err('{"table": "users", "children": [{"name": "o", "table": "orders", "type": "many", "filter": "nope > 1"}]}'),
  'It is read as an SQL expression over the columns of app.orders. | Correct the filter at children[0].filter.',
  'a bad child filter: hint names children[0].filter');
SELECT is(err('{"table": "users", "children": [{"name": "t", "table": "tags", "type": "many"}]}'),
  'There is no foreign key between the two tables, but app.user_tags has foreign keys to both: a link table. | Join through it: add "through": {"table": "app.user_tags"} at children[0].',
  'no foreign key, but a link table: the hint names it, with the "through" to write');
CREATE TABLE clubs (id int PRIMARY KEY, name text);
CREATE TABLE club_b (user_id int REFERENCES users, club_id int REFERENCES clubs);
CREATE TABLE club_a (user_id int REFERENCES users, club_id int REFERENCES clubs);
SELECT is(err('{"table": "users", "children": [{"name": "c", "table": "clubs", "type": "many"}]}'),
  'There is no foreign key between the two tables, but app.club_a and app.club_b have foreign keys to both: link tables. | Join through one of them: add "through": {"table": "app.club_a"} at children[0], or name another.',
  'two link tables: both named');
SELECT is(err('{"table": "users", "children": [{"name": "o", "table": "orders", "type": "many", "limit": 0}]}'),
  'It is 0; "limit" is how many child rows to keep per parent, from 1 to 2147483647. | Give the number of rows to keep at children[0].limit, such as 10.',
  'a limit of 0: detail and hint');

-- replica identity: a warning that says what to run, or flusso sets it
CREATE TABLE addrs (id int PRIMARY KEY, user_id int REFERENCES users, city text);
SET LOCAL client_min_messages = error;
CREATE FUNCTION capture_warning(def text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM flusso.create_index('w', def::jsonb);
  PERFORM flusso.drop_index('w');
  RETURN (SELECT relreplident::text FROM pg_class WHERE oid = 'app.addrs'::regclass);
END $$;
SELECT is(capture_warning('{"table": "users", "children": [{"name": "a", "table": "addrs", "type": "many"}]}'),
    'd', 'without manage_replica_identity the replica identity is left alone');
SET flusso.manage_replica_identity = on;
SELECT is(capture_warning('{"table": "users", "children": [{"name": "a", "table": "addrs", "type": "many"}]}'),
    'f', 'with flusso.manage_replica_identity flusso sets REPLICA IDENTITY FULL');
RESET flusso.manage_replica_identity;

-- arrays and "one" children come out alike at every build: ties (and a
-- missing order_by) are broken by the child's key, or by every column
CREATE TABLE notes (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users, kind text NOT NULL);
INSERT INTO notes VALUES (5, 1, 'b'), (4, 1, 'a'), (3, 1, 'b'), (2, 1, 'a'), (1, 1, 'b');
CREATE TABLE marks (user_id int NOT NULL REFERENCES users, label text, n numeric);
INSERT INTO marks VALUES (1, 'z', 1.00), (1, 'z', 1.0), (1, 'a', 2);
CREATE TABLE homes (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users, city text);
INSERT INTO homes VALUES (9, 1, 'Oslo'), (8, 1, 'Rome');
SELECT lives_ok($$SELECT flusso.create_index('ties', '{"table": "users", "columns": ["id"], "children": [
    {"name": "notes", "table": "notes", "type": "many", "value": "id"},
    {"name": "by_kind", "table": "notes", "type": "many", "value": "id", "order_by": "kind"},
    {"name": "marks", "table": "marks", "type": "many", "columns": ["label", "n"]},
    {"name": "home", "table": "homes", "type": "one", "value": "city"}]}')$$,
    'an index whose children have ties');
SELECT is((flusso.preview('ties', '1')::jsonb)->'notes', '[1, 2, 3, 4, 5]'::jsonb,
    'no order_by: the child''s key order, not the plan''s');
SELECT is((flusso.preview('ties', '1')::jsonb)->'by_kind', '[2, 4, 1, 3, 5]'::jsonb,
    'rows tied by order_by: in key order');
SELECT is(((flusso.preview('ties', '1')::jsonb)->'marks')::text,
    '[{"n": 2, "label": "a"}, {"n": 1.0, "label": "z"}, {"n": 1.00, "label": "z"}]',
    'a child without a key: by every column''s text');
SELECT is((flusso.preview('ties', '1')::jsonb)->'home', '"Rome"'::jsonb,
    'a "one" child with several rows: the one with the lowest key');

-- "limit": the first rows per parent in order_by order (then key order)
INSERT INTO orders VALUES (12, 1, 7, 'open'), (13, 1, 1, 'open');
SELECT lives_ok($$SELECT flusso.create_index('lim', '{"table": "users", "columns": ["id"], "children": [
    {"name": "top", "table": "orders", "type": "many", "columns": ["id", "total"],
     "order_by": "total DESC", "limit": 2,
     "children": [{"name": "skus", "table": "items", "type": "many", "value": "sku"}]},
    {"name": "first", "table": "orders", "type": "many", "value": "id", "limit": 1},
    {"name": "n", "table": "orders", "type": "count"},
    {"name": "tags", "table": "tags", "type": "many", "value": "name", "order_by": "name DESC",
     "limit": 1, "through": {"table": "user_tags"}}]}')$$,
    'an index with limits');
SELECT is(flusso.preview('lim', '1')::jsonb,
    '{"id": 1, "top": [{"id": 11, "total": 7, "skus": ["b"]}, {"id": 12, "total": 7, "skus": []}],
      "first": [10], "n": 4, "tags": ["x"]}'::jsonb,
    'limit keeps the first rows per parent (ties by key), a sibling count still counts them all');
SELECT is(flusso.preview('lim', '2')::jsonb,
    '{"id": 2, "top": [{"id": 20, "total": 1, "skus": ["c"]}], "first": [20], "n": 1, "tags": ["y"]}'::jsonb,
    'limit per parent: fewer rows than the limit, and through a link table');
SELECT is(flusso.affected_documents('lim', 'orders', NULL, '{"id": 13, "user_id": 1}'), '1',
    'a change to a row beyond the limit still rebuilds its parent');

-- identifier torture: quotes, backslashes, spaces, unicode, upper case, reserved words
CREATE SCHEMA "Odd ""Schema""";
DO $d$ BEGIN
  EXECUTE format('CREATE TABLE %I.%I (%I int PRIMARY KEY, %I text, %I text, %I int, %I text)',
                 'Odd "Schema"', 'Tab le ünï', 'ID', 'select', 'we"ird', 'back' || chr(92) || 'slash', 'Mixed Case');
END $d$;
CREATE TABLE "Odd ""Schema"""."order" ("key" int PRIMARY KEY, "Parent Id" int REFERENCES "Odd ""Schema"""."Tab le ünï", "user" text);
INSERT INTO "Odd ""Schema"""."Tab le ünï" VALUES (1, 's', 'w', 7, 'M');
INSERT INTO "Odd ""Schema"""."order" VALUES (5, 1, 'u');
SELECT lives_ok($$SELECT flusso.create_index('ünïcode-ïdx', $j${
  "table": "\"Odd \"\"Schema\"\"\".\"Tab le ünï\"",
  "columns": ["ID", "select", "we\"ird", "back\\slash", {"name": "Mixed Case", "expr": "lower(\"Mixed Case\")"}],
  "filter": "\"select\" IS NOT NULL AND \"back\\slash\" > 0",
  "children": [{"name": "order", "table": "\"Odd \"\"Schema\"\"\".\"order\"", "type": "many",
                "columns": ["key", "user"], "order_by": "\"key\" DESC"}]}$j$)$$,
  'odd identifiers everywhere');
SELECT is(flusso.preview('ünïcode-ïdx', '1')::jsonb,
  '{"ID": 1, "select": "s", "we\"ird": "w", "back\\slash": 7, "Mixed Case": "m", "order": [{"key": 5, "user": "u"}]}'::jsonb,
  'the document of odd identifiers');
SELECT is(flusso.affected_documents('ünïcode-ïdx', '"Odd ""Schema"""."order"', NULL, '{"Parent Id": 1}'),
  '1', 'resolve through odd identifiers');

-- injection through every string field: refused, nothing executed
CREATE TABLE sentinel (x int);
SELECT throws_ok($$SELECT flusso.create_index('i1', '{"table": "users; DROP TABLE sentinel"}')$$, '42602', NULL, 'through table');
SELECT throws_ok($$SELECT flusso.create_index('i2', '{"table": "users", "columns": ["id\"; DROP TABLE sentinel; --"]}')$$, '42703', NULL, 'through a column name');
SELECT throws_ok($$SELECT flusso.create_index('i3', '{"table": "users", "filter": "true; DROP TABLE sentinel"}')$$, '42601', NULL, 'through filter');
SELECT throws_ok($$SELECT flusso.create_index('i4', '{"table": "users", "filter": "true /* */; DROP TABLE sentinel"}')$$, '42601', NULL, 'through a comment hiding a second statement');
SELECT throws_ok($$SELECT flusso.create_index('i5', '{"table": "users", "filter": "true --\n); DROP TABLE sentinel; SELECT (1"}')$$, '42601', NULL, 'through a line comment');
SELECT throws_ok($$SELECT flusso.create_index('i6', '{"table": "users", "columns": [{"name": "x", "expr": "1) FROM app.users; DROP TABLE sentinel; SELECT (1"}]}')$$, '42601', NULL, 'through expr');
SELECT throws_ok($$SELECT flusso.create_index('i7', '{"table": "users", "children": [{"name": "o", "table": "orders", "type": "many", "order_by": "id; DROP TABLE sentinel"}]}')$$, '42601', NULL, 'through order_by');
SELECT throws_ok($$SELECT flusso.create_index('i8', '{"table": "users", "children": [{"name": "o", "table": "orders", "type": "sum", "value": "total) FROM app.orders; DROP TABLE sentinel; SELECT (1"}]}')$$, '42601', NULL, 'through value');
SELECT throws_ok($$SELECT flusso.create_index('i9', '{"table": "users", "children": [{"name": "o", "table": "orders", "type": "many", "on": {"user_id = 1; DROP TABLE sentinel; --": "id"}}]}')$$, '42703', NULL, 'through an on column');
SELECT throws_ok($$SELECT flusso.create_index('i10', '{"table": "users", "children": [{"name": "t", "table": "tags", "type": "many", "through": {"table": "user_tags; DROP TABLE sentinel"}}]}')$$, '42602', NULL, 'through a link table');
SELECT throws_ok($$SELECT flusso.create_index('i11', '{"table": "users", "key": "id; DROP TABLE sentinel"}')$$, '42703', NULL, 'through key');
SELECT throws_ok($$SELECT flusso.create_index('i12', '{"table": "users", "filter": "(SELECT count(*) FROM app.sentinel) >= 0"}')$$, '0A000', NULL, 'a subquery reading another table');
SELECT lives_ok($$SELECT flusso.create_index('i13', '{"table": "users", "columns": [{"name": "x'');DROP TABLE sentinel;--", "column": "id"}]}')$$, 'a field name is data, not SQL');
SELECT ok(flusso.preview('i13', '1')::text LIKE '%DROP TABLE%', 'and shows up as a key of the document');
SELECT has_table('app', 'sentinel', 'the sentinel table survived every attempt');

SELECT * FROM finish();
ROLLBACK;
