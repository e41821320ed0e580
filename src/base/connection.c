/*-------------------------------------------------------------------------
 *
 * connection.c
 *	  The search engine's connection settings: URL, TLS, authentication.
 *
 * This file owns the flusso.search_* settings, flusso.aws_region,
 * flusso.aws_service and flusso.aws_credentials_file, and the old names
 * of the first ones (flusso.opensearch_url, _user, _password,
 * _password_file, _ca_file, _client_cert, _client_key, _tls_verify), which
 * stay settable: a postgresql.conf written for 0.4 works as it was.  Each
 * name is a setting of its own; what is in force is the engine-neutral
 * name when it was given a value (a configuration file, ALTER SYSTEM), and
 * the old name otherwise (flusso_connection_get()).  Set under both names
 * to different values, the engine-neutral one wins and the worker logs a
 * warning (flusso_connection_alias_conflicts()).
 *
 * Exactly one authentication method may be set: basic (a user, or
 * user:password@ in the URL), an API key, a bearer token, or AWS SigV4.
 * A check hook sees one setting at a time, so two methods are not refused
 * when set; flusso_connection_problem() names them, the worker then sends
 * nothing and says why in flusso.status, and flusso.check_setting() warns
 * before a reload.
 *
 * Secrets: the password, the API key and the bearer token show as
 * "********" to everyone; URLs, user names and paths to superusers only;
 * the value of every secret setting is told to redact.c as it is set.  It
 * reads no file but to check its mode: sink/credentials.c reads them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <sys/stat.h>

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "base/compat.h"
#include "base/connection.h"
#include "base/redact.h"
#include "base/settingutil.h"

typedef enum ConnSetting
{
	CONN_URL,
	CONN_USER,
	CONN_PASSWORD,
	CONN_PASSWORD_FILE,
	CONN_CA_FILE,
	CONN_CLIENT_CERT,
	CONN_CLIENT_KEY,
	CONN_API_KEY,
	CONN_API_KEY_FILE,
	CONN_BEARER_TOKEN,
	CONN_BEARER_TOKEN_FILE,
	CONN_AWS_REGION,
	CONN_AWS_CREDENTIALS_FILE,
	CONN_SETTINGS
} ConnSetting;

/* The names, and the old ones of the settings flusso 0.4 had. */
static const char *const names[CONN_SETTINGS] = {
	"flusso.search_url", "flusso.search_user", "flusso.search_password",
	"flusso.search_password_file", "flusso.search_ca_file",
	"flusso.search_client_cert", "flusso.search_client_key",
	"flusso.search_api_key", "flusso.search_api_key_file",
	"flusso.search_bearer_token", "flusso.search_bearer_token_file",
	"flusso.aws_region", "flusso.aws_credentials_file"
};
static const char *const old_names[CONN_SETTINGS] = {
	"flusso.opensearch_url", "flusso.opensearch_user", "flusso.opensearch_password",
	"flusso.opensearch_password_file", "flusso.opensearch_ca_file",
	"flusso.opensearch_client_cert", "flusso.opensearch_client_key"
};

/* The values, as PostgreSQL stores them (a URL with its passwords masked). */
static char *value_of[CONN_SETTINGS];
static char *old_value_of[CONN_SETTINGS];

/* The URLs with their passwords: the check hook's extra. */
static const char *url_full = "";
static const char *old_url_full = "";

static bool tls_verify = true;
static bool old_tls_verify = true;

enum
{
	AWS_SERVICE_ES,
	AWS_SERVICE_AOSS
};
static int	aws_service = AWS_SERVICE_ES;
static const struct config_enum_entry aws_service_options[] = {
	{"es", AWS_SERVICE_ES, false},
	{"aoss", AWS_SERVICE_AOSS, false},
	{NULL, 0, false}
};

/* ---- URLs ---- */

