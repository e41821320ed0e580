/*-------------------------------------------------------------------------
 *
 * search.c
 *	  The search engine's client: which node to talk to, with which
 *	  credentials, and whether it answers.
 *
 * This file owns the node list parsed from flusso.search_url, the
 * request options (TLS, timeout, and the credentials credentials.c reads)
 * and failover: a request goes to the current node, and a transport
 * failure moves the current node to the next URL in the list.  Its names
 * (flusso_search_*) say "search engine", not OpenSearch: the same client
 * is to serve Elasticsearch.
 *
 * Authentication: when the settings allow no request (two methods set, a
 * credentials file that cannot be read), a request is refused here, done
 * at once with that reason as its transport error, so nothing is sent and
 * nothing confirmed.  When the engine answers 401 or 403 saying the token
 * expired, the credential files are read again and, if they changed, the
 * request is sent once more (flusso_search_request(), and the bulk sink
 * through flusso_search_auth_expired()).  Under SigV4 the query string is
 * written in AWS's canonical form (sorted, every reserved character
 * percent-encoded), which libcurl before 8.3 signs as it is, and a path
 * libcurl before 8.14 would sign wrongly (anything but [A-Za-z0-9-_.~/])
 * is refused with the reason.
 *
 * It also owns what the engine is: the worker reads GET / when it first
 * needs the engine, at every ping, and again after a node failed or the
 * settings changed (engines.c says what the answer means).  While the
 * engine is one flusso does not support, flusso_search_refusal() says so
 * and the sink sends nothing (opensearch.c).
 *
 * It builds on http.c and must know nothing about documents: the bulk
 * protocol lives in opensearch.c, and the SQL functions that ask the
 * search engine themselves (verify.c) build their own requests.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "base/connection.h"
#include "base/settings.h"
#include "base/settingutil.h"
#include "sink/credentials.h"
#include "sink/search.h"

static void forget_engine(void);

static List *nodes = NIL;		/* base URLs without a trailing slash */
static int	current_node = 0;
static FlussoHttpOptions options;

/* the engine that answered the last GET /; FLUSSO_ENGINE_UNKNOWN until one did */
static FlussoEngineInfo engine;
static char *refusal = NULL;	/* in TopMemoryContext; NULL: supported or unknown */
static char unknown_reason[256];	/* why the last GET / told nothing */

/* Log once that a setting is set under both names, and which one is used. */
static void
warn_alias_conflicts(void)
{
	static char *said = NULL;
	char	   *both = flusso_connection_alias_conflicts();

	if (both && (said == NULL || strcmp(said, both) != 0))
		ereport(WARNING,
				(errmsg("flusso: %s are set to different values; the engine-neutral name is used", both),
				 errhint("Remove the old flusso.opensearch_* name from the configuration.")));
	if (said)
		pfree(said);
	said = both ? MemoryContextStrdup(TopMemoryContext, both) : NULL;
}

/*
 * Read the connection settings.  Returns true when they differ from the
 * ones in use (URL, credentials, TLS files or verification): connections
 * opened under the old ones must not be reused.
 */
bool
flusso_search_configure(void)
{
	static char *signature = NULL;
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	FlussoConnection conn;
	List	   *urls;
	ListCell   *lc;
	char	   *now;
	char	   *credentials;
	bool		changed;

	flusso_connection_get(&conn);
	warn_alias_conflicts();
	urls = flusso_split_list(conn.url);
	list_free_deep(nodes);
	nodes = NIL;
	foreach(lc, urls)
	{
		char	   *url = lfirst(lc);
		size_t		len = strlen(url);

		while (len > 0 && url[len - 1] == '/')
			url[--len] = '\0';
		nodes = lappend(nodes, url);
	}
	list_free(urls);			/* its strings are the nodes' */
	current_node = 0;
	forget_engine();
	flusso_credentials_load(&conn);
	options.ca_file = conn.ca_file;
	options.client_cert = conn.client_cert;
	options.client_key = conn.client_key;
	options.tls_verify = conn.tls_verify;
	options.timeout_ms = flusso_request_timeout;
	credentials = flusso_credentials_fingerprint();
	now = psprintf("%s|%s|%s|%s|%s|%d", conn.url, credentials,
				   options.ca_file, options.client_cert, options.client_key,
				   (int) options.tls_verify);
	pfree(credentials);
	changed = signature != NULL && strcmp(signature, now) != 0;
	if (signature)
		pfree(signature);
	signature = now;
	MemoryContextSwitchTo(old);
	return changed;
}

/* The credentials in force into the options of the next request. */
static const FlussoCredentials *
take_credentials(void)
{
	const FlussoCredentials *creds = flusso_credentials_current();

	options.user = creds->user;
	options.password = creds->password;
	options.authorization = creds->authorization;
	options.aws_sigv4 = creds->aws_sigv4;
	options.aws_session_token = creds->aws_session_token;
	options.aws_content_sha256 = creds->aws_content_sha256;
	return creds;
}

