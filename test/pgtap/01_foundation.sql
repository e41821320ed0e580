-- The foundation's SQL surface: objects, privileges, and settings errors.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION flusso;
SELECT plan(34);

SELECT has_schema('flusso');
SELECT has_view('flusso', 'status', 'flusso.status exists');
SELECT has_view('flusso', 'index_status', 'flusso.index_status exists');
SELECT has_function('flusso', 'check_setting', ARRAY['text', 'text']);
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'flusso'), '0.4.0', 'version 0.4.0');
SELECT is((SELECT extrelocatable FROM pg_extension WHERE extname = 'flusso'), false, 'not relocatable');

SELECT columns_are('flusso', 'status', ARRAY[
    'database', 'phase', 'activity', 'started_at', 'uptime', 'changes_captured',
    'changes_committed', 'changes_in_flight', 'documents_built', 'batches',
    'slot_lag_bytes', 'errors', 'last_error', 'last_error_at', 'worker_pid',
    'synced_lsn', 'bulk_latency_ms', 'opensearch', 'opensearch_version',
    'opensearch_error', 'opensearch_checked_at', 'opensearch_tls_verify', 'lag_seconds', 'lag_warning', 'healthy']);
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
SELECT ok((SELECT bool_and(phase IN ('starting', 'backfilling', 'live', 'stopped')) FROM flusso.status),
          'phases are starting, backfilling, live or stopped');

-- settings: good values pass, bad ones fail as a reload would fail
SELECT ok(flusso.check_setting('flusso.batch_size', '500'), 'batch_size 500 is valid');
SELECT ok(flusso.check_setting('flusso.opensearch_url', 'http://a:9200,https://b:9200/'), 'two URLs are valid');
SELECT ok(flusso.check_setting('flusso.opensearch_url', ''), 'an empty URL (dry run) is valid');
SELECT throws_ok($$SELECT flusso.check_setting('flusso.batch_size', '0')$$, '22023',
    '0 is outside the valid range for parameter "flusso.batch_size" (1 .. 100000)', 'batch_size 0');
SELECT throws_ok($$SELECT flusso.check_setting('flusso.batch_bytes', '1kB')$$, '22023',
    NULL, 'batch_bytes below its minimum');
SELECT throws_ok($$SELECT flusso.check_setting('flusso.queue_capacity', '1000')$$, '22023',
    '1000 is outside the valid range for parameter "flusso.queue_capacity" (1 .. 64)', 'queue_capacity 1000');
SELECT throws_ok($$SELECT flusso.check_setting('flusso.opensearch_url', 'ftp://a')$$, '22023',
    'invalid value for parameter "flusso.opensearch_url": "ftp://a"', 'an ftp URL');
SELECT throws_ok($$SELECT flusso.check_setting('flusso.opensearch_url', 'http://a:9200/?pretty')$$, '22023',
    'invalid value for parameter "flusso.opensearch_url": "http://a:9200/?pretty"', 'a URL with a query');
SELECT throws_ok($$SELECT flusso.check_setting('flusso.slot_name', 'Bad-Name')$$, '22023',
    'invalid value for parameter "flusso.slot_name": "Bad-Name"', 'a slot name with upper case');
SELECT throws_ok($$SELECT flusso.check_setting('flusso.slot_name', '')$$, '22023',
    'invalid value for parameter "flusso.slot_name": ""', 'an empty slot name');
SELECT throws_ok($$SELECT flusso.check_setting('flusso.on_error', 'explode')$$, '22023',
    'invalid value for parameter "flusso.on_error": "explode"', 'an unknown failure policy');
SELECT throws_ok($$SELECT flusso.check_setting('flusso.database', 'a, b, a')$$, '22023',
    'invalid value for parameter "flusso.database": "a, b, a"', 'a database listed twice');
-- PostgreSQL 17 and later print the unit after each bound: (100 ms .. 3600000 ms)
SELECT throws_like($$SELECT flusso.check_setting('flusso.lag_poll_interval', '10ms')$$,
    '10 ms is outside the valid range for parameter "flusso.lag_poll_interval" (100% .. 3600000%)', 'lag poll too short');
SELECT throws_ok($$SELECT flusso.check_setting('flusso.request_timeout', 'soon')$$, '22023',
    'invalid value for parameter "flusso.request_timeout": "soon"', 'a timeout that is not a time');
SELECT throws_ok($$SELECT flusso.check_setting('flusso.enabled', 'maybe')$$, '22023',
    'parameter "flusso.enabled" requires a Boolean value', 'enabled must be boolean');
SELECT throws_ok($$SELECT flusso.check_setting('flusso.nonsense', '1')$$, '42704',
    '"flusso.nonsense" is not a flusso setting', 'an unknown flusso setting');
SELECT throws_ok($$SELECT flusso.check_setting('work_mem', '1MB')$$, '42704',
    '"work_mem" is not a flusso setting', 'not a flusso setting at all');

SELECT * FROM finish();
ROLLBACK;
