/*-------------------------------------------------------------------------
 *
 * credentials.c
 *	  What a request to the search engine authenticates with: basic,
 *	  an API key, a bearer token or AWS SigV4, from the settings and from
 *	  the files they name.
 *
 * This file owns the credentials in force and reads the files that hold
 * them: the password file, the API key file, the bearer token file and
 * the AWS credentials file, a JSON object as the ECS/EKS container
 * credentials endpoint answers and a credential_process prints:
 *
 *	{"AccessKeyId": "ASIA...", "SecretAccessKey": "...",
 *	 "Token": "...", "Expiration": "2030-01-01T00:00:00Z"}
 *
 * ("SessionToken" is taken for "Token"; Token and Expiration are
 * optional).  An external agent keeps that file fresh: flusso never asks
 * the network for credentials.  The files are read when the settings are
 * taken (start, reload), again when the engine says the token expired
 * (flusso_credentials_reread()), and before a request once the file's
 * Expiration has passed or while a file cannot be read.  Each file must
 * be readable by its owner only, then as when set.
 *
 * What the files hold is told to redact.c (flusso_redact_remember()) before
 * the previous values are freed; nothing read here is ever put in a
 * message.  It must not send requests nor raise errors for a bad file: a
 * problem is kept (FlussoCredentials.problem) and logged once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <sys/stat.h>
#include <json-c/json.h>

#include "common/base64.h"
#include "lib/stringinfo.h"
#include "storage/fd.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "base/redact.h"
#include "sink/credentials.h"

#define MAX_SECRET_FILE 65536

static FlussoConnection settings;	/* the settings' strings, copied */
static FlussoCredentials current;
static MemoryContext current_cxt = NULL;	/* current's strings */
static TimestampTz last_read = 0;

/* ---- files ---- */

/*
 * A file's content, trimmed of surrounding white space, or NULL with
 * *problem saying why.
 */
static char *
read_secret_file(const char *path, const char *setting, char **problem)
{
	FILE	   *f;
	struct stat st;
	char	   *buf;
	size_t		n;
	char	   *start;

	f = AllocateFile(path, "r");
	if (f == NULL)
	{
		*problem = psprintf("could not open %s \"%s\": %m", setting, path);
		return NULL;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
	{
		FreeFile(f);
		*problem = psprintf("%s \"%s\" is readable by its group or by others (mode %04o): run chmod 600 on it",
							setting, path, (unsigned int) (st.st_mode & 07777));
		return NULL;
	}
	buf = palloc(MAX_SECRET_FILE + 1);
	n = fread(buf, 1, MAX_SECRET_FILE, f);
	FreeFile(f);
	buf[n] = '\0';
	while (n > 0 && isspace((unsigned char) buf[n - 1]))
		buf[--n] = '\0';
	for (start = buf; isspace((unsigned char) *start); start++)
		;
	return start;
}

/* Can value go into an HTTP header as it is? */
static bool
header_safe(const char *value)
{
	const unsigned char *p;

	for (p = (const unsigned char *) value; *p; p++)
		if (*p <= ' ' || *p >= 0x7f)
			return false;
	return true;
}

/* ---- AWS credentials ---- */

/* "2030-01-01T00:00:00Z", "...00.000Z" or "...00+02:00" as a timestamp; false if not. */
static bool
parse_expiration(const char *text, TimestampTz *result)
{
	struct pg_tm tm = {0};
	int			consumed = 0;
	int			offset_h = 0;
	int			offset_m = 0;
	const char *p;
	Timestamp	ts;

	if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6)
		return false;
	p = text + consumed;
	if (*p == '.')
		for (p++; isdigit((unsigned char) *p); p++)
			;
	if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &offset_h, &offset_m) == 2)
	{
		int			sign = *p == '+' ? 1 : -1;

		tm.tm_hour -= sign * offset_h;
		tm.tm_min -= sign * offset_m;
		p += 6;
	}
	else if (*p == 'Z')
		p++;
	if (*p != '\0' || tm2timestamp(&tm, 0, NULL, &ts) != 0)
		return false;
	*result = (TimestampTz) ts;
	return true;
}

/* A string member of obj, or NULL. */
static const char *
json_string_member(json_object *obj, const char *key)
{
	json_object *member;

	if (json_object_object_get_ex(obj, key, &member) && json_object_is_type(member, json_type_string))
		return json_object_get_string(member);
	return NULL;
}

