-- The foundation's SQL surface: objects, privileges, and settings errors.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION flusso;
SELECT plan(59);

SELECT has_schema('flusso');
SELECT has_view('flusso', 'status', 'flusso.status exists');
SELECT has_view('flusso', 'index_status', 'flusso.index_status exists');
SELECT has_function('flusso', 'check_setting', ARRAY['text', 'text']);
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'flusso'), '0.5.0', 'version 0.5.0');
SELECT is((SELECT extrelocatable FROM pg_extension WHERE extname = 'flusso'), false, 'not relocatable');

SELECT columns_are('flusso', 'status', ARRAY[
    'database', 'phase', 'activity', 'started_at', 'uptime', 'changes_captured',
    'changes_committed', 'changes_in_flight', 'documents_built', 'batches',
    'slot_lag_bytes', 'errors', 'last_error', 'last_error_at', 'worker_pid',
    'synced_lsn', 'bulk_latency_ms', 'opensearch', 'opensearch_version',
    'opensearch_error', 'opensearch_checked_at', 'opensearch_tls_verify', 'lag_seconds', 'lag_warning', 'healthy',
    'search_engine', 'search_version']);
SELECT columns_are('flusso', 'index_status', ARRAY[
    'database', 'name', 'state', 'generation', 'building_generation', 'documents_upserted', 'documents_deleted', 'errors',
    'backfill_rows_done', 'backfill_rows_total', 'backfill_percent', 'last_error',
    'last_error_at', 'lag_seconds', 'backfill_eta', 'owner', 'waiting_for', 'waiting_since', 'error_active']);

-- who may read status
SELECT ok(has_table_privilege('pg_monitor', 'flusso.status', 'SELECT'), 'pg_monitor reads status');
SELECT ok(has_table_privilege('pg_monitor', 'flusso.index_status', 'SELECT'), 'pg_monitor reads index_status');
SELECT ok(NOT has_table_privilege('public', 'flusso.status', 'SELECT'), 'PUBLIC does not read status');
SELECT ok(NOT has_function_privilege('public', 'flusso.check_setting(text, text)', 'EXECUTE'),
          'PUBLIC may not run check_setting');
CREATE ROLE flusso_tap_nobody;
SET ROLE flusso_tap_nobody;
SELECT throws_ok('SELECT * FROM flusso.status', '42501', 'permission denied for view status',
                 'a role outside pg_monitor cannot read status');
RESET ROLE;
CREATE ROLE flusso_tap_monitor IN ROLE pg_monitor;
SET ROLE flusso_tap_monitor;
SELECT lives_ok('SELECT * FROM flusso.status', 'a pg_monitor member reads status');
SELECT lives_ok('SELECT * FROM flusso.index_status', 'a pg_monitor member reads index_status');
RESET ROLE;

-- the worker of this cluster's synced database shows in status
SELECT ok((SELECT count(*) FROM flusso.status WHERE database = 'flusso_test') = 1,
          'one status row for the synced database');
SELECT ok((SELECT bool_and(phase IN ('starting', 'backfilling', 'live', 'stopped', 'standby')) FROM flusso.status),
          'phases are starting, backfilling, live, stopped or standby');

