-- The search engine's connection settings: the engine-neutral names, the old
-- flusso.opensearch_* names beside them, and the authentication settings'
-- errors.  check_setting() validates as a reload would.
CREATE EXTENSION flusso;

-- both names exist; the visible ones show in pg_settings
SELECT name, setting, boot_val FROM pg_settings
 WHERE name IN ('flusso.aws_region', 'flusso.aws_service', 'flusso.search_tls_verify',
                'flusso.opensearch_tls_verify')
 ORDER BY name;
-- secrets and paths are left out of pg_settings, even for superusers
SELECT count(*) FROM pg_settings
 WHERE name IN ('flusso.search_api_key', 'flusso.search_bearer_token', 'flusso.search_password',
                'flusso.search_api_key_file', 'flusso.search_bearer_token_file',
                'flusso.aws_credentials_file', 'flusso.search_url', 'flusso.opensearch_url');

-- URLs, under either name: the hint names the setting given
SELECT flusso.check_setting('flusso.search_url', 'http://a:9200, https://b:9200');
SELECT flusso.check_setting('flusso.search_url', 'ftp://a');
SELECT flusso.check_setting('flusso.opensearch_url', 'ftp://a');
SELECT flusso.check_setting('flusso.search_tls_verify', 'maybe');

-- API keys and bearer tokens go into a header as they are
SELECT flusso.check_setting('flusso.search_api_key', 'VnVhQ2ZHY0JDZGJrUS1lNWFPeDp1aTJscDJheFRObXN5YWt3OXR2Tm53');
SELECT flusso.check_setting('flusso.search_api_key', 'VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw');
SELECT flusso.check_setting('flusso.search_api_key', 'two words');
SELECT flusso.check_setting('flusso.search_bearer_token', E'line\nbreak');

-- files of secrets: readable, by their owner only
SELECT flusso.check_setting('flusso.search_api_key_file', '/no/such/file');
SELECT flusso.check_setting('flusso.search_bearer_token_file', '/etc/passwd');
SELECT flusso.check_setting('flusso.aws_credentials_file', '/etc/passwd');
-- a file of the data directory is the server's own, mode 0600
SELECT flusso.check_setting('flusso.search_api_key_file', current_setting('data_directory') || '/PG_VERSION');

-- SigV4: a region, a service, and the credentials file together
SELECT flusso.check_setting('flusso.aws_region', 'EU_West');
SELECT flusso.check_setting('flusso.aws_region', 'eu-west-1');
SELECT flusso.check_setting('flusso.aws_credentials_file', current_setting('data_directory') || '/PG_VERSION');
SELECT flusso.check_setting('flusso.aws_service', 'lambda');
SELECT flusso.check_setting('flusso.aws_service', 'aoss');

-- SHOW masks what is secret whatever its value
SHOW flusso.search_api_key;
SHOW flusso.search_bearer_token;

DROP EXTENSION flusso;
