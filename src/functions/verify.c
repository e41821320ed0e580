/*-------------------------------------------------------------------------
 *
 * verify.c
 *	  Is OpenSearch right?  flusso.verify(), flusso.verify_summary() and
 *	  flusso.explain_document() compare what OpenSearch holds with what
 *	  PostgreSQL would build now.
 *
 * verify() reads the index's documents in key order, a page at a time, with
 * the backfill statements (flusso.batch_size documents a page, at most
 * PAGE_MAX), fetches OpenSearch's copies of each page with one realtime
 * _mget through the alias, and compares them as jsonb (so 10.00 equals 10.0
 * and the order of keys does not matter): a document OpenSearch lacks is
 * missing, one whose _source differs is stale.  A page that cannot be built
 * is read again as keys and built half by half, as the backfill does,
 * down to the documents that fail: those are unbuildable.  Then it scrolls
 * the ids OpenSearch holds (no _source, SCROLL_SIZE a page) and asks which
 * of them have a document, with those ids as keys: the build statement's
 * own keys and root rows (a probe of the root, so nothing is built twice);
 * the others, still found by a realtime _mget, are extra.  Memory is
 * bounded by a page, whatever the size of the index; the result is a
 * tuplestore, which spills to disk.
 *
 * explain_document() answers "why" for one _id: whether the id can be a key,
 * whether the root row exists, whether the root filter keeps it, the
 * document that would be built (or the error, with the path in the
 * definition found by the same probes the worker runs), OpenSearch's copy,
 * the dead letter, the index's state, and a verdict in plain words.
 *
 * Both build documents as the sync worker does, with its TimeZone, DateStyle,
 * IntervalStyle and the other settings that change how values are written
 * (the server's, never what the session set), held in a GUC nest level for
 * the call: otherwise a client's own TimeZone would make every timestamp
 * look stale.
 *
 * Rights (rights.c): the caller must be able to manage the index; what the
 * definition makes run (the backfill, build and probe statements, and the
 * key types' input functions, which may be domains with checks) runs with
 * the owner's rights; flusso's own tables are read as the extension's
 * owner (the server's settings too: pg_file_settings, pg_db_role_setting).
 *
 * This file must not write anything: no table, and nothing in OpenSearch,
 * to which it sends only _mget, a scrolled _search and the scroll's
 * deletion.  It runs synchronously in the caller's backend, through the
 * process-local client of search.c and http.c; after an error every
 * request of this backend still in flight is abandoned.  It never touches
 * the sync worker's state, and reads the status views only through SQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "base/connection.h"
#include "base/guard.h"
#include "base/redact.h"
#include "base/rights.h"
#include "base/settings.h"
#include "base/settingutil.h"
#include "definition/definition.h"
#include "definition/parse.h"
#include "definition/sqlgen.h"
#include "definition/stored.h"
#include "pipeline/resolve.h"
#include "sink/search.h"
#include "status/status.h"

#define PAGE_MAX		5000	/* documents built and compared at once */
#define MGET_MAX		1000	/* ids in one _mget */
#define MGET_BYTES		(32 * 1024 * 1024)	/* documents asked for in one _mget */
#define SCROLL_SIZE		5000	/* ids of one scroll page */
#define SCROLL_KEEP		"2m"

/* ---- errors caught in a subtransaction (flusso_guard_keeping) ---- */

/*
 * Is the error about the rows being built (a value an expression cannot
 * handle, a raise in a user function), so that building fewer documents
 * at once finds the ones at fault?  Anything else (no privilege, a lock,
 * a cancel, a dropped column) is about the whole and is raised again.
 */
static bool
error_is_about_rows(ErrorData *e)
{
	int			category = ERRCODE_TO_CATEGORY(e->sqlerrcode);

	return category == ERRCODE_DATA_EXCEPTION ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_RAISE_EXCEPTION) ||
		category == ERRCODE_EXTERNAL_ROUTINE_EXCEPTION ||
		category == ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION ||
		category == ERRCODE_SQL_ROUTINE_EXCEPTION ||
		category == ERRCODE_PROGRAM_LIMIT_EXCEEDED ||
		category == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION;
}

static char *
arg_text(FunctionCallInfo fcinfo, int i)
{
	return text_to_cstring(PG_GETARG_TEXT_PP(i));
}

/* ---- OpenSearch ---- */

/* One answer from OpenSearch, copied into palloc'd memory. */
typedef struct SearchAnswer
{
	bool		reached;		/* an HTTP answer came back */
	long		status;
	char	   *body;			/* NULL when none */
	char	   *failure;		/* why it failed (redacted), when it did */
	char	   *node;			/* scheme://host:port asked last (redacted) */
	bool		no_index;		/* OpenSearch has no such index (or alias) */
} SearchAnswer;

/* A document as OpenSearch has it. */
typedef struct SearchDoc
{
	bool		found;
	JsonbContainer *source;		/* its _source, when found */
	char	   *version;
	char	   *physical;		/* the physical index behind the alias */
} SearchDoc;

/* Read the connection settings as the worker does; NULL, or why there is nothing to ask. */
static const char *
search_setup(void)
{
	if (flusso_search_configure())
		flusso_http_reset();	/* no connection opened under other settings is reused */
	if (!flusso_search_configured())
		return "flusso.opensearch_url is not set (the sync worker writes documents to the server log)";
	return NULL;
}

/* "scheme://host:port" of a URL, without credentials. */
static char *
node_of(const char *url)
{
	const char *host;
	const char *path;

	if (url == NULL)
		return pstrdup("(unknown)");
	host = strstr(url, "://");
	path = host ? strchr(host + 3, '/') : NULL;
	return flusso_redact(path ? pnstrdup(url, path - url) : url);
}

/* Run one request to completion (with the client's failover); never raises for its outcome. */
static SearchAnswer
search_call(const char *method, const char *path, const char *body)
{
	SearchAnswer a = {0};

	PG_TRY();
	{
		FlussoHttpRequest *req = flusso_search_request(method, path, body ? "application/json" : NULL, body);
		char	   *url = NULL;

		a.reached = !flusso_search_transport_failed(req);
		a.status = a.reached ? req->status : 0;
		if (req->response)
			a.body = pnstrdup(req->response, req->response_len);
		if (!a.reached || a.status >= 300)
			a.failure = flusso_redact(flusso_http_describe_failure(req));
		else if (req->response_truncated)
			a.failure = pstrdup("the answer was too large and was cut");
		curl_easy_getinfo(req->easy, CURLINFO_EFFECTIVE_URL, &url);
		a.node = node_of(url);
		a.no_index = a.reached && a.status == 404 && a.body &&
			strstr(a.body, "index_not_found_exception") != NULL;
		flusso_http_free(req);
	}
	PG_CATCH();
	{
		flusso_http_abort_all();	/* nothing of this backend stays in flight */
		PG_RE_THROW();
	}
	PG_END_TRY();
	return a;
}

static bool
answer_ok(const SearchAnswer *a)
{
	return a->reached && a->status >= 200 && a->status < 300 && a->failure == NULL && a->body &&
		!a->no_index;
}

/* What went wrong with a request, in one sentence, for a verdict or a detail. */
static char *
answer_problem(const SearchAnswer *a, const char *index)
{
	if (!a->reached)
		return psprintf("could not reach OpenSearch at \"%s\": %s", a->node, a->failure);
	if (a->no_index)
		return psprintf("OpenSearch at \"%s\" has no index \"%s\"", a->node, index);
	return psprintf("OpenSearch at \"%s\" answered: %s", a->node,
					a->failure ? a->failure : "an empty answer");
}

