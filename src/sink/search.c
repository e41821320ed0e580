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

#include "base/settings.h"
#include "sink/search.h"

static List *nodes = NIL;		/* base URLs without a trailing slash */
static int	current_node = 0;
static FlussoHttpOptions options;

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

/* Pull version.number out of the answer to GET /. */
static char *
parse_version(const char *body)
{
	json_object *root = json_tokener_parse(body);
	json_object *version;
	json_object *number;
	char	   *result = NULL;

	if (root && json_object_object_get_ex(root, "version", &version) &&
		json_object_object_get_ex(version, "number", &number) &&
		json_object_is_type(number, json_type_string))
		result = pstrdup(json_object_get_string(number));
	json_object_put(root);
	return result;
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
	FlussoReachability state;
	char	   *version = NULL;
	char	   *error = NULL;

	if (!flusso_search_configured())
	{
		flusso_observer->on_reachability(FLUSSO_SEARCH_DRY_RUN, NULL, NULL);
		return FLUSSO_SEARCH_DRY_RUN;
	}
	req = flusso_search_request("GET", "/", NULL, NULL);
	if (req->result == CURLE_OK && req->status == 200)
		version = parse_version(req->response ? req->response : "");
	if (version)
		state = FLUSSO_SEARCH_REACHABLE;
	else
	{
		state = FLUSSO_SEARCH_UNREACHABLE;
		error = req->result == CURLE_OK && req->status == 200 ?
			pstrdup("the answer to GET / carries no version.number") :
			flusso_http_describe_failure(req);
	}
	flusso_http_free(req);
	flusso_observer->on_reachability(state, version, error);
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