/* ---- SigV4: what libcurl signs as it is ---- */

static bool
is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '-' || c == '.' || c == '_' || c == '~';
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* s[0..len) percent-decoded, then percent-encoded as AWS's canonical form wants. */
static void
append_canonical(StringInfo out, const char *s, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '%' && i + 2 < len && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0)
		{
			c = (unsigned char) (hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
			i += 2;
		}
		if (is_unreserved(c))
			appendStringInfoChar(out, (char) c);
		else
			appendStringInfo(out, "%%%02X", c);
	}
}

/* "name=value" pairs by name, then by value (a name that is a prefix of another sorts first). */
static int
compare_pairs(const ListCell *a, const ListCell *b)
{
	const char *x = lfirst(a);
	const char *y = lfirst(b);
	size_t		xn = strcspn(x, "=");
	size_t		yn = strcspn(y, "=");
	int			c = strncmp(x, y, Min(xn, yn));

	if (c != 0 || xn != yn)
		return c != 0 ? c : (xn < yn ? -1 : 1);
	return strcmp(x + xn, y + yn);
}

/* path with its query string in AWS's canonical form: name=value pairs encoded and sorted. */
static char *
canonical_query(const char *path)
{
	const char *query = strchr(path, '?');
	List	   *pairs = NIL;
	StringInfoData out;
	const char *p;
	ListCell   *lc;

	if (query == NULL)
		return pstrdup(path);
	for (p = query + 1; *p;)
	{
		const char *end = strchr(p, '&');
		const char *eq;
		StringInfoData pair;

		end = end ? end : p + strlen(p);
		eq = memchr(p, '=', end - p);
		initStringInfo(&pair);
		append_canonical(&pair, p, (eq ? eq : end) - p);
		appendStringInfoChar(&pair, '=');
		if (eq)
			append_canonical(&pair, eq + 1, end - eq - 1);
		if (end > p)
			pairs = lappend(pairs, pair.data);
		p = *end ? end + 1 : end;
	}
	list_sort(pairs, compare_pairs);
	initStringInfo(&out);
	appendBinaryStringInfo(&out, path, query - path);
	foreach(lc, pairs)
		appendStringInfo(&out, "%c%s", lc == list_head(pairs) ? '?' : '&', (char *) lfirst(lc));
	return out.data;
}

/* Would this libcurl sign path (before any '?') the way AWS does?  Before 8.14 only plain characters are safe. */
static bool
path_signable(const char *path)
{
	const char *p;

	if (curl_version_info(CURLVERSION_NOW)->version_num >= 0x080e00)
		return true;
	for (p = path; *p && *p != '?'; p++)
		if (!is_unreserved((unsigned char) *p) && *p != '/')
			return false;
	return true;
}

bool
flusso_search_configured(void)
{
	return nodes != NIL;
}

FlussoHttpRequest *
flusso_search_start(const char *method, const char *path, const char *content_type,
					const char *body, size_t body_len)
{
	const FlussoCredentials *creds = take_credentials();
	FlussoHttpRequest *req;
	char	   *url;

	Assert(nodes != NIL);
	if (creds->problem)
		return flusso_http_refuse(creds->problem);
	if (creds->aws_sigv4 && !path_signable(path))
		return flusso_http_refuse(psprintf("libcurl %s cannot sign the path of %s %.100s for SigV4 (libcurl 8.14 or later can)",
										   curl_version_info(CURLVERSION_NOW)->version, method, path));
	if (creds->aws_sigv4)
		path = canonical_query(path);
	url = psprintf("%s%s", (char *) list_nth(nodes, current_node), path);
	req = flusso_http_start(method, url, content_type, body, body_len, &options);
	req->node = current_node;
	pfree(url);
	return req;
}

bool
flusso_search_auth_expired(const FlussoHttpRequest *req)
{
	return req->result == CURLE_OK && (req->status == 401 || req->status == 403) &&
		req->response != NULL && strstr(req->response, "expired") != NULL;
}

bool
flusso_search_renew_credentials(const FlussoHttpRequest *req)
{
	return flusso_search_auth_expired(req) && flusso_credentials_reread();
}

bool
flusso_search_transport_failed(const FlussoHttpRequest *req)
{
	return req->result != CURLE_OK;
}

void
flusso_search_node_failed(int node)
{
	if (nodes != NIL && node == current_node)
		current_node = (current_node + 1) % list_length(nodes);
	forget_engine();			/* the next node may be another engine */
}

