-- The status surface: views, their columns, and who may read them.
CREATE EXTENSION flusso;

SELECT extversion FROM pg_extension WHERE extname = 'flusso';

SELECT attname, format_type(atttypid, atttypmod)
  FROM pg_attribute
 WHERE attrelid = 'flusso.status'::regclass AND attnum > 0
 ORDER BY attnum;

SELECT attname, format_type(atttypid, atttypmod)
  FROM pg_attribute
 WHERE attrelid = 'flusso.index_status'::regclass AND attnum > 0
 ORDER BY attnum;

-- Phases are one of the four the daemon had, or standby (on a hot standby).
SELECT count(*) = count(*) FILTER (WHERE phase IN ('starting', 'backfilling', 'live', 'stopped', 'standby'))
  AS phases_known
  FROM flusso.status;

-- pg_monitor may read the views; PUBLIC may not.
SELECT has_table_privilege('pg_monitor', 'flusso.status', 'SELECT') AS monitor_status,
       has_table_privilege('pg_monitor', 'flusso.index_status', 'SELECT') AS monitor_index_status,
       has_table_privilege('public', 'flusso.status', 'SELECT') AS public_status;

CREATE ROLE flusso_regress_nobody;
SET ROLE flusso_regress_nobody;
SELECT * FROM flusso.status;
RESET ROLE;
CREATE ROLE flusso_regress_monitor IN ROLE pg_monitor;
SET ROLE flusso_regress_monitor;
SELECT count(*) >= 0 AS readable FROM flusso.status;
RESET ROLE;
DROP ROLE flusso_regress_nobody;
DROP ROLE flusso_regress_monitor;

-- Settings are validated as a reload would validate them: a bad value
-- gives false, with the reason a reload would log as a WARNING.
SELECT flusso.check_setting('flusso.batch_size', '500');
SELECT flusso.check_setting('flusso.batch_size', '0');
SELECT flusso.check_setting('flusso.opensearch_url', 'http://a:9200, https://b:9200');
SELECT flusso.check_setting('flusso.opensearch_url', 'ftp://a');
SELECT flusso.check_setting('flusso.opensearch_url', 'http://user:hunter2@:9200');
SELECT flusso.check_setting('flusso.slot_name', 'Bad-Name');
SELECT flusso.check_setting('flusso.on_error', 'explode');
SELECT flusso.check_setting('flusso.database', 'a, b, a');
SELECT flusso.check_setting('flusso.flush_interval', '2d');
SELECT flusso.check_setting('flusso.slot_name', 'other_slot');
-- flusso.failover_slots: auto by default; on needs PostgreSQL 17 or later
-- (false, with the reason, on 15: expected/status.out; true on 17 and 18:
-- expected/status_1.out)
SELECT setting, boot_val, enumvals, context FROM pg_settings WHERE name = 'flusso.failover_slots';
SELECT flusso.check_setting('flusso.failover_slots', 'off');
SELECT flusso.check_setting('flusso.failover_slots', 'on');
SELECT flusso.check_setting('flusso.failover_slots', 'sometimes');
-- what a reload cannot check, because the postmaster reads no catalog
SELECT flusso.check_setting('flusso.role', 'no_such_role');
SELECT flusso.check_setting('flusso.database', 'postgres, no_such_db, regression_nope');
SELECT flusso.check_setting('flusso.database', 'postgres, ' || current_database());
-- flusso.max_lag_bytes: a size, bytes when bare, shown as given
SELECT setting, unit, vartype, boot_val FROM pg_settings WHERE name = 'flusso.max_lag_bytes';
SELECT flusso.check_setting('flusso.max_lag_bytes', '500000000');
SELECT flusso.check_setting('flusso.max_lag_bytes', '50GB');
SELECT flusso.check_setting('flusso.max_lag_bytes', '50 gigs');
SELECT flusso.check_setting('flusso.max_lag_bytes', '-1GB');
SELECT flusso.check_setting('flusso.max_lag_bytes', '9000000TB');
SELECT flusso.check_setting('flusso.nonsense', '1');
SELECT flusso.check_setting('work_mem', '1MB');

DROP EXTENSION flusso;