/* Raise the error of a failed request; what is "_mget", "a scroll"... */
static void
answer_raise(const SearchAnswer *a, const char *index, const char *what)
{
	if (!a->reached)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not reach OpenSearch at \"%s\"", a->node),
				 errdetail("%s for index \"%s\" failed: %s%s.", what, index, a->failure,
						   list_length(flusso_split_list(GetConfigOption(flusso_connection_url_setting(), false, false))) > 1 ?
						   psprintf(" (every URL in %s was tried)", flusso_connection_url_setting()) : ""),
				 errhint("Check that OpenSearch runs and that %s names it; flusso.status shows what the sync worker sees.",
						 flusso_connection_url_setting())));
	if (a->no_index)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("OpenSearch at \"%s\" has no index \"%s\"", a->node, index),
				 errdetail("The alias \"%s\" does not exist: the index was never built there, or was removed.", index),
				 errhint("flusso.index_status shows the index's state; flusso.reindex('%s') builds it again.", index)));
	ereport(ERROR,
			(errcode(ERRCODE_SYSTEM_ERROR),
			 errmsg("OpenSearch at \"%s\" did not answer %s for index \"%s\"", a->node, what, index),
			 errdetail("%s", a->failure ? a->failure : "The answer was empty."),
			 errhint("The OpenSearch log says more; flusso.status shows what the sync worker sees.")));
}

typedef struct ParseArgs
{
	const char *text;
	Jsonb	   *result;
} ParseArgs;

static void
parse_json(void *arg)
{
	ParseArgs  *p = arg;

	p->result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(p->text)));
}

/* The answer's body as jsonb; raises when it is not a JSON object. */
static JsonbContainer *
answer_json(const SearchAnswer *a, const char *index, const char *what)
{
	ParseArgs	p = {a->body, NULL};
	ErrorData  *error;
	bool		parsed = flusso_guard_keeping(parse_json, &p, &error);

	if (!parsed && !error_is_about_rows(error))
		ReThrowError(error);	/* a cancel, out of memory: not about the answer */
	if (!parsed || !JB_ROOT_IS_OBJECT(p.result))
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("OpenSearch at \"%s\" answered %s for index \"%s\" with something other than a JSON object",
						a->node, what, index),
				 errdetail("The answer begins with: %.200s", flusso_redact(a->body)),
				 errhint("Check that flusso.opensearch_url names OpenSearch itself, not a proxy's page.")));
	return &p.result->root;
}

/* The value of key in an object container, or NULL. */
static JsonbValue *
json_get(JsonbContainer *c, const char *key)
{
	if (c == NULL || !JsonContainerIsObject(c))
		return NULL;
	return getKeyJsonValueFromContainer(c, key, strlen(key), NULL);
}

static JsonbContainer *
json_get_container(JsonbContainer *c, const char *key)
{
	JsonbValue *v = json_get(c, key);

	return v && v->type == jbvBinary ? v->val.binary.data : NULL;
}

static char *
json_get_text(JsonbContainer *c, const char *key)
{
	JsonbValue *v = json_get(c, key);

	if (v == NULL)
		return NULL;
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	if (v->type == jbvBinary)
		return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
	return NULL;
}

/* {"ids": [...]} */
static char *
ids_body(char **ids, int n)
{
	StringInfoData body;
	int			i;

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"ids\":[");
	for (i = 0; i < n; i++)
	{
		if (i)
			appendStringInfoChar(&body, ',');
		escape_json(&body, ids[i]);
	}
	appendStringInfoString(&body, "]}");
	return body.data;
}

/*
 * One entry of an _mget answer into doc; raises on a per-document error,
 * but for "no such index" (OpenSearch answers _mget of an index it does not
 * have with that error for each document): then false.
 */
static bool
mget_entry(JsonbContainer *entry, const char *id, bool with_source, SearchDoc *doc,
		   const SearchAnswer *a, const char *index)
{
	char	   *got = json_get_text(entry, "_id");
	JsonbValue *found = json_get(entry, "found");
	char	   *error = json_get_text(entry, "error");

	if (error && strstr(error, "index_not_found_exception") != NULL)
		return false;
	if (error || got == NULL || strcmp(got, id) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("OpenSearch at \"%s\" could not get document \"%s\" of index \"%s\"", a->node, id, index),
				 errdetail("%s", error ? flusso_redact(error) : "Its _mget answer does not list the documents asked for in order."),
				 errhint("The OpenSearch log says more.")));
	doc->found = found && found->type == jbvBool && found->val.boolean;
	doc->source = doc->found && with_source ? json_get_container(entry, "_source") : NULL;
	doc->version = json_get_text(entry, "_version");
	doc->physical = json_get_text(entry, "_index");
	if (doc->found && with_source && doc->source == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("OpenSearch keeps no _source for index \"%s\": its documents cannot be compared", index),
				 errdetail("Document \"%s\" was found without its _source.", id),
				 errhint("Remove \"_source\" from opensearch.mappings in the definition.")));
	return true;
}

/*
 * OpenSearch's copies of ids, as of now (a realtime _mget through the
 * alias), into docs[0..n-1].  NULL when done, else the failed answer.
 */
static SearchAnswer *
search_mget(const char *index, char **ids, int n, bool with_source, SearchDoc *docs)
{
	char	   *path = psprintf("/%s/_mget?realtime=true%s&filter_path=docs._id,docs._index,"
								"docs._version,docs.found,docs._source,docs.error",
								flusso_search_path_segment(index), with_source ? "" : "&_source=false");
	SearchAnswer *a = palloc(sizeof(SearchAnswer));
	JsonbContainer *docs_array;
	int			i;

	*a = search_call("POST", path, ids_body(ids, n));
	if (!answer_ok(a))
		return a;
	docs_array = json_get_container(answer_json(a, index, "_mget"), "docs");
	if (docs_array == NULL || !JsonContainerIsArray(docs_array) ||
		JsonContainerSize(docs_array) != (uint32) n)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("OpenSearch at \"%s\" answered _mget for index \"%s\" without the %d documents asked for",
						a->node, index, n),
				 errdetail("The answer begins with: %.200s", flusso_redact(a->body)),
				 errhint("The OpenSearch log says more.")));
	for (i = 0; i < n; i++)
	{
		JsonbValue *entry = getIthJsonbValueFromContainer(docs_array, i);

		if (entry == NULL || entry->type != jbvBinary)
			elog(ERROR, "entry %d of an _mget answer is not an object", i);
		if (!mget_entry(entry->val.binary.data, ids[i], with_source, &docs[i], a, index))
		{
			a->no_index = true;
			return a;
		}
	}
	return NULL;
}

/* Is the built document (json text) what OpenSearch holds?  Compared as jsonb. */
static bool
same_document(const char *doc, JsonbContainer *source)
{
	Jsonb	   *built = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(doc)));

	return compareJsonbContainers(&built->root, source) == 0;
}

/* ---- the definition's statements, with the owner's rights ---- */

/* Prepare a statement of the definition as its owner (privileges are checked when it runs). */
static SPIPlanPtr
prepare_as_owner(IndexDef *def, const char *sql, int nargs, Oid *types)
{
	FlussoRights rights;
	SPIPlanPtr	plan;

	flusso_rights_as_owner(def->owner, &rights);
	plan = SPI_prepare(sql, nargs, types);
	flusso_rights_restore(&rights);
	if (plan == NULL)
		elog(ERROR, "could not prepare a statement of index \"%s\": %s", def->name,
			 SPI_result_code_string(SPI_result));
	return plan;
}

static void
execute_as_owner(IndexDef *def, SPIPlanPtr plan, Datum *params)
{
	FlussoRights rights;
	int			rc;

	flusso_rights_as_owner(def->owner, &rights);
	rc = SPI_execute_plan(plan, params, NULL, false, 0);
	flusso_rights_restore(&rights);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "a statement of index \"%s\" failed: %s", def->name, SPI_result_code_string(rc));
}

/* Does the id have as many parts as the key has columns ("a|b", with "\\" escaping)? */
static bool
id_parts_fit(const char *id, int nkeys)
{
	int			parts = 1;
	const char *p;

	if (nkeys == 1)
		return true;
	for (p = id; *p; p++)
	{
		if (*p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '|')
			parts++;
	}
	return parts == nkeys;
}

typedef struct KeyCheck
{
	IndexDef   *def;
	const char *id;
} KeyCheck;

