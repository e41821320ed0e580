/*-------------------------------------------------------------------------
 *
 * opensearch.c
 *	  The OpenSearch sink: _bulk over keep-alive connections, index and alias
 *	  management.
 *
 * Bulk requests are started on the process's one curl multi handle and
 * complete while the worker waits on its latch and the sockets together.
 * A finished request is classified here (transport failure, refused
 * credentials (401/403: retried like a 5xx, never a document's failure),
 * 429/5xx, 413, or an answer read item by item by bulkparse.c); what to do
 * about it is the engine's business.  An answer saying the credentials
 * expired is sent once more at once when the credential files, read
 * again, changed.  Index management runs synchronously: it only
 * happens when an index is created, swapped or dropped.  Physical indexes
 * carry a _meta.flusso marker; an index of the same name without it was
 * not made by flusso and is never touched: every destructive call (a drop,
 * moving the alias) checks the marker of what it would change first.
 * Index names are checked against a strict pattern when they are defined
 * (parse.c), and every name is percent-encoded into the path anyway.
 *
 * The same sink serves OpenSearch and Elasticsearch (their _bulk, alias
 * and index APIs are alike).  Before anything is sent, the engine must
 * not be one flusso refuses (search.c knows which engine answers): a
 * refused bulk request comes back as a whole failure, retried with
 * backoff and never confirmed; index management returns the refusal as
 * its error.  A new index's body is put in the engine's dialect
 * (engines.c) just before it is created.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/json.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "sink/donequeue.h"
#include "sink/search.h"
#include "sink/sink.h"

#define BULK_PATH "/_bulk?filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason"

static DoneQueue done = DONE_QUEUE_INIT(done);
static int	sent = 0;

static char *
answer_problem(FlussoHttpRequest *http, const char *what)
{
	return psprintf("%s: %s", what, flusso_http_describe_failure(http));
}


/* Why nothing may be sent to the engine now (a copy), or NULL. */
static char *
refused(void)
{
	const char *why = flusso_search_engine_checked();

	return why ? pstrdup(why) : NULL;
}

/* GET path; the decoded JSON object, or NULL with *status set. */
static json_object *
get_json(const char *path, long *status, char **error)
{
	FlussoHttpRequest *http = flusso_search_request("GET", path, NULL, NULL);
	json_object *obj = NULL;

	*status = http->result == CURLE_OK ? http->status : 0;
	if (http->result != CURLE_OK)
		*error = answer_problem(http, "OpenSearch is unreachable");
	else if (http->status == 200 && http->response)
		obj = json_tokener_parse(http->response);
	flusso_http_free(http);
	return obj;
}

/* Does the mapping answer for physical carry _meta.flusso.index = name? */
static bool
made_by_flusso(json_object *mapping, const char *physical, const char *index_name)
{
	json_object *ix,
			   *mappings,
			   *meta,
			   *marker,
			   *name;

	return json_object_object_get_ex(mapping, physical, &ix) &&
		json_object_object_get_ex(ix, "mappings", &mappings) &&
		json_object_object_get_ex(mappings, "_meta", &meta) &&
		json_object_object_get_ex(meta, "flusso", &marker) &&
		json_object_object_get_ex(marker, "index", &name) &&
		strcmp(json_object_get_string(name), index_name) == 0;
}

/* Is the answer OpenSearch's "no such index" (and not a passing failure)? */
static bool
index_not_found(FlussoHttpRequest *http)
{
	return http->result == CURLE_OK && http->status == 404 && http->response &&
		strstr(http->response, "index_not_found_exception") != NULL;
}

/* Did flusso make physical for index_name?  NULL if so, else why not (or why it cannot tell). */
static char *
check_ours(const char *physical, const char *index_name)
{
	FlussoHttpRequest *http = flusso_search_request("GET", psprintf("/%s/_mapping", flusso_search_path_segment(physical)), NULL, NULL);
	json_object *mapping = NULL;
	char	   *problem = NULL;

	if (http->result == CURLE_OK && http->status == 200 && http->response)
		mapping = json_tokener_parse(http->response);
	if (mapping && made_by_flusso(mapping, physical, index_name))
		problem = NULL;
	else if (index_not_found(http))
		problem = NULL;			/* gone already */
	else if (http->result != CURLE_OK || http->status != 200)
		problem = answer_problem(http, psprintf("could not check that OpenSearch's \"%s\" is flusso's", physical));
	else
		problem = psprintf("OpenSearch's \"%s\" was not created by flusso for index \"%s\"; it is left alone",
						   physical, index_name);
	json_object_put(mapping);
	flusso_http_free(http);
	return problem;
}

