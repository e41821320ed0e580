-- One random change on the benchmark dataset (test/bench/dataset.sql), as
-- a function: inserts, updates and deletes on root, child, grandchild and
-- link tables, primary-key changes, re-parenting, and rows leaving and
-- re-entering the index filter.  i is a random number, n_users and
-- n_orders the dataset's sizes.  Used by test/load.sql (a loop) and by the
-- fault suite's pgbench script (test/fault/step.pgbench).
CREATE OR REPLACE FUNCTION flusso_load_step(i bigint, n_users bigint, n_orders bigint)
RETURNS void LANGUAGE plpgsql AS $step$
DECLARE
	u bigint := 1 + (i * 7919) % n_users;
	o bigint := 1 + (i * 104729) % n_orders;
	op int := (i % 12)::int;
BEGIN
	CASE op
	WHEN 0 THEN
		INSERT INTO users VALUES (10000000 + i, 'load ' || i,
			'load' || i || '-' || floor(random() * 1e9) || '@example.com', 1 + u % 10, now(), NULL);
	WHEN 1 THEN
		UPDATE users SET name = 'renamed ' || i WHERE id = u;
	WHEN 2 THEN
		INSERT INTO orders VALUES (20000000 + i, u, round((random() * 100)::numeric, 2), 'new', now());
	WHEN 3 THEN
		UPDATE orders SET user_id = u WHERE id = o;	-- re-parenting
	WHEN 4 THEN
		DELETE FROM order_items WHERE id = (SELECT min(id) FROM order_items WHERE order_id = o);
	WHEN 5 THEN
		INSERT INTO order_items VALUES (30000000 + i, o, 'LOAD-' || i, 1 + i % 5, 9.99);
	WHEN 6 THEN
		INSERT INTO user_tags VALUES (u, 1 + (i % 200)::int) ON CONFLICT DO NOTHING;
	WHEN 7 THEN
		DELETE FROM user_tags WHERE user_id = u;
	WHEN 8 THEN	-- a primary-key change, where no child row holds the key
		UPDATE users SET id = 40000000 + i
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
END
$step$;