/* Fill creds from the AWS credentials file; false with *problem if it cannot be used. */
static bool
read_aws_credentials(FlussoCredentials *creds, char **problem)
{
	const char *setting = "flusso.aws_credentials_file";
	const char *path = settings.aws_credentials_file;
	char	   *text = read_secret_file(path, setting, problem);
	json_object *root;
	const char *key;
	const char *secret;
	const char *token;
	const char *expiration;

	if (text == NULL)
		return false;
	root = json_tokener_parse(text);
	if (root == NULL || !json_object_is_type(root, json_type_object))
	{
		json_object_put(root);
		*problem = psprintf("%s \"%s\" is not a JSON object with AccessKeyId and SecretAccessKey", setting, path);
		return false;
	}
	key = json_string_member(root, "AccessKeyId");
	secret = json_string_member(root, "SecretAccessKey");
	token = json_string_member(root, "Token");
	if (token == NULL)
		token = json_string_member(root, "SessionToken");
	expiration = json_string_member(root, "Expiration");
	if (key == NULL || secret == NULL || key[0] == '\0' || secret[0] == '\0')
		*problem = psprintf("%s \"%s\" has no AccessKeyId or no SecretAccessKey (strings)", setting, path);
	else if (!header_safe(key) || !header_safe(secret) || (token && !header_safe(token)))
		*problem = psprintf("%s \"%s\" holds a key, secret or token with a space or a control character", setting, path);
	else if (expiration && !parse_expiration(expiration, &creds->aws_expiration))
		*problem = psprintf("%s \"%s\": Expiration \"%s\" is not an ISO 8601 time such as 2030-01-01T00:00:00Z",
							setting, path, expiration);
	if (*problem == NULL)
	{
		creds->user = pstrdup(key);
		creds->password = pstrdup(secret);
		creds->aws_session_token = token && token[0] ? pstrdup(token) : NULL;
		creds->aws_sigv4 = psprintf("aws:amz:%s:%s", settings.aws_region, settings.aws_service);
		creds->aws_content_sha256 = strcmp(settings.aws_service, "aoss") == 0;
	}
	json_object_put(root);
	return *problem == NULL;
}

/* ---- API key, bearer token, password ---- */

/* The setting's value, or the file's content when a file is named; NULL with *problem. */
static const char *
setting_or_file(const char *value, const char *path, const char *file_setting, char **problem)
{
	if (path[0] == '\0')
		return value;
	return read_secret_file(path, file_setting, problem);
}

/* "ApiKey <base64(id:api_key)>", from either form the engine issues. */
static char *
api_key_header(const char *key)
{
	char	   *encoded;
	int			len;

	if (strchr(key, ':') == NULL)
		return psprintf("ApiKey %s", key);
	encoded = palloc(pg_b64_enc_len(strlen(key)) + 1);
	len = pg_b64_encode((const void *) key, strlen(key), encoded, pg_b64_enc_len(strlen(key)));
	encoded[Max(len, 0)] = '\0';
	flusso_redact_remember(FLUSSO_SECRET_API_KEY_SENT, encoded);
	return psprintf("ApiKey %s", encoded);
}

static bool
read_token(FlussoCredentials *creds, char **problem)
{
	const char *token;

	if (settings.auth == FLUSSO_AUTH_API_KEY)
	{
		token = setting_or_file(settings.api_key, settings.api_key_file, "flusso.search_api_key_file", problem);
		if (token && settings.api_key_file[0])
			flusso_redact_remember(FLUSSO_SECRET_API_KEY_FILE, token);
	}
	else
	{
		token = setting_or_file(settings.bearer_token, settings.bearer_token_file,
								"flusso.search_bearer_token_file", problem);
		if (token && settings.bearer_token_file[0])
			flusso_redact_remember(FLUSSO_SECRET_BEARER_TOKEN_FILE, token);
	}
	if (token == NULL)
		return false;
	if (token[0] == '\0' || !header_safe(token))
	{
		*problem = psprintf("the %s in %s is empty or holds a space or a control character",
							settings.auth == FLUSSO_AUTH_API_KEY ? "API key" : "bearer token",
							settings.auth == FLUSSO_AUTH_API_KEY ? settings.api_key_file : settings.bearer_token_file);
		return false;
	}
	creds->authorization = settings.auth == FLUSSO_AUTH_API_KEY ? api_key_header(token) :
		psprintf("Bearer %s", token);
	return true;
}

static bool
read_basic(FlussoCredentials *creds, char **problem)
{
	const char *password = setting_or_file(settings.password, settings.password_file,
										   "flusso.search_password_file", problem);

	if (password == NULL)
		return false;
	if (settings.password_file[0])
		flusso_redact_remember(FLUSSO_SECRET_PASSWORD_FILE, password);
	creds->user = settings.user[0] ? settings.user : NULL;
	creds->password = password;
	return true;
}

/* ---- what is in force ---- */