/*
 * The alias name must not be a concrete index, and an alias of that name
 * must point only at indexes flusso made for it.
 */
static char *
check_alias_name(const char *alias, bool *permanent)
{
	long		status;
	char	   *error = NULL;
	json_object *obj = get_json(psprintf("/_alias/%s", flusso_search_path_segment(alias)), &status, &error);
	char	   *problem = error;

	if (obj && status == 200)
	{
		json_object_object_foreach(obj, index, val)
		{
			(void) val;
			if (problem == NULL && strcmp(index, alias) != 0 && (problem = check_ours(index, alias)) != NULL)
			{
				*permanent = true;
				problem = psprintf("OpenSearch already has an alias \"%s\" on index \"%s\", which flusso did not create; flusso needs that name for the alias of its index and leaves it alone",
								   alias, index);
			}
		}
	}
	json_object_put(obj);
	if (problem)
		return problem;
	obj = get_json(psprintf("/%s/_alias", flusso_search_path_segment(alias)), &status, &error);
	if (obj && json_object_object_get_ex(obj, alias, NULL))
	{
		*permanent = true;
		problem = psprintf("OpenSearch already has an index named \"%s\" that was not created by flusso; flusso needs that name for the alias of its index", alias);
	}
	json_object_put(obj);
	return problem ? problem : error;
}

static char *
opensearch_prepare_index(const char *physical, const char *body, const char *index_name,
						 bool *created, bool *permanent)
{
	char	   *error = NULL;
	FlussoHttpRequest *http;
	json_object *mapping;
	bool		ours;

	*created = false;
	*permanent = false;
	if ((error = refused()) != NULL)
		return error;
	if (flusso_search_engine()->kind == FLUSSO_ENGINE_UNKNOWN)
		return psprintf("could not ask which search engine answers (GET /), so the index is not created yet: %s",
						flusso_search_unknown_reason());
	if ((error = check_alias_name(index_name, permanent)) != NULL)
		return error;
	http = flusso_search_request("GET", psprintf("/%s/_mapping", flusso_search_path_segment(physical)), NULL, NULL);
	if (index_not_found(http))
	{
		char	   *engine_body = flusso_engine_index_body(flusso_search_engine(), body, &error);

		flusso_http_free(http);
		if (engine_body == NULL)
		{
			*permanent = true;
			return psprintf("could not create index \"%s\": %s", physical, error);
		}
		http = flusso_search_request("PUT", psprintf("/%s", flusso_search_path_segment(physical)), "application/json",
									 engine_body);
		if (http->result == CURLE_OK && http->status == 200)
			*created = true;
		else
		{
			error = answer_problem(http, psprintf("could not create OpenSearch index \"%s\"", physical));
			*permanent = http->result == CURLE_OK && http->status == 400 &&
				strstr(http->response ? http->response : "", "resource_already_exists") == NULL;
		}
		flusso_http_free(http);
		return error;
	}
	if (http->result != CURLE_OK || http->status != 200)
	{
		error = answer_problem(http, psprintf("could not read OpenSearch index \"%s\"", physical));
		flusso_http_free(http);
		return error;
	}
	mapping = json_tokener_parse(http->response ? http->response : "");
	ours = mapping && made_by_flusso(mapping, physical, index_name);
	json_object_put(mapping);
	flusso_http_free(http);
	if (!ours)
	{
		*permanent = true;
		return psprintf("OpenSearch already has an index named \"%s\" that was not created by flusso; it is left alone", physical);
	}
	return NULL;
}