-- settings: good values pass; bad ones give false, with the reason as a
-- WARNING (regress shows it), as a reload would refuse them
SET LOCAL client_min_messages = error;
SELECT ok(flusso.check_setting('flusso.batch_size', '500'), 'batch_size 500 is valid');
SELECT ok(flusso.check_setting('flusso.opensearch_url', 'http://a:9200,https://b:9200/'), 'two URLs are valid');
SELECT ok(flusso.check_setting('flusso.opensearch_url', ''), 'an empty URL (dry run) is valid');
SELECT is(flusso.check_setting('flusso.batch_size', '0'), false, 'batch_size 0');
SELECT is(flusso.check_setting('flusso.batch_bytes', '1kB'), false, 'batch_bytes below its minimum');
SELECT is(flusso.check_setting('flusso.queue_capacity', '1000'), false, 'queue_capacity 1000');
SELECT is(flusso.check_setting('flusso.opensearch_url', 'ftp://a'), false, 'an ftp URL');
SELECT is(flusso.check_setting('flusso.opensearch_url', 'http://a:9200/?pretty'), false, 'a URL with a query');
SELECT is(flusso.check_setting('flusso.slot_name', 'Bad-Name'), false, 'a slot name with upper case');
SELECT is(flusso.check_setting('flusso.slot_name', ''), false, 'an empty slot name');
SELECT ok(flusso.check_setting('flusso.slot_name', 'other_slot'), 'a valid slot name (a restart applies it)');
SELECT ok(flusso.check_setting('flusso.max_indexes', '128'), 'a valid max_indexes (a restart applies it)');
SELECT is(flusso.check_setting('flusso.on_error', 'explode'), false, 'an unknown failure policy');
SELECT is(flusso.check_setting('flusso.database', 'a, b, a'), false, 'a database listed twice');
SELECT is(flusso.check_setting('flusso.lag_poll_interval', '10ms'), false, 'lag poll too short');
SELECT is(flusso.check_setting('flusso.request_timeout', 'soon'), false, 'a timeout that is not a time');
SELECT is(flusso.check_setting('flusso.enabled', 'maybe'), false, 'enabled must be boolean');
SELECT ok(flusso.check_setting('FLUSSO.Batch_Size', '10'), 'a setting name in any letter case');
SELECT is(current_setting('flusso.failover_slots'), 'auto', 'failover_slots: auto by default');
SELECT ok(flusso.check_setting('flusso.failover_slots', 'off'), 'failover_slots: off');
SELECT ok(flusso.check_setting('flusso.failover_slots', 'auto'), 'failover_slots: auto');
SELECT is(flusso.check_setting('flusso.failover_slots', 'on'),
    current_setting('server_version_num')::int >= 170000,
    'failover_slots: on is valid from PostgreSQL 17 on, refused before');
SELECT is(flusso.check_setting('flusso.failover_slots', 'maybe'), false, 'failover_slots: an unknown value');
SELECT throws_ok($$SELECT flusso.check_setting('flusso.nonsense', '1')$$, '42704',
    '"flusso.nonsense" is not a flusso setting', 'an unknown flusso setting');
SELECT throws_ok($$SELECT flusso.check_setting('work_mem', '1MB')$$, '42704',
    '"work_mem" is not a flusso setting', 'not a flusso setting at all');

-- what a reload cannot check: roles and databases that do not exist
SELECT ok(flusso.check_setting('flusso.role', 'flusso_tap_nobody'), 'flusso.role: an existing role');
SELECT ok(flusso.check_setting('flusso.role', ''), 'flusso.role: empty');
SELECT is(flusso.check_setting('flusso.role', 'flusso_tap_no_such_role'), false, 'flusso.role: a role that does not exist');
SELECT ok(flusso.check_setting('flusso.database', current_database() || ', postgres'), 'flusso.database: existing databases');
SELECT is(flusso.check_setting('flusso.database', current_database() || ', flusso_tap_no_such_db'), false,
    'flusso.database: a database that does not exist');

-- flusso.max_lag_bytes is a size in bytes, shown as given, up to terabytes
SELECT is((SELECT setting || '|' || coalesce(unit, '') || '|' || vartype FROM pg_settings WHERE name = 'flusso.max_lag_bytes'),
    '1GB||string', 'max_lag_bytes: 1GB by default, shown as given, no implicit unit');
SELECT ok(flusso.check_setting('flusso.max_lag_bytes', '500000000'), 'max_lag_bytes: bare bytes');
SELECT ok(flusso.check_setting('flusso.max_lag_bytes', '50GB'), 'max_lag_bytes: 50GB');
SELECT ok(flusso.check_setting('flusso.max_lag_bytes', '1TB'), 'max_lag_bytes: 1TB (past what an int setting holds)');
SELECT ok(flusso.check_setting('flusso.max_lag_bytes', '64 MB'), 'max_lag_bytes: a space before the unit');
SELECT ok(flusso.check_setting('flusso.max_lag_bytes', '1.5GB'), 'max_lag_bytes: a fraction with a unit');
SELECT ok(flusso.check_setting('flusso.max_lag_bytes', '0'), 'max_lag_bytes: 0 turns the warning off');
SELECT is(flusso.check_setting('flusso.max_lag_bytes', '-1'), false, 'max_lag_bytes: negative');
SELECT is(flusso.check_setting('flusso.max_lag_bytes', 'lots'), false, 'max_lag_bytes: not a number');
SELECT is(flusso.check_setting('flusso.max_lag_bytes', '5PB'), false, 'max_lag_bytes: an unknown unit');
SELECT is(flusso.check_setting('flusso.max_lag_bytes', '10gb'), false, 'max_lag_bytes: units are case-sensitive, as in PostgreSQL');
SELECT is(flusso.check_setting('flusso.max_lag_bytes', '9000000TB'), false, 'max_lag_bytes: more than 64 bits of bytes');

SELECT * FROM finish();
ROLLBACK;