/* What the files held: redact.c forgets it before it is freed (a method no longer used is not read again). */
static void
forget_file_secrets(void)
{
	flusso_redact_remember(FLUSSO_SECRET_PASSWORD_FILE, NULL);
	flusso_redact_remember(FLUSSO_SECRET_API_KEY_FILE, NULL);
	flusso_redact_remember(FLUSSO_SECRET_API_KEY_SENT, NULL);
	flusso_redact_remember(FLUSSO_SECRET_BEARER_TOKEN_FILE, NULL);
	flusso_redact_remember(FLUSSO_SECRET_AWS_SECRET_KEY, NULL);
	flusso_redact_remember(FLUSSO_SECRET_AWS_SESSION_TOKEN, NULL);
}

/* Read everything into a new context; the old one goes once redact.c knows the new secrets. */
static void
read_all(void)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "flusso credentials",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	FlussoCredentials creds = {0};
	char	   *problem = NULL;
	char	   *hint = NULL;
	const char *was = current.problem ? pstrdup(current.problem) : NULL;

	creds.method = settings.auth;
	forget_file_secrets();
	problem = flusso_connection_problem(&settings, &hint);
	if (problem == NULL && settings.auth == FLUSSO_AUTH_SIGV4)
		read_aws_credentials(&creds, &problem);
	else if (problem == NULL && (settings.auth == FLUSSO_AUTH_API_KEY || settings.auth == FLUSSO_AUTH_BEARER))
		read_token(&creds, &problem);
	else if (problem == NULL)
		read_basic(&creds, &problem);
	creds.problem = problem;
	flusso_redact_remember(FLUSSO_SECRET_AWS_SECRET_KEY, creds.aws_sigv4 ? creds.password : NULL);
	flusso_redact_remember(FLUSSO_SECRET_AWS_SESSION_TOKEN, creds.aws_session_token);
	MemoryContextSwitchTo(old);
	if (problem && (was == NULL || strcmp(was, problem) != 0))
		ereport(WARNING,
				(errmsg("flusso sends nothing to the search engine: %s", problem),
				 hint ? errhint("%s", hint) : 0));
	if (current_cxt)
		MemoryContextDelete(current_cxt);
	current_cxt = cxt;
	current = creds;
	last_read = GetCurrentTimestamp();
}

static const char *
keep(const char *value)
{
	return MemoryContextStrdup(TopMemoryContext, value ? value : "");
}

void
flusso_credentials_load(const FlussoConnection *conn)
{
	FlussoConnection copy = *conn;
	FlussoConnection previous;

	/* the settings' strings may change at the next reload: keep copies */
	copy.url = keep(conn->url);
	copy.user = keep(conn->user);
	copy.password = keep(conn->password);
	copy.password_file = keep(conn->password_file);
	copy.api_key = keep(conn->api_key);
	copy.api_key_file = keep(conn->api_key_file);
	copy.bearer_token = keep(conn->bearer_token);
	copy.bearer_token_file = keep(conn->bearer_token_file);
	copy.aws_region = keep(conn->aws_region);
	copy.aws_service = keep(conn->aws_service);
	copy.aws_credentials_file = keep(conn->aws_credentials_file);
	copy.ca_file = copy.client_cert = copy.client_key = NULL;	/* not read here */
	previous = settings;
	settings = copy;
	read_all();					/* then the old copies may go: nothing points into them */
	if (previous.url)
	{
		pfree((char *) previous.url);
		pfree((char *) previous.user);
		pfree((char *) previous.password);
		pfree((char *) previous.password_file);
		pfree((char *) previous.api_key);
		pfree((char *) previous.api_key_file);
		pfree((char *) previous.bearer_token);
		pfree((char *) previous.bearer_token_file);
		pfree((char *) previous.aws_region);
		pfree((char *) previous.aws_service);
		pfree((char *) previous.aws_credentials_file);
	}
}

const FlussoCredentials *
flusso_credentials_current(void)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		stale = current.problem != NULL ||
		(current.aws_expiration != 0 && current.aws_expiration <= now);

	if (stale && TimestampDifferenceExceeds(last_read, now, 1000))
		read_all();
	return &current;
}

char *
flusso_credentials_fingerprint(void)
{
	return psprintf("%d|%s|%s|%s|%s|%s|%s", (int) current.method,
					current.user ? current.user : "", current.password ? current.password : "",
					current.authorization ? current.authorization : "",
					current.aws_sigv4 ? current.aws_sigv4 : "",
					current.aws_session_token ? current.aws_session_token : "",
					current.problem ? current.problem : "");
}

bool
flusso_credentials_reread(void)
{
	char	   *before = flusso_credentials_fingerprint();
	char	   *after;
	bool		changed;

	read_all();
	after = flusso_credentials_fingerprint();
	changed = strcmp(before, after) != 0;
	pfree(before);
	pfree(after);
	return changed;
}