/* One URL: http(s)://host[:port][/path], no query, no fragment. */
static bool
url_is_valid(const char *url, const char **why)
{
	const char *p;
	const char *host;

	if (strncmp(url, "http://", 7) == 0)
		p = url + 7;
	else if (strncmp(url, "https://", 8) == 0)
		p = url + 8;
	else
	{
		*why = "it does not start with http:// or https://";
		return false;
	}
	host = strrchr(p, '@');		/* user:password@host is allowed */
	host = host ? host + 1 : p;
	if (*host == '\0' || *host == '/' || *host == ':')
	{
		*why = "it has no host";
		return false;
	}
	if (strpbrk(url, "?# \t\r\n"))
	{
		*why = "it contains a query, a fragment or white space";
		return false;
	}
	return true;
}

/*
 * The URL may carry "user:password@".  What PostgreSQL stores, and every
 * view shows (pg_settings' setting, reset_val and boot_val alike), is the
 * URL with the password masked; the full one travels as the setting's
 * extra and reaches the worker through the assign hook.
 */
static bool
keep_url_secret(char **newval, void **extra)
{
	char	   *shown = flusso_redact_url_list(*newval);
	char	   *full = compat_guc_strdup(*newval);	/* GUC frees values and extras itself */
	char	   *masked;

	if (full == NULL)
		return false;
	*extra = full;
	if (strcmp(shown, *newval) == 0)
		return true;
	masked = compat_guc_strdup(shown);
	if (masked == NULL)
		return false;
	compat_guc_free(*newval);
	*newval = masked;
	return true;
}

static bool
check_url(char **newval, void **extra, const char *setting)
{
	List	   *urls = flusso_split_list(*newval);
	ListCell   *lc;

	foreach(lc, urls)
	{
		const char *why = NULL;

		if (!url_is_valid(lfirst(lc), &why))
		{
			char	   *shown = flusso_redact_url_list(lfirst(lc));

			GUC_check_errdetail("\"%s\" is not a usable OpenSearch URL: %s.",
								shown, why);
			GUC_check_errhint("Set %s to one or more comma-separated URLs such as http://localhost:9200, or to an empty string for a dry run.",
							  setting);
			return false;
		}
	}
	return keep_url_secret(newval, extra);
}

static bool
check_search_url(char **newval, void **extra, GucSource source)
{
	return check_url(newval, extra, names[CONN_URL]);
}

static bool
check_opensearch_url(char **newval, void **extra, GucSource source)
{
	return check_url(newval, extra, old_names[CONN_URL]);
}

static void
assign_search_url(const char *newval, void *extra)
{
	url_full = extra ? (const char *) extra : "";
	flusso_redact_remember(FLUSSO_SECRET_SEARCH_URLS, url_full);
}

static void
assign_opensearch_url(const char *newval, void *extra)
{
	old_url_full = extra ? (const char *) extra : "";
	flusso_redact_remember(FLUSSO_SECRET_URLS, old_url_full);
}

/* ---- secrets given in a setting ---- */

static void
assign_search_password(const char *newval, void *extra)
{
	flusso_redact_remember(FLUSSO_SECRET_SEARCH_PASSWORD, newval);
}

static void
assign_opensearch_password(const char *newval, void *extra)
{
	flusso_redact_remember(FLUSSO_SECRET_PASSWORD, newval);
}

static void
assign_api_key(const char *newval, void *extra)
{
	flusso_redact_remember(FLUSSO_SECRET_API_KEY, newval);
}

static void
assign_bearer_token(const char *newval, void *extra)
{
	flusso_redact_remember(FLUSSO_SECRET_BEARER_TOKEN, newval);
}

/*
 * An API key or a bearer token goes into an HTTP header as it is: printable
 * ASCII without spaces (base64, base64url, a JWT, "id:key").
 */
