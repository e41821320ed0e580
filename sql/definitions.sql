-- Index definitions: storing them, and the documents they build.
CREATE EXTENSION flusso;
SET client_min_messages = notice;

CREATE SCHEMA shop;
CREATE TABLE shop.companies (id int PRIMARY KEY, name text NOT NULL, country text);
CREATE TABLE shop.users (
    id int PRIMARY KEY,
    name text NOT NULL,
    email text,
    company_id int REFERENCES shop.companies (id),
    created_at timestamptz NOT NULL,
    deleted_at timestamptz,
    profile jsonb,
    scores int[]);
CREATE TABLE shop.addresses (id int PRIMARY KEY, user_id int NOT NULL REFERENCES shop.users (id),
                             city text, zip text);
CREATE TABLE shop.orders (id int PRIMARY KEY, user_id int NOT NULL REFERENCES shop.users (id),
                          total numeric(10, 2) NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE shop.order_items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES shop.orders (id),
                               sku text NOT NULL, qty int NOT NULL);
CREATE TABLE shop.tags (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE shop.user_tags (user_id int REFERENCES shop.users (id), tag_id int REFERENCES shop.tags (id),
                             PRIMARY KEY (user_id, tag_id));

INSERT INTO shop.companies VALUES (1, 'Acme', 'IT'), (2, 'Initech', 'US');
INSERT INTO shop.users VALUES
  (1, 'Ada', 'ada@example.com', 1, '2024-03-01 10:00+00', NULL, '{"vip": true}', '{3,5}'),
  (2, 'Bob', NULL, 2, '2024-03-02 11:30+00', NULL, NULL, NULL),
  (3, 'Cy', 'cy@example.com', NULL, '2024-03-03 12:00+00', NULL, NULL, '{}'),
  (4, 'Dee', 'dee@example.com', 1, '2024-03-04 09:15+00', '2024-06-01', NULL, NULL);
INSERT INTO shop.addresses VALUES (1, 1, 'Rome', '00100'), (2, 2, 'Milan', '20100');
INSERT INTO shop.orders VALUES
  (10, 1, 25.50, 'paid', '2024-04-01 08:00+00'),
  (11, 1, 99.90, 'cancelled', '2024-04-02 08:00+00'),
  (12, 1, 10.00, 'shipped', '2024-04-03 08:00+00'),
  (20, 2, 5.25, 'paid', '2024-04-05 08:00+00');
INSERT INTO shop.order_items VALUES (100, 10, 'A-1', 2), (101, 10, 'B-7', 1), (102, 12, 'C-3', 4), (200, 20, 'A-1', 1);
INSERT INTO shop.tags VALUES (1, 'admin'), (2, 'beta'), (3, 'staff');
INSERT INTO shop.user_tags VALUES (1, 2), (1, 1), (2, 3);

-- The full example: columns, a renamed column, an expression, a root
-- filter, one-to-many with a grandchild, one-to-one, many-to-one, a link
-- table, an array of scalars, and aggregates.  Join columns come from the
-- foreign keys.  The child tables need REPLICA IDENTITY FULL: warnings.
SELECT flusso.create_index('users', $${
  "table": "shop.users",
  "columns": ["id", "name", {"name": "mail", "column": "email"},
              {"name": "signup_day", "expr": "created_at::date"}, "profile", "scores"],
  "filter": "deleted_at IS NULL",
  "children": [
    {"name": "orders", "table": "shop.orders", "type": "many",
     "columns": ["id", "total", "status"], "filter": "status <> 'cancelled'",
     "order_by": "created_at DESC",
     "children": [{"name": "items", "table": "shop.order_items", "type": "many",
                   "columns": ["sku", "qty"], "order_by": "sku"}]},
    {"name": "address", "table": "shop.addresses", "type": "one", "columns": ["city", "zip"]},
    {"name": "company", "table": "shop.companies", "type": "one", "on": {"id": "company_id"},
     "columns": ["name"]},
    {"name": "tags", "table": "shop.tags", "type": "many", "value": "name", "order_by": "name",
     "through": {"table": "shop.user_tags", "parent": {"user_id": "id"}, "child": {"tag_id": "id"}}},
    {"name": "order_count", "table": "shop.orders", "type": "count"},
    {"name": "paid_total", "table": "shop.orders", "type": "sum", "value": "total",
     "filter": "status = 'paid'"},
    {"name": "largest_order", "table": "shop.orders", "type": "max", "value": "total"},
    {"name": "average_order", "table": "shop.orders", "type": "avg", "value": "total"},
    {"name": "first_order_at", "table": "shop.orders", "type": "min", "value": "created_at"}
  ]}$$);

SELECT name, root_table FROM flusso.indexes;

-- What is stored: every name resolved once, as create_index read it (the
-- tables schema-qualified, the expressions as PostgreSQL deparses them);
-- the rest as given.
SELECT jsonb_pretty(definition) FROM flusso.indexes WHERE name = 'users';
SET search_path = shop, public;
SELECT flusso.create_index('resolved', '{"table": "companies", "filter": "lower(country) IN (''it'', ''us'')",
  "columns": ["id", {"name": "shout", "expr": "upper(name) || ''!''"}],
  "children": [{"name": "staff", "table": "users", "type": "many", "value": "name",
                "order_by": "created_at DESC NULLS LAST, name COLLATE \"C\""}]}');
RESET search_path;
SELECT jsonb_pretty(definition) FROM flusso.indexes WHERE name = 'resolved';
SELECT flusso.preview('resolved', '1');
SELECT flusso.drop_index('resolved');

SET TIME ZONE 'UTC';
SELECT flusso.preview('users', '1');
SELECT flusso.preview('users', '2');
-- no orders, no address, no company, no tags
SELECT flusso.preview('users', '3');
-- filtered out by the root filter, and missing: both NULL (a delete)
SELECT flusso.preview('users', '4') IS NULL AS filtered_out,
       flusso.preview('users', '999') IS NULL AS missing;

SELECT * FROM flusso.document_ids('users') ORDER BY 1;

-- The OpenSearch index body: mappings derived from the column types.
SELECT jsonb_pretty(flusso.index_body('users'));

-- Which documents a change affects, from the old and the new image.
SELECT flusso.affected_documents('users', 'shop.users', '{"id": 1}', '{"id": 1}');
SELECT flusso.affected_documents('users', 'shop.users', '{"id": 5}', '{"id": 6}') ORDER BY 1;
SELECT flusso.affected_documents('users', 'shop.orders', NULL, '{"id": 13, "user_id": 2}');
-- re-parenting: both the old and the new parent
SELECT flusso.affected_documents('users', 'shop.orders', '{"id": 10, "user_id": 1}',
                                 '{"id": 10, "user_id": 3}') ORDER BY 1;
-- a grandchild: through the current order row
SELECT flusso.affected_documents('users', 'shop.order_items', '{"order_id": 20}', NULL);
-- many-to-one: every user of the company
SELECT flusso.affected_documents('users', 'shop.companies', NULL, '{"id": 1}') ORDER BY 1;
-- the link table and the linked table
SELECT flusso.affected_documents('users', 'shop.user_tags', '{"user_id": 2, "tag_id": 3}', NULL);
SELECT flusso.affected_documents('users', 'shop.tags', NULL, '{"id": 2}');
-- a table the index does not read
SELECT count(*) FROM flusso.affected_documents('users', 'flusso.definitions', NULL, '{"name": "x"}');

-- Arrays come out alike at every build: rows the order_by leaves tied (or
-- all rows, without one) are ordered by the child's key.  "limit" keeps the
-- first rows per parent, numbered by a window over the join columns.
SELECT flusso.create_index('recent', $${
  "table": "shop.users", "columns": ["id"], "filter": "deleted_at IS NULL",
  "children": [
    {"name": "orders", "table": "shop.orders", "type": "many", "value": "id",
     "order_by": "total DESC", "limit": 2},
    {"name": "address", "table": "shop.addresses", "type": "one", "value": "city"},
    {"name": "tags", "table": "shop.tags", "type": "many", "value": "name", "limit": 1,
     "through": {"table": "shop.user_tags"}}]}$$);
SELECT flusso.preview('recent', '1');
SELECT flusso.preview('recent', '2');
SELECT DISTINCT btrim(line) AS line
  FROM regexp_split_to_table(flusso.explain('recent'), E'\n') AS line
 WHERE line ~ 'row_number|json_agg|ORDER BY|~n'
 ORDER BY 1;
SELECT flusso.drop_index('recent');

-- A filter, expression, value or ordering that reads the current time is
-- computed when a row changes, not as time passes: create_index warns.
SELECT flusso.create_index('scheduled', $${
  "table": "shop.users", "columns": ["id", {"name": "days", "expr": "current_date - created_at::date"}],
  "filter": "created_at <= now()",
  "children": [
    {"name": "recent", "table": "shop.orders", "type": "many", "value": "id",
     "filter": "created_at > transaction_timestamp() - interval '30 days'",
     "order_by": "created_at <= localtimestamp, id"},
    {"name": "age", "table": "shop.orders", "type": "max", "value": "age(created_at)"},
    {"name": "quiet", "table": "shop.orders", "type": "count", "filter": "status <> lower('PAID')"}]}$$);
SELECT flusso.drop_index('scheduled');

-- A composite key, and an _id with the separator in it.
CREATE TABLE shop.memberships (org text, member_id int, role text NOT NULL, PRIMARY KEY (org, member_id));
INSERT INTO shop.memberships VALUES ('acme', 1, 'owner'), ('a|b', 2, 'guest');
SELECT flusso.create_index('memberships', '{"table": "shop.memberships"}');
SELECT * FROM flusso.document_ids('memberships') ORDER BY 1;
SELECT flusso.preview('memberships', 'acme|1');
SELECT flusso.preview('memberships', 'a\|b|2');
SELECT flusso.preview('memberships', 'acme');

-- The generated SQL, readable.
SELECT flusso.explain('memberships');

-- User settings and mappings override the defaults.
SELECT flusso.alter_index('memberships', $${
  "table": "shop.memberships", "key": ["org", "member_id"], "columns": ["org", "role"],
  "on_error": "skip",
  "opensearch": {"settings": {"number_of_shards": 1},
                 "mappings": {"dynamic": "strict", "properties": {"role": {"type": "keyword"}}}}}$$);
SELECT jsonb_pretty(flusso.index_body('memberships'));

-- Errors on the API itself.
SELECT flusso.create_index('memberships', '{"table": "shop.memberships"}');
SELECT flusso.alter_index('nope', '{"table": "shop.memberships"}');
SELECT flusso.drop_index('nope');
SELECT flusso.preview('nope', '1');
SELECT flusso.create_index('x', NULL);

SELECT flusso.drop_index('memberships', true);
SELECT name, action FROM flusso.requests;
SELECT name FROM flusso.indexes;

DROP SCHEMA shop CASCADE;
DROP EXTENSION flusso;
