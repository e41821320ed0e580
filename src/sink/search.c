/*-------------------------------------------------------------------------
 *
 * search.c
 *	  The search engine's client: which node to talk to, with which
 *	  credentials, and whether it answers.
 *
 * This file owns the node list parsed from flusso.opensearch_url, the
 * request options (basic auth, TLS, timeout) and failover: a request goes
 * to the current node, and a transport failure moves the current node to
 * the next URL in the list.  Its names (flusso_search_*) say "search
 * engine", not OpenSearch: the same client is to serve Elasticsearch.
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

#include "base/settings.h"
#include "sink/search.h"

static void forget_engine(void);

static List *nodes = NIL;		/* base URLs without a trailing slash */
static int	current_node = 0;
static FlussoHttpOptions options;

/* the engine that answered the last GET /; FLUSSO_ENGINE_UNKNOWN until one did */
static FlussoEngineInfo engine;
static char *refusal = NULL;	/* in TopMemoryContext; NULL: supported or unknown */
static char unknown_reason[256];	/* why the last GET / told nothing */

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
	List	   *urls = flusso_split_list(flusso_opensearch_url_full);
	ListCell   *lc;
	char	   *now;
	bool		changed;

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
	options.user = flusso_opensearch_user;
	if (options.password)
		pfree((char *) options.password);
	options.password = flusso_opensearch_secret();
	options.ca_file = flusso_opensearch_ca_file;
	options.client_cert = flusso_opensearch_client_cert;
	options.client_key = flusso_opensearch_client_key;
	options.tls_verify = flusso_opensearch_tls_verify;
	options.timeout_ms = flusso_request_timeout;
	now = psprintf("%s|%s|%s|%s|%s|%s|%d", flusso_opensearch_url_full,
				   options.user ? options.user : "", options.password,
				   options.ca_file ? options.ca_file : "",
				   options.client_cert ? options.client_cert : "",
				   options.client_key ? options.client_key : "", (int) options.tls_verify);
	changed = signature != NULL && strcmp(signature, now) != 0;
	if (signature)
		pfree(signature);
	signature = now;
	MemoryContextSwitchTo(old);
	return changed;
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
	FlussoHttpRequest *req;
	char	   *url;

	Assert(nodes != NIL);
	url = psprintf("%s%s", (char *) list_nth(nodes, current_node), path);
	req = flusso_http_start(method, url, content_type, body, body_len, &options);
	req->node = current_node;
	pfree(url);
	return req;
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
	int			attempt;

	for (attempt = 0; attempt < list_length(nodes); attempt++)
	{
		if (req)
			flusso_http_free(req);
		req = flusso_search_start(method, path, content_type, body, body ? strlen(body) : 0);
		flusso_http_run(req);
		if (!flusso_search_transport_failed(req))
			break;
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