static bool
check_token(char **newval, void **extra, GucSource source)
{
	const unsigned char *p;

	for (p = (const unsigned char *) *newval; *p; p++)
	{
		if (*p <= ' ' || *p >= 0x7f)
		{
			GUC_check_errdetail("An API key or a bearer token may hold printable ASCII characters only, without spaces; character %d is not one.",
								(int) (p - (const unsigned char *) *newval) + 1);
			GUC_check_errhint("Give the key or token as the engine issued it (base64 for an Elasticsearch API key, or id:api_key).");
			return false;
		}
	}
	return true;
}

/* An AWS region: "eu-west-1", "us-gov-west-1", "cn-north-1". */
static bool
check_aws_region(char **newval, void **extra, GucSource source)
{
	const char *p;

	for (p = *newval; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
		{
			GUC_check_errdetail("\"%s\" is not an AWS region: a region is made of lower-case letters, digits and \"-\".",
								*newval);
			GUC_check_errhint("Set flusso.aws_region to the region of the OpenSearch domain or collection, such as eu-west-1; empty when SigV4 is not used.");
			return false;
		}
	}
	return true;
}

/* ---- files ---- */

/* Is path a file?  *st is what stat() says; false with the detail set if not. */
static bool
stat_readable_file(const char *path, struct stat *st)
{
	if (stat(path, st) == 0 && S_ISREG(st->st_mode))
		return true;
	GUC_check_errdetail("\"%s\" is not a readable file: %m.", path);
	return false;
}

/* A file setting must name a readable file (empty: not used). */
static bool
check_readable_file(char **newval, void **extra, GucSource source)
{
	struct stat st;

	return **newval == '\0' || stat_readable_file(*newval, &st);
}

/* A file of secrets must be a readable file, readable by its owner only. */
static bool
check_secret_file(char **newval, void **extra, GucSource source)
{
	struct stat st;

	if (**newval == '\0')
		return true;
	if (!stat_readable_file(*newval, &st))
		return false;
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
	{
		GUC_check_errdetail("\"%s\" is readable by its group or by others (mode %04o).",
							*newval, (unsigned int) (st.st_mode & 07777));
		GUC_check_errhint("Run chmod 600 on it: a file that holds a secret must be readable by its owner only.");
		return false;
	}
	return true;
}

/* ---- what SHOW and pg_settings show ---- */

/*
 * Settings that hold URLs, user names and paths show to superusers only:
 * GUC_SUPERUSER_ONLY alone still lets members of pg_read_all_settings (and
 * so pg_monitor) read them, so they are also left out of pg_settings
 * (GUC_NO_SHOW_ALL) and SHOW gives others "(hidden)".  Secrets show as
 * "********" to everyone.
 */
#define HIDDEN_SETTING (GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL)

static const char *
show_hidden(const char *value)
{
	if (value == NULL || value[0] == '\0')
		return "";
	return superuser() ? value : "(hidden)";
}

static const char *
show_secret(const char *value)
{
	return value && value[0] ? "********" : "";
}

/* GUC calls a show hook without an argument: one hook per setting. */
#define SHOW_HOOK(hook, how, variable) \
static const char * \
hook(void) \
{ \
	return how(variable); \
}

