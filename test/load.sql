-- A live load on the benchmark dataset (test/bench/dataset.sql): random
-- inserts, updates and deletes on root, child, grandchild and link tables,
-- primary-key changes, re-parenting and rows leaving and re-entering the
-- index filter, one transaction each, for :seconds seconds.
--   psql -v seconds=20 -f test/load.sql
\set ON_ERROR_STOP 1
\if :{?seconds}
\else
\set seconds 10
\endif
SET client_min_messages = warning;
SELECT set_config('flusso_load.seconds', :'seconds', false);

DO $load$
DECLARE
	deadline timestamptz := clock_timestamp() + current_setting('flusso_load.seconds')::int * interval '1 s';
	n_users bigint;
	n_orders bigint;
	u bigint;
	o bigint;
	op int;
	i bigint := 0;
BEGIN
	SELECT max(id) INTO n_users FROM users;
	SELECT max(id) INTO n_orders FROM orders;
	WHILE clock_timestamp() < deadline LOOP
		i := i + 1;
		u := 1 + floor(random() * n_users)::bigint;
		o := 1 + floor(random() * n_orders)::bigint;
		op := floor(random() * 12)::int;
		BEGIN
			CASE op
			WHEN 0 THEN
				INSERT INTO users VALUES (10000000 + floor(random() * 1e9)::bigint, 'load ' || i,
					'load' || i || '-' || floor(random() * 1e9) || '@example.com', 1 + u % 10, now(), NULL);
			WHEN 1 THEN
				UPDATE users SET name = 'renamed ' || i WHERE id = u;
			WHEN 2 THEN
				INSERT INTO orders VALUES (20000000 + floor(random() * 1e9)::bigint, u, round((random() * 100)::numeric, 2), 'new', now());
			WHEN 3 THEN
				UPDATE orders SET user_id = u WHERE id = o;	-- re-parenting
			WHEN 4 THEN
				DELETE FROM order_items WHERE id = (SELECT min(id) FROM order_items WHERE order_id = o);
			WHEN 5 THEN
				INSERT INTO order_items VALUES (30000000 + floor(random() * 1e9)::bigint, o, 'LOAD-' || i, 1 + i % 5, 9.99);
			WHEN 6 THEN
				INSERT INTO user_tags VALUES (u, 1 + (i % 200)::int) ON CONFLICT DO NOTHING;
			WHEN 7 THEN
				DELETE FROM user_tags WHERE user_id = u;
			WHEN 8 THEN	-- a primary-key change, where no child row holds the key
				UPDATE users SET id = 40000000 + floor(random() * 1e9)::bigint
				 WHERE id = u AND NOT EXISTS (SELECT FROM orders WHERE user_id = u)
				   AND NOT EXISTS (SELECT FROM addresses WHERE user_id = u)
				   AND NOT EXISTS (SELECT FROM user_tags WHERE user_id = u);
			WHEN 9 THEN	-- leave or re-enter the filter
				UPDATE users SET deleted_at = CASE WHEN deleted_at IS NULL THEN now() END WHERE id = u;
			WHEN 10 THEN
				DELETE FROM order_items WHERE order_id = o;
				DELETE FROM orders WHERE id = o;
			ELSE
				UPDATE tags SET name = 'tag' || (i % 200) || '-' || i WHERE id = 1 + (i % 200)::int;
			END CASE;
		EXCEPTION WHEN unique_violation OR foreign_key_violation THEN
			NULL;	-- a random choice that the data does not allow: skip it
		END;
		COMMIT;
	END LOOP;
	RAISE NOTICE 'load: % transactions', i;
END
$load$;