/* Split the id and read each part with its key column's input function, as the owner. */
static void
check_key(void *arg)
{
	KeyCheck   *k = arg;
	List	   *parts = flusso_id_split(k->id, list_length(k->def->key));
	FlussoRights rights;
	int			i;

	flusso_rights_as_owner(k->def->owner, &rights);
	for (i = 0; i < list_length(parts); i++)
	{
		Oid			input;
		Oid			ioparam;

		getTypeInputInfo(list_nth_oid(k->def->key_types, i), &input, &ioparam);
		(void) OidInputFunctionCall(input, list_nth(parts, i), ioparam, -1);
	}
	flusso_rights_restore(&rights);
}

/* NULL when id can be a key of the index, else why not. */
static char *
key_problem(IndexDef *def, const char *id)
{
	KeyCheck	k = {def, id};
	ErrorData  *error;

	if (!id_parts_fit(id, list_length(def->key)))
	{
		StringInfoData cols;
		ListCell   *lc;

		initStringInfo(&cols);
		foreach(lc, def->key)
			appendStringInfo(&cols, "%s%s", cols.len ? ", " : "", (char *) lfirst(lc));
		return psprintf("it is not the %d values of the key (%s) joined by \"|\"",
						list_length(def->key), cols.data);
	}
	if (flusso_guard_keeping(check_key, &k, &error))
		return NULL;
	if (!error_is_about_rows(error))
		ReThrowError(error);
	return error->message;
}

/* ---- verify ---- */

typedef struct Verification
{
	IndexDef   *def;
	const char *name;
	int			nkeys;
	int			page_size;
	SPIPlanPtr	first_plan;		/* backfill, first page */
	SPIPlanPtr	next_plan;		/* backfill, after a key */
	SPIPlanPtr	keys_first_plan;	/* the ids of a page, unfiltered */
	SPIPlanPtr	keys_next_plan;
	SPIPlanPtr	build_plan;		/* the documents of given ids */
	SPIPlanPtr	exists_plan;	/* the keys of given ids that have a document */
	MemoryContext page_cxt;		/* reset after every page */

	/* where problems go: the tuplestore of verify(), or nowhere */
	Tuplestorestate *store;
	TupleDesc	desc;

	int64		documents;		/* PostgreSQL builds them */
	int64		in_opensearch;	/* ids OpenSearch holds */
	int64		missing;
	int64		stale;
	int64		extra;
	int64		unbuildable;
} Verification;

static void
report(Verification *v, const char *id, const char *problem)
{
	if (strcmp(problem, "missing") == 0)
		v->missing++;
	else if (strcmp(problem, "stale") == 0)
		v->stale++;
	else if (strcmp(problem, "extra") == 0)
		v->extra++;
	else
		v->unbuildable++;
	if (v->store)
	{
		Datum		values[2] = {CStringGetTextDatum(id), CStringGetTextDatum(problem)};
		bool		nulls[2] = {false, false};

		tuplestore_putvalues(v->store, v->desc, values, nulls);
	}
}

/*
 * The key of a root row as text[], an expression over the row: probed over
 * the root rows the filter keeps (PROBE_VALUE), it says which of the given
 * keys have a document, without building any.
 */
static char *
key_array_sql(IndexDef *def)
{
	const char *alias = quote_identifier(def->root->table.relname);
	StringInfoData out;
	ListCell   *lc;

	initStringInfo(&out);
	appendStringInfoString(&out, "ARRAY[");
	foreach(lc, def->key)
		appendStringInfo(&out, "%s%s.%s::pg_catalog.text", foreach_current_index(lc) ? ", " : "",
						 alias, quote_identifier(lfirst(lc)));
	appendStringInfoString(&out, "]");
	return out.data;
}

static void
prepare_statements(Verification *v)
{
	int			n = v->nkeys;
	int			nfirst;
	int			nnext;
	Oid		   *first = flusso_sql_backfill_types(v->def, true, &nfirst);
	Oid		   *next = flusso_sql_backfill_types(v->def, false, &nnext);
	Oid		   *types = flusso_sql_array_types(n);

	v->first_plan = prepare_as_owner(v->def, flusso_sql_backfill(v->def, true), nfirst, first);
	v->next_plan = prepare_as_owner(v->def, flusso_sql_backfill(v->def, false), nnext, next);
	v->keys_first_plan = prepare_as_owner(v->def, flusso_sql_backfill_keys(v->def, true), nfirst, first);
	v->keys_next_plan = prepare_as_owner(v->def, flusso_sql_backfill_keys(v->def, false), nnext, next);
	v->build_plan = prepare_as_owner(v->def, flusso_sql_build(v->def), n, types);
	v->exists_plan = prepare_as_owner(v->def, flusso_sql_probe(v->def, v->def->root, key_array_sql(v->def),
																PROBE_VALUE), n, types);
}

/* A page of what PostgreSQL builds, in key order. */
typedef struct PageDoc
{
	char	   *id;
	char	   *doc;			/* NULL: it cannot be built */
} PageDoc;

typedef struct DocPage
{
	PageDoc    *docs;
	int			n;
	int			cap;
	List	   *cursor;			/* the key of the last row read (text each) */
	int			rows;			/* rows read: fewer than a page ends the index */
} DocPage;

static void
page_add(DocPage *page, const char *id, const char *doc)
{
	if (page->n == page->cap)
	{
		page->cap = Max(16, page->cap * 2);
		page->docs = page->docs ? repalloc(page->docs, sizeof(PageDoc) * page->cap) :
			palloc(sizeof(PageDoc) * page->cap);
	}
	page->docs[page->n].id = (char *) id;	/* both in the page's memory already */
	page->docs[page->n].doc = (char *) doc;
	page->n++;
}

typedef struct PageRun
{
	Verification *v;
	List	   *cursor;			/* NIL: the first page */
	bool		keys_only;
	DocPage	   *page;			/* filled (rows) */
	List	   *ids;			/* filled (keys_only) */
} PageRun;

static Datum *
page_params(Verification *v, List *cursor)
{
	Datum	   *params = palloc(sizeof(Datum) * (v->nkeys + 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, cursor)
		params[n++] = CStringGetTextDatum(lfirst(lc));
	params[n] = Int32GetDatum(v->page_size);
	return params;
}

/* One backfill page (or its ids alone), copied into the page's memory. */
static void
read_page(void *arg)
{
	PageRun    *r = arg;
	Verification *v = r->v;
	SPIPlanPtr	plan = r->keys_only ? (r->cursor ? v->keys_next_plan : v->keys_first_plan) :
		(r->cursor ? v->next_plan : v->first_plan);
	MemoryContext old;
	SPITupleTable *tab;
	uint64		i;

	execute_as_owner(v->def, plan, page_params(v, r->cursor));
	tab = SPI_tuptable;
	old = MemoryContextSwitchTo(v->page_cxt);
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *id = SPI_getvalue(tab->vals[i], tab->tupdesc, 1);

		if (r->keys_only)
			r->ids = lappend(r->ids, id);
		else
			page_add(r->page, id, SPI_getvalue(tab->vals[i], tab->tupdesc, 2));
	}
	if (!r->keys_only && SPI_processed > 0)
	{
		r->page->cursor = NIL;
		for (i = 0; i < (uint64) v->nkeys; i++)
			r->page->cursor = lappend(r->page->cursor,
									  SPI_getvalue(tab->vals[SPI_processed - 1], tab->tupdesc, 3 + i));
	}
	if (!r->keys_only)
		r->page->rows = (int) SPI_processed;
	MemoryContextSwitchTo(old);
	SPI_freetuptable(tab);
}

typedef struct BuildRun
{
	Verification *v;
	List	   *ids;
	bool		exists_only;	/* which ids have a document, none built */
	List	   *built;			/* of PageDoc: the ids with a document */
} BuildRun;