SHOW_HOOK(show_url, show_hidden, value_of[CONN_URL])
SHOW_HOOK(show_old_url, show_hidden, old_value_of[CONN_URL])
SHOW_HOOK(show_user, show_hidden, value_of[CONN_USER])
SHOW_HOOK(show_old_user, show_hidden, old_value_of[CONN_USER])
SHOW_HOOK(show_password, show_secret, value_of[CONN_PASSWORD])
SHOW_HOOK(show_old_password, show_secret, old_value_of[CONN_PASSWORD])
SHOW_HOOK(show_password_file, show_hidden, value_of[CONN_PASSWORD_FILE])
SHOW_HOOK(show_old_password_file, show_hidden, old_value_of[CONN_PASSWORD_FILE])
SHOW_HOOK(show_ca_file, show_hidden, value_of[CONN_CA_FILE])
SHOW_HOOK(show_old_ca_file, show_hidden, old_value_of[CONN_CA_FILE])
SHOW_HOOK(show_client_cert, show_hidden, value_of[CONN_CLIENT_CERT])
SHOW_HOOK(show_old_client_cert, show_hidden, old_value_of[CONN_CLIENT_CERT])
SHOW_HOOK(show_client_key, show_hidden, value_of[CONN_CLIENT_KEY])
SHOW_HOOK(show_old_client_key, show_hidden, old_value_of[CONN_CLIENT_KEY])
SHOW_HOOK(show_api_key, show_secret, value_of[CONN_API_KEY])
SHOW_HOOK(show_api_key_file, show_hidden, value_of[CONN_API_KEY_FILE])
SHOW_HOOK(show_bearer_token, show_secret, value_of[CONN_BEARER_TOKEN])
SHOW_HOOK(show_bearer_token_file, show_hidden, value_of[CONN_BEARER_TOKEN_FILE])
SHOW_HOOK(show_aws_credentials_file, show_hidden, value_of[CONN_AWS_CREDENTIALS_FILE])

/* ---- definitions ---- */

typedef struct ConnDefinition
{
	ConnSetting id;
	const char *short_desc;
	const char *long_desc;
	int			flags;
	GucStringCheckHook check;
	GucStringAssignHook assign;
	GucShowHook show;
	/* the old name's, when there is one */
	GucStringCheckHook old_check;
	GucStringAssignHook old_assign;
	GucShowHook old_show;
} ConnDefinition;

#define SECRET_SETTING (GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL)

static const ConnDefinition definitions[] = {
	{CONN_URL, "Search engine node URLs, comma-separated; empty for a dry run.",
		"With several URLs, requests fail over to the next node.", HIDDEN_SETTING,
	check_search_url, assign_search_url, show_url, check_opensearch_url, assign_opensearch_url, show_old_url},
	{CONN_USER, "User name for HTTP basic authentication to the search engine.",
		NULL, HIDDEN_SETTING, NULL, NULL, show_user, NULL, NULL, show_old_user},
	{CONN_PASSWORD, "Password for HTTP basic authentication to the search engine.",
		"flusso.search_password_file is the safer way to give it.", SECRET_SETTING,
	NULL, assign_search_password, show_password, NULL, assign_opensearch_password, show_old_password},
	{CONN_PASSWORD_FILE, "File holding the password for the search engine (readable by its owner only).",
		"It takes precedence over the password setting.", HIDDEN_SETTING,
	check_secret_file, NULL, show_password_file, check_secret_file, NULL, show_old_password_file},
	{CONN_CA_FILE, "File of CA certificates that verify the search engine's TLS certificate.",
		"Empty means the system's default CA store.", HIDDEN_SETTING,
	check_readable_file, NULL, show_ca_file, check_readable_file, NULL, show_old_ca_file},
	{CONN_CLIENT_CERT, "Client certificate for mutual TLS with the search engine (PEM).",
		NULL, HIDDEN_SETTING, check_readable_file, NULL, show_client_cert,
	check_readable_file, NULL, show_old_client_cert},
	{CONN_CLIENT_KEY, "Private key of the client certificate (PEM).",
		NULL, HIDDEN_SETTING, check_readable_file, NULL, show_client_key,
	check_readable_file, NULL, show_old_client_key},
	{CONN_API_KEY, "API key for the search engine (Authorization: ApiKey), base64 or id:api_key.",
		"flusso.search_api_key_file is the safer way to give it.", SECRET_SETTING,
	check_token, assign_api_key, show_api_key},
	{CONN_API_KEY_FILE, "File holding the API key for the search engine (readable by its owner only).",
		"It takes precedence over flusso.search_api_key, and is read again at every reload.", HIDDEN_SETTING,
	check_secret_file, NULL, show_api_key_file},
	{CONN_BEARER_TOKEN, "Bearer token for the search engine (Authorization: Bearer).",
		"flusso.search_bearer_token_file is the safer way to give it.", SECRET_SETTING,
	check_token, assign_bearer_token, show_bearer_token},
	{CONN_BEARER_TOKEN_FILE, "File holding the bearer token for the search engine (readable by its owner only).",
		"It takes precedence over flusso.search_bearer_token, and is read again at every reload and when the engine says the token expired.", HIDDEN_SETTING,
	check_secret_file, NULL, show_bearer_token_file},
	{CONN_AWS_REGION, "AWS region for SigV4 request signing (Amazon OpenSearch Service, OpenSearch Serverless).",
		"Empty: requests are not signed.  Needs flusso.aws_credentials_file.", 0,
	check_aws_region, NULL, NULL},
	{CONN_AWS_CREDENTIALS_FILE, "File of AWS credentials for SigV4 (JSON: AccessKeyId, SecretAccessKey, Token, Expiration; readable by its owner only).",
		"An external agent keeps it fresh; flusso reads it again at every reload, when the Expiration passes and when AWS says the token expired.", HIDDEN_SETTING,
	check_secret_file, NULL, show_aws_credentials_file},
};

