-- A live load on the benchmark dataset (test/bench/dataset.sql): one
-- random change per transaction (see test/load_step.sql) for :seconds
-- seconds.
--   psql -v seconds=20 -f test/load.sql
\set ON_ERROR_STOP 1
\if :{?seconds}
\else
\set seconds 10
\endif
SET client_min_messages = warning;
\ir load_step.sql
SELECT set_config('flusso_load.seconds', :'seconds', false);

DO $load$
DECLARE
	deadline timestamptz := clock_timestamp() + current_setting('flusso_load.seconds')::int * interval '1 s';
	n_users bigint;
	n_orders bigint;
	i bigint := 0;
BEGIN
	SELECT max(id) INTO n_users FROM users WHERE id < 10000000;
	SELECT max(id) INTO n_orders FROM orders WHERE id < 20000000;
	WHILE clock_timestamp() < deadline LOOP
		i := i + 1;
		PERFORM flusso_load_step(floor(random() * 1e9)::bigint, n_users, n_orders);
		COMMIT;
	END LOOP;
	RAISE NOTICE 'load: % transactions', i;
END
$load$;
