-- The query PGSync 7.3.0 runs to rebuild the documents of a group of changed
-- users (test/bench/pgsync_schema.json), as captured from the PostgreSQL log
-- (log_statement = all) while its daemon synced live changes; PGSync wraps it
-- in DECLARE ... CURSOR and FETCHes from it.  The WHERE clause lists the root
-- keys of consecutive queued changes of one table.
--
-- With one key the planner restricts every child subquery to that user; with
-- two or more keys (an OR) the tags subquery (through user_tags) is not
-- restricted and aggregates the whole user_tags table.  On the benchmark
-- dataset with N = 200,000 (600,000 user_tags rows), EXPLAIN ANALYZE took
-- 2.4 ms with one key, 4.9 s with two, 7.4 s with five.
--
-- Try it on a kept benchmark cluster (test/bench/run.sh --keep):
--   psql -h 127.0.0.1 -p PORT -U postgres bench
--   \set ids 'users_1.id = 101081 OR users_1.id = 12264'
--   \i test/bench/pgsync_sync_query.sql
\if :{?ids}
\else
\set ids 'users_1.id = 101081'
\endif
EXPLAIN (ANALYZE, BUFFERS)
SELECT anon_1."JSON_BUILD_ARRAY_1", anon_1."JSON_BUILD_OBJECT_1", anon_1.id 
FROM (SELECT JSON_BUILD_ARRAY(anon_2._keys, anon_3._keys, anon_4._keys, anon_5._keys) AS "JSON_BUILD_ARRAY_1", CAST(JSON_BUILD_OBJECT('id', users_1.id, 'name', users_1.name, 'email', users_1.email, 'addresses', anon_2.addresses, 'orders', anon_3.orders, 'company', anon_4.company, 'tags', anon_5.tags) AS JSONB) AS "JSON_BUILD_OBJECT_1", users_1.id AS id 
FROM public.users AS users_1 LEFT OUTER JOIN LATERAL (SELECT CAST(JSON_BUILD_OBJECT('addresses', JSON_AGG(CAST(JSON_BUILD_OBJECT('id', JSON_BUILD_ARRAY(addresses_1.id)) AS JSONB))) AS JSONB) AS _keys, JSON_AGG(CAST(JSON_BUILD_OBJECT('city', addresses_1.city, 'zip', addresses_1.zip, 'street', addresses_1.street) AS JSONB)) AS addresses, addresses_1.user_id AS user_id 
FROM public.addresses AS addresses_1 
WHERE addresses_1.user_id = users_1.id GROUP BY addresses_1.user_id) AS anon_2 ON anon_2.user_id = users_1.id LEFT OUTER JOIN LATERAL (SELECT CAST(JSON_BUILD_OBJECT('orders', JSON_AGG(CAST(JSON_BUILD_OBJECT('id', JSON_BUILD_ARRAY(orders_1.id)) AS JSONB))) AS JSONB) || CAST(JSON_AGG(anon_6._keys) AS JSONB) AS _keys, JSON_AGG(CAST(JSON_BUILD_OBJECT('id', orders_1.id, 'total', orders_1.total, 'status', orders_1.status, 'created_at', orders_1.created_at, 'items', anon_6.items) AS JSONB)) AS orders, orders_1.user_id AS user_id 
FROM public.orders AS orders_1 LEFT OUTER JOIN LATERAL (SELECT CAST(JSON_BUILD_OBJECT('order_items', JSON_AGG(CAST(JSON_BUILD_OBJECT('id', order_items_1.id) AS JSONB))) AS JSONB) AS _keys, JSON_AGG(CAST(JSON_BUILD_OBJECT('sku', order_items_1.sku, 'qty', order_items_1.qty, 'price', order_items_1.price) AS JSONB)) AS items, order_items_1.order_id AS order_id 
FROM public.order_items AS order_items_1 
WHERE order_items_1.order_id = orders_1.id GROUP BY order_items_1.order_id) AS anon_6 ON anon_6.order_id = orders_1.id 
WHERE orders_1.user_id = users_1.id GROUP BY orders_1.user_id) AS anon_3 ON anon_3.user_id = users_1.id LEFT OUTER JOIN LATERAL (SELECT CAST(JSON_BUILD_OBJECT('companies', CAST(JSON_BUILD_OBJECT('id', JSON_BUILD_ARRAY(companies_1.id)) AS JSONB)) AS JSONB) AS _keys, CAST(JSON_BUILD_OBJECT('name', companies_1.name, 'country', companies_1.country) AS JSONB) AS company, companies_1.id AS id 
FROM public.companies AS companies_1 
WHERE companies_1.id = users_1.company_id) AS anon_4 ON anon_4.id = users_1.company_id LEFT OUTER JOIN LATERAL (SELECT JSON_AGG(CAST(anon_7._keys AS JSONB) || CAST(JSON_BUILD_OBJECT('user_tags', JSON_BUILD_ARRAY(JSON_BUILD_OBJECT('tag_id', JSON_BUILD_ARRAY(user_tags_1.tag_id)), JSON_BUILD_OBJECT('user_id', JSON_BUILD_ARRAY(user_tags_1.user_id)))) AS JSONB)) AS _keys, JSON_AGG(anon_7.anon) AS tags, user_tags_1.user_id AS user_id 
FROM public.user_tags AS user_tags_1 LEFT OUTER JOIN LATERAL (SELECT CAST(JSON_BUILD_OBJECT('tags', JSON_BUILD_ARRAY(JSON_BUILD_OBJECT('id', JSON_BUILD_ARRAY(tags_1.id)))) AS JSONB) AS _keys, tags_1.name AS anon, tags_1.id AS id 
FROM public.tags AS tags_1 
WHERE tags_1.id = user_tags_1.tag_id) AS anon_7 ON anon_7.id = user_tags_1.tag_id GROUP BY user_tags_1.user_id) AS anon_5 ON anon_5.user_id = users_1.id 
WHERE :ids) AS anon_1;
