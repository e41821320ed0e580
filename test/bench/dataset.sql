-- The benchmark and demo dataset: users with companies, addresses, orders
-- with items, and tags.  Run with psql -v n=200000 (default 200,000 users):
--   users N, addresses 1.5 N, orders 5 N, order_items 15 N,
--   companies N/100 (at least 10), tags 200, user_tags about 3 N.
-- Deterministic: the same N gives the same rows.
\set ON_ERROR_STOP 1
\if :{?n}
\else
\set n 200000
\endif

DROP TABLE IF EXISTS user_tags, tags, order_items, orders, addresses, users, companies CASCADE;

CREATE TABLE companies (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    country text NOT NULL
);
CREATE TABLE users (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL UNIQUE,
    company_id bigint REFERENCES companies (id),
    created_at timestamptz NOT NULL,
    deleted_at timestamptz
);
CREATE TABLE addresses (
    id bigint PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    city text NOT NULL,
    zip text NOT NULL,
    street text NOT NULL
);
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    total numeric(12, 2) NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE order_items (
    id bigint PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES orders (id),
    sku text NOT NULL,
    qty integer NOT NULL,
    price numeric(12, 2) NOT NULL
);
CREATE TABLE tags (
    id integer PRIMARY KEY,
    name text NOT NULL UNIQUE
);
CREATE TABLE user_tags (
    user_id bigint NOT NULL REFERENCES users (id),
    tag_id integer NOT NULL REFERENCES tags (id),
    PRIMARY KEY (user_id, tag_id)
);

INSERT INTO companies
SELECT i, 'Company ' || i, (ARRAY['IT', 'DE', 'FR', 'US', 'JP'])[1 + i % 5]
  FROM generate_series(1, greatest(10, :n / 100)) AS i;

INSERT INTO users
SELECT i, 'User ' || i, 'user' || i || '@example.com',
       1 + (i::bigint * 7919) % greatest(10, :n / 100),  -- bigint: i * 7919 overflows integer past N = 271,000
       timestamptz '2024-01-01' + (i % 100000) * interval '5 minutes',
       CASE WHEN i % 50 = 0 THEN timestamptz '2025-01-01' END
  FROM generate_series(1, :n) AS i;

INSERT INTO addresses
SELECT i, 1 + (i - 1) % :n, (ARRAY['Rome', 'Milan', 'Turin', 'Naples', 'Bologna'])[1 + i % 5],
       lpad((i % 99999)::text, 5, '0'), 'Via ' || i
  FROM generate_series(1, (:n * 3) / 2) AS i;

INSERT INTO orders
SELECT i, 1 + (i - 1) % :n, ((i * 37) % 100000) / 100.0,
       (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + i % 4],
       timestamptz '2024-01-01' + (i % 500000) * interval '1 minute'
  FROM generate_series(1, :n * 5) AS i;

INSERT INTO order_items
SELECT i, 1 + (i - 1) % (:n * 5), 'SKU-' || (i % 5000), 1 + i % 5, ((i * 13) % 10000) / 100.0
  FROM generate_series(1, :n * 15) AS i;

INSERT INTO tags SELECT i, 'tag' || i FROM generate_series(1, 200) AS i;

INSERT INTO user_tags
SELECT u, t
  FROM generate_series(1, :n) AS u,
       LATERAL (SELECT DISTINCT 1 + ((u * k * 31) % 200) AS t FROM generate_series(1, 3) AS k) AS x;

CREATE INDEX ON addresses (user_id);
CREATE INDEX ON orders (user_id);
CREATE INDEX ON order_items (order_id);
CREATE INDEX ON user_tags (tag_id);
CREATE INDEX ON users (company_id);

-- Children are found through their parent's key: deletes and re-parenting
-- need the old values of those columns in the WAL.
ALTER TABLE addresses REPLICA IDENTITY FULL;
ALTER TABLE orders REPLICA IDENTITY FULL;
ALTER TABLE order_items REPLICA IDENTITY FULL;

ANALYZE;