static void
define_string(const char *name, const char *short_desc, const char *long_desc,
			  char **variable, int flags, GucStringCheckHook check,
			  GucStringAssignHook assign, GucShowHook show)
{
	DefineCustomStringVariable(name, short_desc, long_desc, variable, "", PGC_SIGHUP,
							   flags, check, assign, show);
}

void
flusso_define_connection_settings(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);	/* GUC keeps the texts */
	int			i;

	for (i = 0; i < (int) lengthof(definitions); i++)
	{
		const ConnDefinition *d = &definitions[i];

		define_string(names[d->id], d->short_desc, d->long_desc, &value_of[d->id],
					  d->flags, d->check, d->assign, d->show);
		if (old_names[d->id] != NULL)
			define_string(old_names[d->id], d->short_desc,
						  psprintf("The old name of %s, which wins when both are set.", names[d->id]),
						  &old_value_of[d->id], d->flags, d->old_check, d->old_assign, d->old_show);
	}
	DefineCustomEnumVariable("flusso.aws_service",
							 "AWS service that SigV4 signs for: es (Amazon OpenSearch Service) or aoss (OpenSearch Serverless).",
							 NULL, &aws_service, AWS_SERVICE_ES, aws_service_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("flusso.search_tls_verify",
							 "Verify the search engine's TLS certificate and host name.",
							 NULL, &tls_verify, true, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("flusso.opensearch_tls_verify",
							 "Verify the search engine's TLS certificate and host name.",
							 "The old name of flusso.search_tls_verify, which wins when both are set.",
							 &old_tls_verify, true, PGC_SIGHUP, 0, NULL, NULL, NULL);
	MemoryContextSwitchTo(old);
}

/* ---- what is in force ---- */

/* Is the engine-neutral name in force (it was set, or the old one was not)? */
static bool
new_name_wins(ConnSetting id)
{
	return old_names[id] == NULL || flusso_setting_is_set(names[id]) ||
		!flusso_setting_is_set(old_names[id]);
}

static const char *
in_force(ConnSetting id)
{
	const char *value = new_name_wins(id) ? value_of[id] : old_value_of[id];

	return value ? value : "";
}

/* The name of a setting as it is in force (for messages). */
static const char *
name_in_force(ConnSetting id)
{
	return new_name_wins(id) ? names[id] : old_names[id];
}

bool
flusso_connection_tls_verify(void)
{
	if (flusso_setting_is_set("flusso.search_tls_verify") ||
		!flusso_setting_is_set("flusso.opensearch_tls_verify"))
		return tls_verify;
	return old_tls_verify;
}

const char *
flusso_connection_url_setting(void)
{
	return name_in_force(CONN_URL);
}

/* Which authentication method is set first (basic, API key, bearer, SigV4). */
static FlussoAuthMethod
first_method(const FlussoConnection *conn, int *count)
{
	FlussoAuthMethod found = FLUSSO_AUTH_NONE;
	bool		set[5];
	int			m;

	set[FLUSSO_AUTH_NONE] = false;
	set[FLUSSO_AUTH_BASIC] = conn->user[0] != '\0' || strchr(conn->url, '@') != NULL;
	set[FLUSSO_AUTH_API_KEY] = conn->api_key[0] != '\0' || conn->api_key_file[0] != '\0';
	set[FLUSSO_AUTH_BEARER] = conn->bearer_token[0] != '\0' || conn->bearer_token_file[0] != '\0';
	set[FLUSSO_AUTH_SIGV4] = conn->aws_region[0] != '\0' || conn->aws_credentials_file[0] != '\0';
	*count = 0;
	for (m = FLUSSO_AUTH_SIGV4; m > FLUSSO_AUTH_NONE; m--)
	{
		if (set[m])
		{
			found = (FlussoAuthMethod) m;
			(*count)++;
		}
	}
	return found;
}

void
flusso_connection_get(FlussoConnection *conn)
{
	int			count;

	conn->url = new_name_wins(CONN_URL) ? url_full : old_url_full;
	conn->user = in_force(CONN_USER);
	conn->password = in_force(CONN_PASSWORD);
	conn->password_file = in_force(CONN_PASSWORD_FILE);
	conn->ca_file = in_force(CONN_CA_FILE);
	conn->client_cert = in_force(CONN_CLIENT_CERT);
	conn->client_key = in_force(CONN_CLIENT_KEY);
	conn->tls_verify = flusso_connection_tls_verify();
	conn->api_key = in_force(CONN_API_KEY);
	conn->api_key_file = in_force(CONN_API_KEY_FILE);
	conn->bearer_token = in_force(CONN_BEARER_TOKEN);
	conn->bearer_token_file = in_force(CONN_BEARER_TOKEN_FILE);
	conn->aws_region = in_force(CONN_AWS_REGION);
	conn->aws_service = aws_service_options[aws_service].name;
	conn->aws_credentials_file = in_force(CONN_AWS_CREDENTIALS_FILE);
	conn->auth = first_method(conn, &count);
}

/* The setting that says a method is in use, for messages. */
static const char *
method_setting(const FlussoConnection *conn, FlussoAuthMethod method)
{
	switch (method)
	{
		case FLUSSO_AUTH_BASIC:
			return conn->user[0] ? name_in_force(CONN_USER) : name_in_force(CONN_URL);
		case FLUSSO_AUTH_API_KEY:
			return conn->api_key_file[0] ? names[CONN_API_KEY_FILE] : names[CONN_API_KEY];
		case FLUSSO_AUTH_BEARER:
			return conn->bearer_token_file[0] ? names[CONN_BEARER_TOKEN_FILE] : names[CONN_BEARER_TOKEN];
		case FLUSSO_AUTH_SIGV4:
			return conn->aws_region[0] ? names[CONN_AWS_REGION] : names[CONN_AWS_CREDENTIALS_FILE];
		case FLUSSO_AUTH_NONE:
			break;
	}
	return "";
}

char *
flusso_connection_problem(const FlussoConnection *conn, char **hint)
{
	FlussoConnection others = *conn;
	int			count;
	FlussoAuthMethod first = first_method(conn, &count);
	FlussoAuthMethod second;

	if (count > 1)
	{
		/* the second method: the first one's settings left out */
		if (first == FLUSSO_AUTH_BASIC)
			others.user = others.url = "";
		else if (first == FLUSSO_AUTH_API_KEY)
			others.api_key = others.api_key_file = "";
		else if (first == FLUSSO_AUTH_BEARER)
			others.bearer_token = others.bearer_token_file = "";
		second = first_method(&others, &count);
		*hint = psprintf("Keep one of basic authentication (%s with %s or %s, or user:password@ in %s), an API key (%s or %s), a bearer token (%s or %s) and SigV4 (%s with %s), and reset the settings of the others.",
						 name_in_force(CONN_USER), name_in_force(CONN_PASSWORD),
						 name_in_force(CONN_PASSWORD_FILE), name_in_force(CONN_URL),
						 names[CONN_API_KEY], names[CONN_API_KEY_FILE],
						 names[CONN_BEARER_TOKEN], names[CONN_BEARER_TOKEN_FILE],
						 names[CONN_AWS_REGION], names[CONN_AWS_CREDENTIALS_FILE]);
		return psprintf("%s and %s are both set: flusso authenticates one way only",
						method_setting(conn, first), method_setting(conn, second));
	}
	if (first == FLUSSO_AUTH_SIGV4 &&
		(conn->aws_region[0] == '\0' || conn->aws_credentials_file[0] == '\0'))
	{
		*hint = psprintf("Set both %s (such as eu-west-1) and %s, or neither.",
						 names[CONN_AWS_REGION], names[CONN_AWS_CREDENTIALS_FILE]);
		return psprintf("%s is set but %s is not: SigV4 needs both",
						conn->aws_region[0] ? names[CONN_AWS_REGION] : names[CONN_AWS_CREDENTIALS_FILE],
						conn->aws_region[0] ? names[CONN_AWS_CREDENTIALS_FILE] : names[CONN_AWS_REGION]);
	}
	*hint = NULL;
	return NULL;
}

/* Where each setting's value goes in a FlussoConnection. */
static const size_t field_of[CONN_SETTINGS] = {
	offsetof(FlussoConnection, url), offsetof(FlussoConnection, user),
	offsetof(FlussoConnection, password), offsetof(FlussoConnection, password_file),
	offsetof(FlussoConnection, ca_file), offsetof(FlussoConnection, client_cert),
	offsetof(FlussoConnection, client_key), offsetof(FlussoConnection, api_key),
	offsetof(FlussoConnection, api_key_file), offsetof(FlussoConnection, bearer_token),
	offsetof(FlussoConnection, bearer_token_file), offsetof(FlussoConnection, aws_region),
	offsetof(FlussoConnection, aws_credentials_file)
};

char *
flusso_connection_problem_with(const char *name, const char *value, char **hint)
{
	FlussoConnection conn;
	int			id;

	flusso_connection_get(&conn);
	for (id = 0; id < CONN_SETTINGS; id++)
		if (pg_strcasecmp(name, names[id]) == 0 ||
			(old_names[id] && pg_strcasecmp(name, old_names[id]) == 0))
			*(const char **) ((char *) &conn + field_of[id]) = value;
	return flusso_connection_problem(&conn, hint);
}

char *
flusso_connection_alias_conflicts(void)
{
	char	   *result = NULL;
	int			id;

	for (id = 0; id < CONN_SETTINGS; id++)
	{
		const char *a = id == CONN_URL ? url_full : value_of[id];
		const char *b = id == CONN_URL ? old_url_full : old_value_of[id];

		if (old_names[id] == NULL || !flusso_setting_is_set(names[id]) ||
			!flusso_setting_is_set(old_names[id]) || strcmp(a ? a : "", b ? b : "") == 0)
			continue;
		result = psprintf("%s%s%s and %s", result ? result : "", result ? ", " : "",
						  names[id], old_names[id]);
	}
	if (flusso_setting_is_set("flusso.search_tls_verify") &&
		flusso_setting_is_set("flusso.opensearch_tls_verify") && tls_verify != old_tls_verify)
		result = psprintf("%s%sflusso.search_tls_verify and flusso.opensearch_tls_verify",
						  result ? result : "", result ? ", " : "");
	return result;
}