static char *
opensearch_point_alias(const char *alias, const char *physical)
{
	long		status;
	char	   *error = NULL;
	json_object *current = get_json(psprintf("/_alias/%s", flusso_search_path_segment(alias)), &status, &error);
	StringInfoData actions;
	FlussoHttpRequest *http;

	if (error == NULL)
		error = refused();
	if (error)
		return error;
	/* never move an alias off an index flusso did not make for it */
	if (current && status == 200)
	{
		json_object_object_foreach(current, holder, v)
		{
			(void) v;
			if (error == NULL && strcmp(holder, physical) != 0)
				error = check_ours(holder, alias);
		}
	}
	if (error)
	{
		json_object_put(current);
		return psprintf("the alias \"%s\" is not moved: %s", alias, error);
	}
	/* searches through the alias must find every document at once */
	http = flusso_search_request("POST", psprintf("/%s/_refresh", flusso_search_path_segment(physical)), NULL, NULL);
	if (http->result != CURLE_OK || http->status != 200)
		error = answer_problem(http, psprintf("could not refresh \"%s\" before pointing the alias at it", physical));
	flusso_http_free(http);
	if (error)
	{
		json_object_put(current);
		return error;
	}
	initStringInfo(&actions);
	appendStringInfoString(&actions, "{\"actions\":[");
	if (current && status == 200)
	{
		json_object_object_foreach(current, index, val)
		{
			(void) val;
			if (strcmp(index, physical) != 0)
				appendStringInfo(&actions, "{\"remove\":{\"index\":%s,\"alias\":%s}},",
								 flusso_json_quote(index), flusso_json_quote(alias));
		}
	}
	json_object_put(current);
	appendStringInfo(&actions, "{\"add\":{\"index\":%s,\"alias\":%s,\"is_write_index\":true}}]}",
					 flusso_json_quote(physical), flusso_json_quote(alias));
	http = flusso_search_request("POST", "/_aliases", "application/json", actions.data);
	if (http->result != CURLE_OK || http->status != 200)
		error = answer_problem(http, psprintf("could not point alias \"%s\" at \"%s\"", alias, physical));
	flusso_http_free(http);
	return error;
}

static char *
opensearch_drop_index(const char *physical, const char *index_name)
{
	FlussoHttpRequest *http;
	char	   *error = refused();

	if (error == NULL)
		error = check_ours(physical, index_name);
	if (error)
		return error;
	http = flusso_search_request("DELETE", psprintf("/%s?expand_wildcards=none", flusso_search_path_segment(physical)), NULL, NULL);

	if (http->result != CURLE_OK || (http->status != 200 && http->status != 404))
		error = answer_problem(http, psprintf("could not drop OpenSearch index \"%s\"", physical));
	flusso_http_free(http);
	return error;
}

/* The database an index's _meta.flusso names, or NULL. */
static const char *
marker_database(json_object *mapping, const char *physical)
{
	json_object *ix,
			   *mappings,
			   *meta,
			   *marker,
			   *db;

	if (json_object_object_get_ex(mapping, physical, &ix) &&
		json_object_object_get_ex(ix, "mappings", &mappings) &&
		json_object_object_get_ex(mappings, "_meta", &meta) &&
		json_object_object_get_ex(meta, "flusso", &marker) &&
		json_object_object_get_ex(marker, "database", &db))
		return json_object_get_string(db);
	return NULL;
}

/*
 * Generations an earlier index of the same name left (a drop without
 * drop_remote, DROP EXTENSION, a restored database): once a new first
 * generation is live they are replaced, so they go.  Only indexes whose
 * marker names this index and this database (or no database) are touched;
 * best effort, said in the log.
 */
static void
opensearch_drop_leftovers(const char *index_name, const char *database, const char *keep)
{
	long		status;
	char	   *error = refused();
	json_object *all = error ? NULL :
		get_json(psprintf("/%s_*/_mapping", flusso_search_path_segment(index_name)), &status, &error);

	if (all == NULL || status != 200)
	{
		json_object_put(all);
		return;
	}
	{
		json_object_object_foreach(all, physical, val)
		{
			const char *db;
			char	   *problem;

			(void) val;
			if (strcmp(physical, keep) == 0 || !made_by_flusso(all, physical, index_name))
				continue;
			db = marker_database(all, physical);
			if (db != NULL && database != NULL && strcmp(db, database) != 0)
				continue;
			problem = opensearch_drop_index(physical, index_name);
			if (problem)
				ereport(LOG, (errmsg("flusso index \"%s\": a leftover \"%s\" is not dropped: %s",
									 index_name, physical, problem)));
			else
				ereport(LOG, (errmsg("flusso index \"%s\": dropped \"%s\", left by an earlier index of that name",
									 index_name, physical)));
		}
	}
	json_object_put(all);
}

static char *
opensearch_refresh(const char *alias)
{
	FlussoHttpRequest *http;
	char	   *error = refused();

	if (error)
		return error;
	http = flusso_search_request("POST", psprintf("/%s/_refresh", flusso_search_path_segment(alias)), NULL, NULL);
	if (http->result != CURLE_OK || http->status != 200)
		error = answer_problem(http, psprintf("could not refresh \"%s\"", alias));
	flusso_http_free(http);
	return error;
}