/* The ids of the text[] keys the exists statement returned, in the page's memory. */
static void
existing_ids(BuildRun *b, SPITupleTable *tab, uint64 n)
{
	uint64		i;

	for (i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(tab->vals[i], tab->tupdesc, 1, &isnull);
		Datum	   *parts;
		int			nparts;
		char	  **texts;
		PageDoc    *doc;
		int			j;

		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
						  &parts, NULL, &nparts);
		texts = palloc(sizeof(char *) * nparts);
		for (j = 0; j < nparts; j++)
			texts[j] = TextDatumGetCString(parts[j]);
		doc = palloc0(sizeof(PageDoc));
		doc->id = flusso_id_join(texts, nparts);
		b->built = lappend(b->built, doc);
	}
}

/*
 * The build statement over ids: (id, document) of those it builds, in the
 * page's memory; or, exists_only, the ids that have a document.
 */
static void
build_ids(void *arg)
{
	BuildRun   *b = arg;
	Verification *v = b->v;
	SPITupleTable *tab;
	MemoryContext old;
	uint64		i;

	execute_as_owner(v->def, b->exists_only ? v->exists_plan : v->build_plan,
					 flusso_keyset_params(b->ids, v->nkeys));
	tab = SPI_tuptable;
	old = MemoryContextSwitchTo(v->page_cxt);
	if (b->exists_only)
		existing_ids(b, tab, SPI_processed);
	for (i = 0; i < SPI_processed && !b->exists_only; i++)
	{
		bool		isnull;
		PageDoc    *d;

		(void) SPI_getbinval(tab->vals[i], tab->tupdesc, 2, &isnull);
		if (isnull)
			continue;			/* no row, or filtered out */
		d = palloc(sizeof(PageDoc));
		d->id = SPI_getvalue(tab->vals[i], tab->tupdesc, 1);
		d->doc = SPI_getvalue(tab->vals[i], tab->tupdesc, 2);
		b->built = lappend(b->built, d);
	}
	MemoryContextSwitchTo(old);
	SPI_freetuptable(tab);
}

/*
 * Build ids, half by half where a group fails, down to the documents that
 * cannot be built: on_built gets each document, on_failed each id that
 * fails alone, with its error.
 */
typedef void (*BuiltFn) (Verification *v, PageDoc *doc, void *arg);
typedef void (*FailedFn) (Verification *v, const char *id, ErrorData *error, void *arg);

static void
build_groups(Verification *v, List *ids, bool exists_only, BuiltFn on_built, FailedFn on_failed,
			 void *arg)
{
	BuildRun	b = {v, ids, exists_only, NIL};
	ErrorData  *error;
	ListCell   *lc;
	int			half;

	if (ids == NIL)
		return;
	if (flusso_guard_keeping(build_ids, &b, &error))
	{
		foreach(lc, b.built)
			on_built(v, lfirst(lc), arg);
		return;
	}
	if (!error_is_about_rows(error))
		ReThrowError(error);
	if (list_length(ids) == 1)
	{
		on_failed(v, linitial(ids), error, arg);
		return;
	}
	half = list_length(ids) / 2;
	build_groups(v, list_copy_head(ids, half), exists_only, on_built, on_failed, arg);
	build_groups(v, list_copy_tail(ids, half), exists_only, on_built, on_failed, arg);
}

static void
page_built(Verification *v, PageDoc *doc, void *arg)
{
	page_add((DocPage *) arg, doc->id, doc->doc);
}

static void
page_failed(Verification *v, const char *id, ErrorData *error, void *arg)
{
	page_add((DocPage *) arg, id, NULL);
}

/* The next page of documents after cursor; a page that fails is built by groups of ids. */
static void
next_page(Verification *v, List *cursor, DocPage *page)
{
	PageRun		r = {v, cursor, false, page, NIL};
	ErrorData  *error;

	memset(page, 0, sizeof(DocPage));
	if (flusso_guard_keeping(read_page, &r, &error))
		return;
	if (!error_is_about_rows(error))
		ReThrowError(error);
	memset(page, 0, sizeof(DocPage));
	r.keys_only = true;
	if (!flusso_guard_keeping(read_page, &r, &error))
		ReThrowError(error);
	build_groups(v, r.ids, false, page_built, page_failed, page);
	page->rows = list_length(r.ids);
	if (r.ids != NIL)
	{
		MemoryContext old = MemoryContextSwitchTo(v->page_cxt);

		page->cursor = flusso_id_split(llast(r.ids), v->nkeys);
		MemoryContextSwitchTo(old);
	}
}

/*
 * How many of the documents from the k-th on (of n) one _mget asks for:
 * MGET_MAX, or fewer when they add up to more than MGET_BYTES (OpenSearch
 * answers with copies of about the same size).
 */
static int
mget_chunk(char **docs, int k, int n)
{
	size_t		bytes = 0;
	int			count = 0;

	while (k + count < n && count < MGET_MAX)
	{
		bytes += strlen(docs[k + count]);
		if (count > 0 && bytes > MGET_BYTES)
			break;
		count++;
	}
	return count;
}

/* Compare a page with OpenSearch's copies, reporting in key order. */
static void
compare_page(Verification *v, DocPage *page)
{
	char	  **ids = palloc(sizeof(char *) * Max(page->n, 1));
	char	  **built = palloc(sizeof(char *) * Max(page->n, 1));
	SearchDoc  *docs = palloc0(sizeof(SearchDoc) * Max(page->n, 1));
	int			n = 0;
	int			k = 0;
	int			i;

	for (i = 0; i < page->n; i++)
	{
		if (page->docs[i].doc == NULL)
			continue;
		ids[n] = page->docs[i].id;
		built[n++] = page->docs[i].doc;
	}
	for (i = 0; i < n; i += k)
	{
		SearchAnswer *failed;

		k = mget_chunk(built, i, n);
		failed = search_mget(v->name, ids + i, k, true, docs + i);
		if (failed)
			answer_raise(failed, v->name, "_mget");
	}
	for (i = 0, k = 0; i < page->n; i++)
	{
		SearchDoc  *d = page->docs[i].doc ? &docs[k++] : NULL;

		if (d == NULL)
			report(v, page->docs[i].id, "unbuildable");
		else if (!d->found)
			report(v, page->docs[i].id, "missing");
		else if (!same_document(page->docs[i].doc, d->source))
			report(v, page->docs[i].id, "stale");
	}
	v->documents += n;
}

