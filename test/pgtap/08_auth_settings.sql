-- The search engine's connection settings: engine-neutral names, the old
-- flusso.opensearch_* names as aliases, and the authentication settings.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = error;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION flusso;
SELECT plan(26);

-- every 0.4 name is still a setting, beside its engine-neutral name
SELECT ok(current_setting(n, true) IS NOT NULL, n || ' exists')
  FROM unnest(ARRAY['flusso.opensearch_url', 'flusso.opensearch_user', 'flusso.opensearch_password',
                    'flusso.opensearch_password_file', 'flusso.opensearch_ca_file',
                    'flusso.opensearch_client_cert', 'flusso.opensearch_client_key',
                    'flusso.opensearch_tls_verify']) AS n;
SELECT ok(current_setting(n, true) IS NOT NULL, n || ' exists')
  FROM unnest(ARRAY['flusso.search_url', 'flusso.search_user', 'flusso.search_password',
                    'flusso.search_password_file', 'flusso.search_ca_file',
                    'flusso.search_client_cert', 'flusso.search_client_key',
                    'flusso.search_tls_verify']) AS n;

SELECT is(flusso.check_setting('flusso.search_url', 'ftp://a'), false, 'search_url: an ftp URL');
SELECT is(flusso.check_setting('flusso.search_api_key', 'two words'), false, 'an API key with a space');
SELECT is(flusso.check_setting('flusso.search_bearer_token', E'a\tb'), false, 'a bearer token with a tab');
SELECT is(flusso.check_setting('flusso.aws_region', 'eu_west_1'), false, 'a region with "_"');
SELECT is(flusso.check_setting('flusso.aws_service', 's3'), false, 'a service other than es and aoss');
SELECT is(flusso.check_setting('flusso.aws_credentials_file', '/etc/passwd'), false, 'a credentials file others may read');
SELECT is(flusso.check_setting('flusso.aws_region', 'eu-west-1'), false,
          'a region without a credentials file: SigV4 needs both');
SELECT ok(flusso.check_setting('flusso.search_api_key', 'VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw'),
          'an API key as Elasticsearch issues it');
SELECT is(current_setting('flusso.search_api_key'), '', 'no API key is set');
SELECT is((SELECT count(*) FROM pg_settings WHERE name LIKE 'flusso.search_%key' OR name LIKE 'flusso.%token%'
             OR name LIKE 'flusso.%password%'), 0::bigint,
          'secrets are not in pg_settings');

SELECT * FROM finish();
ROLLBACK;