/*
 * An engine flusso refuses gets no documents: the request is done at once,
 * as a whole failure the engine retries with backoff.
 */
static bool
refuse_bulk(BulkRequest *req)
{
	const char *why = flusso_search_engine_checked();

	if (why == NULL)
		return false;
	req->whole_retry = true;
	req->failure = MemoryContextStrdup(req->cxt, why);
	req->elapsed_ms = 0;
	req->done = true;
	done_queue_push(&done, &req->done_node);
	return true;
}

static void
start_bulk(BulkRequest *req)
{
	req->done = false;
	req->whole_retry = false;
	req->too_large = false;
	if (req->failure)
		pfree(req->failure);	/* the last attempt's, in req->cxt */
	req->failure = NULL;
	if (refuse_bulk(req))
		return;
	req->http = flusso_search_start("POST", BULK_PATH, "application/x-ndjson",
									req->body.data, req->body.len);
	req->http->user = req;
	req->sent_at = GetCurrentTimestamp();
	sent++;
}

static void
opensearch_send(BulkRequest *req)
{
	req->renewed = false;
	start_bulk(req);
}

/* Fill req's outcome from its finished HTTP request. */
static void
classify(BulkRequest *req)
{
	FlussoHttpRequest *http = req->http;
	MemoryContext old = MemoryContextSwitchTo(req->cxt);
	char	   *problem = NULL;

	req->elapsed_ms = http->elapsed_ms;
	if (flusso_search_transport_failed(http))
	{
		flusso_search_node_failed(http->node);
		req->whole_retry = true;
		req->failure = answer_problem(http, "bulk request failed");
	}
	else if (http->status == 413)
		req->too_large = true;
	else if (http->status == 429 || http->status >= 500)
	{
		req->whole_retry = true;
		req->failure = answer_problem(http, "OpenSearch refused the bulk request");
	}
	else if (http->status == 401 || http->status == 403)
	{
		/* the credentials, not the documents: nothing goes to a failure policy */
		req->whole_retry = true;
		req->failure = answer_problem(http, "the search engine refused the credentials of the bulk request");
	}
	else if (http->status != 200)
	{
		int			i;

		req->failure = answer_problem(http, "OpenSearch rejected the bulk request");
		for (i = 0; i < req->nitems; i++)
		{
			req->items[i].outcome = BULK_ITEM_REJECTED;
			req->items[i].status = (int) http->status;
			req->items[i].error = req->failure;
		}
	}
	else if (http->response_truncated ||
			 !flusso_bulk_parse(http->response, http->response_len, req->items,
								req->nitems, &problem))
	{
		req->whole_retry = true;
		req->failure = psprintf("unreadable bulk answer: %s",
								problem ? problem : "it was cut short");
	}
	MemoryContextSwitchTo(old);
}

static void
collect(void)
{
	FlussoHttpRequest *http;

	while ((http = flusso_http_next_done()) != NULL)
	{
		BulkRequest *req = (BulkRequest *) http->user;

		if (!req->renewed && flusso_search_renew_credentials(http))
		{
			flusso_http_free(http);
			req->http = NULL;
			sent--;
			req->renewed = true;
			start_bulk(req);
			continue;
		}
		classify(req);
		flusso_http_free(http);
		req->http = NULL;
		req->done = true;
		sent--;
		done_queue_push(&done, &req->done_node);
	}
}

static BulkRequest *
opensearch_next_done(void)
{
	dlist_node *node;

	collect();
	node = done_queue_pop(&done);
	return node ? dlist_container(BulkRequest, done_node, node) : NULL;
}

static int
opensearch_in_flight(void)
{
	return sent;
}

static int
opensearch_wait(long timeout_ms)
{
	if (sent == 0)
		return WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms, PG_WAIT_EXTENSION);
	return flusso_http_wait(timeout_ms, PG_WAIT_EXTENSION);
}

static void
opensearch_abort_all(void)
{
	flusso_http_abort_all();
	done_queue_clear(&done);
	sent = 0;
}

const FlussoSink flusso_opensearch_sink = {
	.name = "opensearch",
	.prepare_index = opensearch_prepare_index,
	.point_alias = opensearch_point_alias,
	.drop_index = opensearch_drop_index,
	.drop_leftovers = opensearch_drop_leftovers,
	.refresh = opensearch_refresh,
	.send = opensearch_send,
	.next_done = opensearch_next_done,
	.in_flight = opensearch_in_flight,
	.wait = opensearch_wait,
	.abort_all = opensearch_abort_all,
};