/* Pass 1: every document PostgreSQL builds, compared with OpenSearch's, a page at a time. */
static void
check_documents(Verification *v)
{
	List	   *cursor = NIL;
	MemoryContext cursor_cxt = AllocSetContextCreate(CurrentMemoryContext, "flusso verify cursor",
													 ALLOCSET_SMALL_SIZES);
	bool		done = false;

	while (!done)
	{
		MemoryContext old = MemoryContextSwitchTo(v->page_cxt);
		DocPage		page;
		ListCell   *lc;

		CHECK_FOR_INTERRUPTS();
		next_page(v, cursor, &page);
		compare_page(v, &page);
		done = page.rows < v->page_size || page.cursor == NIL;
		if (!done)
		{
			MemoryContextReset(cursor_cxt);
			MemoryContextSwitchTo(cursor_cxt);
			cursor = NIL;
			foreach(lc, page.cursor)
				cursor = lappend(cursor, pstrdup(lfirst(lc)));
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(v->page_cxt);
	}
	MemoryContextDelete(cursor_cxt);
}

/* ---- extras: ids OpenSearch holds that PostgreSQL would not build ---- */

/* A scroll page: its ids, and the scroll id to go on with. */
typedef struct ScrollPage
{
	char	  **ids;
	int			n;
	char	   *scroll_id;
} ScrollPage;

static void
scroll_page(Verification *v, const SearchAnswer *a, ScrollPage *sp)
{
	JsonbContainer *root;
	JsonbContainer *hits;
	int			i;

	if (!answer_ok(a))
		answer_raise(a, v->name, "a scroll over its ids");
	root = answer_json(a, v->name, "a scroll over its ids");
	sp->scroll_id = json_get_text(root, "_scroll_id");
	hits = json_get_container(json_get_container(root, "hits"), "hits");
	sp->n = hits && JsonContainerIsArray(hits) ? (int) JsonContainerSize(hits) : 0;
	sp->ids = palloc(sizeof(char *) * Max(sp->n, 1));
	for (i = 0; i < sp->n; i++)
	{
		JsonbValue *hit = getIthJsonbValueFromContainer(hits, i);

		sp->ids[i] = hit && hit->type == jbvBinary ? json_get_text(hit->val.binary.data, "_id") : NULL;
		if (sp->ids[i] == NULL)
			elog(ERROR, "a hit of a scroll over index \"%s\" has no _id", v->name);
	}
	if (sp->n > 0 && sp->scroll_id == NULL)
		elog(ERROR, "a scroll over index \"%s\" was answered without a _scroll_id", v->name);
}

typedef struct BuiltIds
{
	char	  **ids;
	int			n;
	int			cap;
} BuiltIds;

static void
add_built_id(BuiltIds *b, const char *id)
{
	if (b->n == b->cap)
	{
		b->cap = Max(64, b->cap * 2);
		b->ids = b->ids ? repalloc(b->ids, sizeof(char *) * b->cap) : palloc(sizeof(char *) * b->cap);
	}
	b->ids[b->n++] = (char *) id;
}

static void
extra_built(Verification *v, PageDoc *doc, void *arg)
{
	add_built_id((BuiltIds *) arg, doc->id);
}

/* An id that fails alone: not extra when it is a key whose row cannot be built (pass 1 says so). */
static void
extra_failed(Verification *v, const char *id, ErrorData *error, void *arg)
{
	if (key_problem(v->def, id) == NULL)
		add_built_id((BuiltIds *) arg, id);
}

static int
compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Which of a scroll page's ids PostgreSQL would not build, still in OpenSearch: extra. */
static void
check_search_ids(Verification *v, ScrollPage *sp)
{
	BuiltIds	built = {0};
	List	   *ask = NIL;
	char	  **candidates = palloc(sizeof(char *) * sp->n);
	SearchDoc  *docs;
	int			n = 0;
	int			i;

	for (i = 0; i < sp->n; i++)
		if (id_parts_fit(sp->ids[i], v->nkeys))
			ask = lappend(ask, sp->ids[i]);
	build_groups(v, ask, true, extra_built, extra_failed, &built);
	if (built.n > 0)
		qsort(built.ids, built.n, sizeof(char *), compare_strings);
	for (i = 0; i < sp->n; i++)
		if (built.n == 0 || bsearch(&sp->ids[i], built.ids, built.n, sizeof(char *), compare_strings) == NULL)
			candidates[n++] = sp->ids[i];
	docs = palloc0(sizeof(SearchDoc) * Max(n, 1));
	for (i = 0; i < n; i += MGET_MAX)
	{
		SearchAnswer *failed = search_mget(v->name, candidates + i, Min(MGET_MAX, n - i), false, docs + i);

		if (failed)
			answer_raise(failed, v->name, "_mget");
	}
	for (i = 0; i < n; i++)
		if (docs[i].found)		/* not deleted since the scroll's view */
			report(v, candidates[i], "extra");
}

static char *
scroll_next_body(const char *scroll_id)
{
	return psprintf("{\"scroll\":\"%s\",\"scroll_id\":%s}", SCROLL_KEEP, flusso_json_quote(scroll_id));
}

/* Pass 2: scroll every id OpenSearch holds (no _source), a page at a time, until an empty page. */
static void
find_extras(Verification *v)
{
	const char *filter = "filter_path=_scroll_id,hits.hits._id";
	MemoryContext keep = CurrentMemoryContext;
	char	   *scroll_id = NULL;
	int			n = -1;

	while (n != 0)
	{
		MemoryContext old = MemoryContextSwitchTo(v->page_cxt);
		SearchAnswer a;
		ScrollPage	sp;

		CHECK_FOR_INTERRUPTS();
		if (scroll_id == NULL)
			a = search_call("POST", psprintf("/%s/_search?scroll=%s&%s", flusso_search_path_segment(v->name), SCROLL_KEEP, filter),
							psprintf("{\"size\":%d,\"sort\":[\"_doc\"],\"_source\":false,"
									 "\"query\":{\"match_all\":{}}}", SCROLL_SIZE));
		else
			a = search_call("POST", psprintf("/_search/scroll?%s", filter), scroll_next_body(scroll_id));
		scroll_page(v, &a, &sp);
		if (sp.scroll_id)
		{
			MemoryContextSwitchTo(keep);
			if (scroll_id)
				pfree(scroll_id);
			scroll_id = pstrdup(sp.scroll_id);
			MemoryContextSwitchTo(v->page_cxt);
		}
		if (sp.n > 0)
			check_search_ids(v, &sp);
		v->in_opensearch += sp.n;
		n = sp.n;
		MemoryContextSwitchTo(old);
		MemoryContextReset(v->page_cxt);
	}
	if (scroll_id)
		(void) search_call("DELETE", "/_search/scroll",
						   psprintf("{\"scroll_id\":[%s]}", flusso_json_quote(scroll_id)));
}

/* ---- the index's state, dead letters (flusso's own tables, as the extension's owner) ---- */

typedef struct IndexState
{
	bool		known;			/* flusso is preloaded and the worker lists the index */
	char	   *state;
	double		lag_seconds;
	bool		error_active;
	char	   *last_error;
	char	   *waiting_for;
	char	   *backfill_percent;
	char	   *generation;
} IndexState;

static char *
value_or_null(SPITupleTable *tab, int col)
{
	return SPI_getvalue(tab->vals[0], tab->tupdesc, col);
}

static IndexState
index_state(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	IndexState	s = {0};
	FlussoRights rights;
	int			rc;

	if (flusso_shared == NULL)
		return s;
	flusso_rights_as_extension(&rights);
	rc = SPI_execute_with_args("SELECT s.state, s.lag_seconds, s.error_active, s.last_error, s.waiting_for, "
							   "pg_catalog.round(s.backfill_percent::pg_catalog.numeric, 1), s.generation "
							   "FROM flusso.index_status s "
							   "WHERE s.database OPERATOR(pg_catalog.=) pg_catalog.current_database()::pg_catalog.text "
							   "AND s.name OPERATOR(pg_catalog.=) $1",
							   1, types, values, NULL, false, 1);
	flusso_rights_restore(&rights);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read flusso.index_status");
	if (SPI_processed == 0)
		return s;
	s.known = true;
	s.state = value_or_null(SPI_tuptable, 1);
	s.lag_seconds = value_or_null(SPI_tuptable, 2) ? strtod(value_or_null(SPI_tuptable, 2), NULL) : 0;
	s.error_active = value_or_null(SPI_tuptable, 3) && strcmp(value_or_null(SPI_tuptable, 3), "t") == 0;
	s.last_error = value_or_null(SPI_tuptable, 4);
	s.waiting_for = value_or_null(SPI_tuptable, 5);
	s.backfill_percent = value_or_null(SPI_tuptable, 6);
	s.generation = value_or_null(SPI_tuptable, 7);
	return s;
}

static bool
state_is(const IndexState *s, const char *state)
{
	return s->known && s->state && strcmp(s->state, state) == 0;
}

/* Before comparing: say when differences are expected (changes on their way, a paused index). */
static void
notice_state(const char *name)
{
	IndexState	s = index_state(name);

	if (state_is(&s, "paused"))
		ereport(NOTICE,
				(errmsg("index \"%s\" is paused: the changes made since show as differences", name),
				 errhint("flusso.resume('%s') applies them.", name)));
	else if (state_is(&s, "stopped"))
		ereport(NOTICE,
				(errmsg("index \"%s\" is stopped: the changes made since show as differences", name),
				 errdetail("%s", s.last_error ? s.last_error : "No error is recorded."),
				 errhint("Fix the cause, then flusso.reindex('%s') rebuilds it.", name)));
	else if (state_is(&s, "pending") || state_is(&s, "backfilling"))
		ereport(NOTICE,
				(errmsg("index \"%s\" is %s: documents not written yet show as missing", name, s.state)));
	else if (s.known && s.lag_seconds > 0)
		ereport(NOTICE,
				(errmsg("index \"%s\" has changes on their way (lag %.1f s): documents they change may show as differences",
						name, s.lag_seconds),
				 errhint("Call flusso.wait_synced() first, or ask flusso.explain_document() about a document.")));
}

typedef struct DeadLetter
{
	bool		found;
	char	   *error;
	char	   *failed_at;
	char	   *generation;
} DeadLetter;

static DeadLetter
dead_letter(const char *name, const char *id)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(name), CStringGetTextDatum(id)};
	DeadLetter	d = {0};
	FlussoRights rights;
	int			rc;

	flusso_rights_as_extension(&rights);
	rc = SPI_execute_with_args("SELECT l.error, l.failed_at, l.generation FROM flusso.dead_letters l "
							   "WHERE l.index_name OPERATOR(pg_catalog.=) $1 "
							   "AND l.document_id OPERATOR(pg_catalog.=) $2 "
							   "ORDER BY l.failed_at DESC LIMIT 1",
							   2, types, values, NULL, false, 1);
	flusso_rights_restore(&rights);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read flusso.dead_letters");
	if (SPI_processed == 0)
		return d;
	d.found = true;
	d.error = value_or_null(SPI_tuptable, 1);
	d.failed_at = value_or_null(SPI_tuptable, 2);
	d.generation = value_or_null(SPI_tuptable, 3);
	return d;
}