FlussoHttpRequest *
flusso_search_request(const char *method, const char *path, const char *content_type,
					  const char *body)
{
	FlussoHttpRequest *req = NULL;
	bool		reread = false;
	int			attempt;

	for (attempt = 0; attempt < list_length(nodes); attempt++)
	{
		if (req)
			flusso_http_free(req);
		req = flusso_search_start(method, path, content_type, body, body ? strlen(body) : 0);
		flusso_http_run(req);
		if (!reread && flusso_search_auth_expired(req))
		{
			reread = true;
			if (!flusso_credentials_reread())
				break;			/* the engine's answer stands */
			attempt--;			/* the same node once more, with the new credentials */
			continue;
		}
		if (!flusso_search_transport_failed(req) || req->easy == NULL)
			break;				/* answered, or refused here: another node would not do */
		flusso_search_node_failed(req->node);
	}
	return req;
}

/* ---- which engine answers ---- */

/* Ask GET / again before the next request that needs the engine. */
static void
forget_engine(void)
{
	engine.kind = FLUSSO_ENGINE_UNKNOWN;
}

/* Take in what GET / said: the engine, and whether it is refused. */
static FlussoReachability
learn_engine(const FlussoEngineInfo *info)
{
	char	   *why = flusso_engine_refusal(info);
	bool		newly_refused = why != NULL &&
		(refusal == NULL || strcmp(refusal, why) != 0);

	engine = *info;
	if (refusal)
		pfree(refusal);
	refusal = why ? MemoryContextStrdup(TopMemoryContext, why) : NULL;
	if (newly_refused)
	{
		ereport(LOG,
				(errmsg("flusso: %s", why),
				 errdetail("Nothing is sent to it and nothing is confirmed until the engine at flusso.opensearch_url is one flusso supports.")));
		flusso_observer->on_error(NULL, why, NULL);
	}
	return why ? FLUSSO_SEARCH_UNSUPPORTED : FLUSSO_SEARCH_REACHABLE;
}

const FlussoEngineInfo *
flusso_search_engine(void)
{
	return &engine;
}

const char *
flusso_search_unknown_reason(void)
{
	return unknown_reason[0] ? unknown_reason : "it was not asked yet";
}

const char *
flusso_search_refusal(void)
{
	return engine.kind == FLUSSO_ENGINE_UNKNOWN ? NULL : refusal;
}

/*
 * Asking is skipped within a second of the last attempt: while the engine
 * is away, every request of a burst would otherwise wait for its own
 * GET / (they fail on their own, as before).
 */
const char *
flusso_search_engine_checked(void)
{
	static TimestampTz last_attempt = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (engine.kind == FLUSSO_ENGINE_UNKNOWN && flusso_search_configured() &&
		TimestampDifferenceExceeds(last_attempt, now, 1000))
	{
		last_attempt = now;
		(void) flusso_search_ping_within(1000);
	}
	return flusso_search_refusal();
}

/* flusso_search_ping() that gives up after timeout_ms: the engine's probe while requests wait. */
FlussoReachability
flusso_search_ping_within(long timeout_ms)
{
	long		saved = options.timeout_ms;
	volatile FlussoReachability state;

	options.timeout_ms = Min(saved, timeout_ms);
	PG_TRY();
	{
		state = flusso_search_ping();
	}
	PG_FINALLY();
	{
		options.timeout_ms = saved;
	}
	PG_END_TRY();
	return state;
}

FlussoReachability
flusso_search_ping(void)
{
	FlussoHttpRequest *req;
	FlussoReachability state = FLUSSO_SEARCH_UNREACHABLE;
	FlussoEngineInfo info;
	char	   *error = NULL;

	if (!flusso_search_configured())
	{
		flusso_observer->on_reachability(FLUSSO_SEARCH_DRY_RUN, NULL, NULL, NULL);
		return FLUSSO_SEARCH_DRY_RUN;
	}
	req = flusso_search_request("GET", "/", NULL, NULL);
	forget_engine();
	if (req->result != CURLE_OK || req->status != 200)
		error = flusso_http_describe_failure(req);
	else if (flusso_engine_identify(req->response, &info, &error))
	{
		state = learn_engine(&info);
		error = state == FLUSSO_SEARCH_UNSUPPORTED ? refusal : NULL;
	}
	if (state == FLUSSO_SEARCH_UNREACHABLE)
		strlcpy(unknown_reason, error, sizeof(unknown_reason));
	flusso_http_free(req);
	flusso_observer->on_reachability(state, flusso_engine_name(engine.kind),
									 engine.kind != FLUSSO_ENGINE_UNKNOWN ? engine.version : NULL,
									 error);
	return state;
}

/* ---- writing requests ---- */

char *
flusso_search_path_segment(const char *name)
{
	StringInfoData out;
	const unsigned char *p;

	initStringInfo(&out);
	for (p = (const unsigned char *) name; *p; p++)
	{
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			*p == '-' || *p == '.' || *p == '_' || *p == '~')
			appendStringInfoChar(&out, (char) *p);
		else
			appendStringInfo(&out, "%%%02X", *p);
	}
	return out.data;
}

char *
flusso_json_quote(const char *s)
{
	StringInfoData out;

	initStringInfo(&out);
	escape_json(&out, s);
	return out.data;
}