/* ---- the sync worker's output settings ---- */

/*
 * The settings that change how values are written, and so documents (a
 * timestamptz in TimeZone, an interval in IntervalStyle, bytea...) and ids
 * (a date key's text in DateStyle).
 */
static const char *const output_settings[] = {
	"TimeZone", "DateStyle", "IntervalStyle", "extra_float_digits", "bytea_output",
	"xmlbinary", "xmloption", "lc_monetary", NULL
};

typedef struct OutputSettings
{
	List	   *names;
	List	   *values;
} OutputSettings;

/*
 * The values the sync worker has: it connects as the bootstrap superuser,
 * so it gets the configuration files' values, or those of ALTER DATABASE
 * and ALTER ROLE for that role, in PostgreSQL's order of precedence; never
 * what a client sent or SET.
 */
static void
read_output_settings(void *arg)
{
	OutputSettings *o = arg;
	Datum		names[lengthof(output_settings)];
	Oid			types[2] = {TEXTARRAYOID, OIDOID};
	Datum		values[2];
	FlussoRights rights;
	uint64		i;
	int			n;
	int			rc;

	for (n = 0; output_settings[n]; n++)
		names[n] = CStringGetTextDatum(output_settings[n]);
	values[0] = PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[1] = ObjectIdGetDatum(BOOTSTRAP_SUPERUSERID);
	flusso_rights_as_extension(&rights);
	rc = SPI_execute_with_args(
							   "SELECT s.name, COALESCE("
							   "(SELECT pg_catalog.substr(c.c, pg_catalog.strpos(c.c, '=') OPERATOR(pg_catalog.+) 1) "
							   "FROM pg_catalog.pg_db_role_setting d CROSS JOIN LATERAL pg_catalog.unnest(d.setconfig) AS c(c) "
							   "WHERE d.setdatabase OPERATOR(pg_catalog.=) ANY (ARRAY[0, (SELECT b.oid FROM pg_catalog.pg_database b "
							   "WHERE b.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())]::pg_catalog.oid[]) "
							   "AND d.setrole OPERATOR(pg_catalog.=) ANY (ARRAY[0, $2]::pg_catalog.oid[]) "
							   "AND pg_catalog.lower(pg_catalog.split_part(c.c, '=', 1)) OPERATOR(pg_catalog.=) pg_catalog.lower(s.name) "
							   "ORDER BY d.setdatabase OPERATOR(pg_catalog.<>) 0 AND d.setrole OPERATOR(pg_catalog.<>) 0 DESC, "
							   "d.setrole OPERATOR(pg_catalog.<>) 0 DESC, d.setdatabase OPERATOR(pg_catalog.<>) 0 DESC LIMIT 1), "
							   "(SELECT f.setting FROM pg_catalog.pg_file_settings f "
							   "WHERE pg_catalog.lower(f.name) OPERATOR(pg_catalog.=) pg_catalog.lower(s.name) AND f.applied "
							   "ORDER BY f.seqno DESC LIMIT 1), "
							   "s.boot_val) "
							   "FROM pg_catalog.pg_settings s WHERE s.name OPERATOR(pg_catalog.=) ANY ($1)",
							   2, types, values, NULL, false, 0);
	flusso_rights_restore(&rights);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the server's settings");
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *value = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		if (value == NULL)
			continue;
		o->names = lappend(o->names, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		o->values = lappend(o->values, value);
	}
}

/*
 * Build as the sync worker builds: a TimeZone the client sent, or a SET
 * DateStyle, would change every timestamp in the documents and make them
 * all look stale.  The settings hold until the returned GUC nest level is
 * rolled back.  When the server's settings cannot be read (the extension's
 * owner is no superuser), the session's are used, with a NOTICE.
 */
static int
use_worker_output_settings(void)
{
	int			level = NewGUCNestLevel();
	OutputSettings o = {NIL, NIL};
	ErrorData  *error;
	ListCell   *n;
	ListCell   *v;

	if (!flusso_guard_keeping(read_output_settings, &o, &error))
	{
		ereport(NOTICE,
				(errmsg("documents are built with this session's TimeZone, DateStyle and IntervalStyle: the server's could not be read"),
				 errdetail("%s", error->message)));
		return level;
	}
	forboth(n, o.names, v, o.values)
		(void) set_config_option(lfirst(n), lfirst(v), PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/* ---- SQL: verify, verify_summary ---- */

static void
run_verification(Verification *v, const char *name, const char *action)
{
	const char *no_search;
	int			settings;

	v->name = name;
	v->def = flusso_definition_load_managed(name, action);
	v->nkeys = list_length(v->def->key);
	v->page_size = Min(flusso_batch_size, PAGE_MAX);
	no_search = search_setup();
	if (no_search)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" cannot be compared with OpenSearch: %s", name, no_search),
				 errhint("Set flusso.opensearch_url in postgresql.conf and reload the configuration.")));
	notice_state(name);
	settings = use_worker_output_settings();
	v->page_cxt = AllocSetContextCreate(CurrentMemoryContext, "flusso verify page",
										ALLOCSET_DEFAULT_SIZES);
	prepare_statements(v);
	check_documents(v);
	find_extras(v);
	MemoryContextDelete(v->page_cxt);
	AtEOXact_GUC(true, settings);
}

/*
 * flusso.verify(name): every difference between the index in OpenSearch and
 * what PostgreSQL would build now, as (id, problem) rows: missing, stale,
 * extra, unbuildable.  Nothing for documents that match.
 */
PG_FUNCTION_INFO_V1(flusso_verify);
Datum
flusso_verify(PG_FUNCTION_ARGS)
{
	char	   *name = arg_text(fcinfo, 0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Verification v = {0};

	flusso_require_current_sql();
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	v.store = rsinfo->setResult;
	v.desc = rsinfo->setDesc;
	SPI_connect();
	run_verification(&v, name, "verify");
	SPI_finish();
	return (Datum) 0;
}

/* flusso.verify_summary(name): the counts of verify(), and how long it took. */
PG_FUNCTION_INFO_V1(flusso_verify_summary);
Datum
flusso_verify_summary(PG_FUNCTION_ARGS)
{
	char	   *name = arg_text(fcinfo, 0);
	TimestampTz start = GetCurrentTimestamp();
	Verification v = {0};
	TupleDesc	desc;
	Datum		values[7];
	bool		nulls[7] = {0};
	Interval   *elapsed;

	flusso_require_current_sql();
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "flusso.verify_summary must return a record");
	SPI_connect();
	run_verification(&v, name, "verify");
	SPI_finish();
	elapsed = DatumGetIntervalP(DirectFunctionCall2(timestamp_mi,
													TimestampTzGetDatum(GetCurrentTimestamp()),
													TimestampTzGetDatum(start)));
	values[0] = Int64GetDatum(v.documents + v.unbuildable);
	values[1] = Int64GetDatum(v.in_opensearch);
	values[2] = Int64GetDatum(v.missing);
	values[3] = Int64GetDatum(v.stale);
	values[4] = Int64GetDatum(v.extra);
	values[5] = Int64GetDatum(v.unbuildable);
	values[6] = IntervalPGetDatum(elapsed);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* ---- SQL: explain_document ---- */

typedef struct Explanation
{
	IndexDef   *def;
	const char *name;
	const char *id;
	char	   *not_a_key;		/* why the id cannot be a key, or NULL */
	bool		row_exists;
	int			filter;			/* -1 no root filter, 1 it keeps the row, 0 it does not */
	char	   *document;		/* what would be built, or NULL */
	char	   *build_error;	/* why it cannot be built, or NULL */
	char	   *build_path;		/* where in the definition, or NULL */

	char	   *search_problem; /* OpenSearch could not be asked, or has no index */
	SearchDoc	copy;			/* OpenSearch's copy of the document */
	bool		same;

	DeadLetter	dead;
	IndexState	state;
} Explanation;

typedef struct ProbeRun
{
	IndexDef   *def;
	const char *sql;
	const char *id;
	int			rows;
	bool		value;			/* the first row's value (a boolean probe) */
	bool		value_null;
} ProbeRun;

static void
run_probe(void *arg)
{
	ProbeRun   *p = arg;
	int			nkeys = list_length(p->def->key);
	Datum	   *params = flusso_keyset_params(list_make1((char *) p->id), nkeys);
	FlussoRights rights;
	int			rc;

	flusso_rights_as_owner(p->def->owner, &rights);
	rc = SPI_execute_with_args(p->sql, nkeys, flusso_sql_array_types(nkeys), params, NULL, false, 2);
	flusso_rights_restore(&rights);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "a probe of index \"%s\" failed", p->def->name);
	p->rows = (int) SPI_processed;
	if (p->rows > 0)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &p->value_null);

		p->value = !p->value_null && SPI_gettypeid(SPI_tuptable->tupdesc, 1) == BOOLOID &&
			DatumGetBool(d);
	}
}

/* Run a probe; false (with the message) when it fails. */
static bool
probe(IndexDef *def, const char *id, DefNode *node, const char *text, FlussoProbeKind kind,
	  ProbeRun *p, char **message)
{
	ErrorData  *error;

	memset(p, 0, sizeof(ProbeRun));
	p->def = def;
	p->id = id;
	p->sql = flusso_sql_probe(def, node, text, kind);
	if (flusso_guard_keeping(run_probe, p, &error))
		return true;
	if (!error_is_about_rows(error))
		ReThrowError(error);
	*message = error->message;
	return false;
}

static char *
path_of(const char *base, const char *key)
{
	return base[0] ? psprintf("%s.%s", base, key) : pstrdup(key);
}

/* Which expression of the definition fails for the document (the worker's probes, in order). */
static char *
failing_path(IndexDef *def, const char *id)
{
	ListCell   *lc;
	ProbeRun	p;
	char	   *message;

	foreach(lc, flusso_def_nodes(def))
	{
		DefNode    *node = lfirst(lc);
		ListCell   *fc;

		if (node->filter && !probe(def, id, node, node->filter, PROBE_FILTER, &p, &message))
			return path_of(node->path, "filter");
		foreach(fc, node->fields)
		{
			DefField   *f = lfirst(fc);

			if (f->expr && !probe(def, id, node, f->expr, PROBE_VALUE, &p, &message))
				return psprintf("%s.expr", f->path);
		}
		if (node->value && !probe(def, id, node, node->value, PROBE_VALUE, &p, &message))
			return path_of(node->path, "value");
		if (node->order_by && !probe(def, id, node, node->order_by, PROBE_ORDER, &p, &message))
			return path_of(node->path, "order_by");
	}
	return NULL;
}

/* Does the root row exist, and does the root filter keep it? */
static void
explain_row(Explanation *e)
{
	DefNode    *root = e->def->root;
	ProbeRun	p;
	char	   *message;

	if (!probe(e->def, e->id, root, root->filter ? root->filter : "true", PROBE_FILTER, &p, &message))
	{
		e->row_exists = true;	/* the filter failed on a row */
		e->filter = 0;
		e->build_error = message;
		e->build_path = pstrdup("filter");
		return;
	}
	e->row_exists = p.rows > 0;
	e->filter = root->filter == NULL ? -1 : (p.rows > 0 && p.value ? 1 : 0);
}

typedef struct BuildOne
{
	Verification *v;
	const char *id;
	char	   *document;
} BuildOne;

static void
build_one(void *arg)
{
	BuildOne   *b = arg;
	BuildRun	r = {b->v, list_make1((char *) b->id), false, NIL};

	build_ids(&r);
	if (r.built != NIL)
		b->document = ((PageDoc *) linitial(r.built))->doc;
}

/* The document that would be built, or why it cannot be. */
static void
explain_build(Explanation *e)
{
	Verification v = {0};
	BuildOne	b = {&v, e->id, NULL};
	ErrorData  *error;

	v.def = e->def;
	v.nkeys = list_length(e->def->key);
	v.page_cxt = CurrentMemoryContext;
	v.build_plan = prepare_as_owner(e->def, flusso_sql_build(e->def), v.nkeys,
									flusso_sql_array_types(v.nkeys));
	if (flusso_guard_keeping(build_one, &b, &error))
	{
		e->document = b.document;
		return;
	}
	if (!error_is_about_rows(error))
		ReThrowError(error);
	e->build_error = error->message;
	e->build_path = failing_path(e->def, e->id);
}

/* OpenSearch's copy, compared with what would be built. */
static void
explain_search(Explanation *e)
{
	const char *no_search = search_setup();
	char	   *ids[1] = {(char *) e->id};
	SearchAnswer *failed;

	if (no_search)
	{
		e->search_problem = pstrdup(no_search);
		return;
	}
	failed = search_mget(e->name, ids, 1, true, &e->copy);
	if (failed)
	{
		e->search_problem = answer_problem(failed, e->name);
		return;
	}
	e->same = e->copy.found && e->document && same_document(e->document, e->copy.source);
}

/* ---- the verdict ---- */

static const char *
lag_words(const Explanation *e)
{
	return psprintf("lag %.1f s", e->state.lag_seconds);
}

/* Why OpenSearch may not have what PostgreSQL builds now: dead letter, state, lag. */
static char *
pending_reason(const Explanation *e, const char *what)
{
	const char *name = e->name;

	if (e->dead.found)
		return psprintf("it is in dead letters since %s: %s; %s; fix the cause, then flusso.retry_dead_letters('%s') sends it again",
						e->dead.failed_at, e->dead.error, what, name);
	if (state_is(&e->state, "paused"))
		return psprintf("the index is paused: %s; flusso.resume('%s') applies every change", what, name);
	if (state_is(&e->state, "stopped"))
		return psprintf("the index is stopped (%s): %s; fix the cause, then flusso.reindex('%s')",
						e->state.last_error ? e->state.last_error : "no error recorded", what, name);
	if (state_is(&e->state, "pending") || state_is(&e->state, "backfilling"))
		return psprintf("the index is %s (%s%% done): %s", e->state.state,
						e->state.backfill_percent ? e->state.backfill_percent : "0", what);
	if (e->state.known && e->state.lag_seconds > 0)
		return psprintf("%s: a change is on its way (%s)", what, lag_words(e));
	return NULL;
}

/* What OpenSearch has of a document PostgreSQL would not build. */
static char *
unwanted_words(const Explanation *e)
{
	if (e->search_problem)
		return psprintf("; %s", e->search_problem);
	if (!e->copy.found)
		return pstrdup("; OpenSearch has no document with this id either, as it should be");
	if (e->state.known && e->state.lag_seconds > 0)
		return psprintf("; OpenSearch still has a document with this id: its deletion is on its way (%s)",
						lag_words(e));
	return psprintf("; yet OpenSearch has a document with this id: it is extra, and no change is on its way "
					"(flusso.reindex('%s') rebuilds the index without it)", e->name);
}

static char *
wanted_words(const Explanation *e)
{
	const char *what;
	char	   *reason;

	if (e->search_problem)
		return psprintf("the row exists and would be built, but %s", e->search_problem);
	if (e->same)
		return e->dead.found ?
			psprintf("the row exists and matches; OpenSearch has the same document (a dead letter of %s is left: %s)",
					 e->dead.failed_at, e->dead.error) :
			pstrdup("the row exists and matches; OpenSearch has the same document");
	what = e->copy.found ? "OpenSearch has an older version" : "OpenSearch does not have it";
	reason = pending_reason(e, what);
	if (reason)
		return reason;
	return e->copy.found ?
		psprintf("OpenSearch has a different version and no change is on its way: it is stale "
				 "(a change to the row sends it again; flusso.reindex('%s') rebuilds the whole index)", e->name) :
		psprintf("OpenSearch does not have it and no change is on its way: it is missing "
				 "(a change to the row sends it again; flusso.reindex('%s') rebuilds the whole index)", e->name);
}

static char *
verdict(const Explanation *e)
{
	if (e->not_a_key)
		return psprintf("\"%s\" cannot be a document id of this index: %s%s", e->id, e->not_a_key,
						unwanted_words(e));
	if (!e->row_exists)
		return psprintf("no row of %s has this key%s", e->def->root->table.text, unwanted_words(e));
	if (e->build_error)
	{
		char	   *where = e->build_path ? psprintf(" (at %s in the definition)", e->build_path) : "";
		char	   *remote = e->search_problem ? psprintf("; %s", e->search_problem) :
			e->copy.found ? pstrdup("; OpenSearch keeps an older version") :
			pstrdup("; OpenSearch does not have it");
		char	   *dead = e->dead.found ? psprintf("; in dead letters since %s", e->dead.failed_at) : "";

		return psprintf("the document cannot be built: %s%s%s%s", e->build_error, where, dead, remote);
	}
	if (e->filter == 0)
		return psprintf("the row exists but is filtered out by the filter at \"filter\" in the definition: %s%s",
						e->def->root->filter, unwanted_words(e));
	return wanted_words(e);
}

/* ---- the answer as jsonb ---- */

static void
add_key(StringInfo out, const char *key, const char *json_value)
{
	if (out->len > 1)
		appendStringInfoString(out, ", ");
	escape_json(out, key);
	appendStringInfo(out, ": %s", json_value);
}

static char *
json_text_or_null(const char *s)
{
	return s ? flusso_json_quote(s) : pstrdup("null");
}

static char *
key_json(const Explanation *e)
{
	List	   *parts = flusso_id_split(e->id, list_length(e->def->key));
	StringInfoData out;
	int			i;

	initStringInfo(&out);
	appendStringInfoChar(&out, '{');
	for (i = 0; i < list_length(parts); i++)
		add_key(&out, list_nth(e->def->key, i), flusso_json_quote(list_nth(parts, i)));
	appendStringInfoChar(&out, '}');
	return out.data;
}

static char *
engine_json(const Explanation *e)
{
	StringInfoData out;

	initStringInfo(&out);
	appendStringInfoChar(&out, '{');
	add_key(&out, "alias", flusso_json_quote(e->name));
	if (e->search_problem)
	{
		add_key(&out, "error", flusso_json_quote(e->search_problem));
		appendStringInfoChar(&out, '}');
		return out.data;
	}
	add_key(&out, "found", e->copy.found ? "true" : "false");
	if (e->copy.found)
	{
		add_key(&out, "index", json_text_or_null(e->copy.physical));
		add_key(&out, "version", e->copy.version ? e->copy.version : "null");
		add_key(&out, "same", e->same ? "true" : "false");
		if (!e->same)
			add_key(&out, "source", JsonbToCString(NULL, e->copy.source, 0));
	}
	appendStringInfoChar(&out, '}');
	return out.data;
}

static char *
state_json(const Explanation *e)
{
	StringInfoData out;

	if (!e->state.known)
		return pstrdup("null");
	initStringInfo(&out);
	appendStringInfoChar(&out, '{');
	add_key(&out, "state", json_text_or_null(e->state.state));
	add_key(&out, "generation", e->state.generation ? e->state.generation : "null");
	add_key(&out, "lag_seconds", psprintf("%g", e->state.lag_seconds));
	add_key(&out, "error_active", e->state.error_active ? "true" : "false");
	add_key(&out, "last_error", json_text_or_null(e->state.last_error));
	add_key(&out, "waiting_for", json_text_or_null(e->state.waiting_for));
	appendStringInfoChar(&out, '}');
	return out.data;
}

static char *
explanation_json(const Explanation *e)
{
	StringInfoData out;

	initStringInfo(&out);
	appendStringInfoChar(&out, '{');
	add_key(&out, "index", flusso_json_quote(e->name));
	add_key(&out, "id", flusso_json_quote(e->id));
	add_key(&out, "verdict", flusso_json_quote(verdict(e)));
	add_key(&out, "key", e->not_a_key ? "null" : key_json(e));
	if (e->not_a_key)
		add_key(&out, "key_error", flusso_json_quote(e->not_a_key));
	add_key(&out, "row_exists", e->row_exists ? "true" : "false");
	if (e->def->root->filter)
		add_key(&out, "filter", psprintf("{\"path\": \"filter\", \"condition\": %s, \"keeps_row\": %s}",
										 flusso_json_quote(e->def->root->filter),
										 e->filter == 1 ? "true" : e->row_exists ? "false" : "null"));
	add_key(&out, "document", e->document ? e->document : "null");
	if (e->build_error)
		add_key(&out, "build_error", psprintf("{\"message\": %s, \"path\": %s}", flusso_json_quote(e->build_error),
				json_text_or_null(e->build_path)));
	add_key(&out, "opensearch", engine_json(e));
	add_key(&out, "dead_letter", e->dead.found ?
			psprintf("{\"error\": %s, \"failed_at\": %s, \"generation\": %s}", flusso_json_quote(e->dead.error),
					 flusso_json_quote(e->dead.failed_at), e->dead.generation ? e->dead.generation : "null") :
			"null");
	add_key(&out, "index_state", state_json(e));
	appendStringInfoChar(&out, '}');
	return out.data;
}

/*
 * flusso.explain_document(name, id): what flusso would do with one _id,
 * and why, as jsonb with a verdict in plain words.
 */
PG_FUNCTION_INFO_V1(flusso_explain_document);
Datum
flusso_explain_document(PG_FUNCTION_ARGS)
{
	Explanation e = {0};
	MemoryContext caller = CurrentMemoryContext;
	char	   *json;
	Datum		result;
	int			settings;

	e.name = arg_text(fcinfo, 0);
	e.id = arg_text(fcinfo, 1);
	flusso_require_current_sql();
	SPI_connect();
	e.def = flusso_definition_load_managed(e.name, "explain a document of");
	settings = use_worker_output_settings();
	e.not_a_key = key_problem(e.def, e.id);
	if (e.not_a_key == NULL)
		explain_row(&e);
	if (e.row_exists && e.filter != 0 && e.build_error == NULL)
		explain_build(&e);
	explain_search(&e);
	e.dead = dead_letter(e.name, e.id);
	e.state = index_state(e.name);
	json = explanation_json(&e);
	AtEOXact_GUC(true, settings);
	MemoryContextSwitchTo(caller);
	result = DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
	SPI_finish();
	PG_RETURN_DATUM(result);
}
