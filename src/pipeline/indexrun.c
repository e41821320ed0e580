/*-------------------------------------------------------------------------
 *
 * indexrun.c
 *	  Running an index's prepared statements: with its owner's rights,
 *	  guarded, rows streamed.
 *
 * Every statement the sync worker runs for an index -- a build, a backfill
 * page, a change resolution, the row count of a new build -- runs here, and
 * only here, the same way:
 *	- in a subtransaction of its own (guard.c), so its error stops nothing
 *	  but this piece of work: the caller decides what the error means for
 *	  the index (wait for a lock, apply the failure policy, stop it);
 *	- with the rights of the index's owner inside a security-restricted
 *	  operation, the fixed search_path, flusso.statement_timeout and
 *	  flusso.lock_timeout (rights.c, flusso_index_rights_enter());
 *	- result rows go to the caller's function one at a time as the executor
 *	  makes them (a DestReceiver), so a chunk of large documents is never
 *	  held in memory at once.
 *
 * It must not decide anything about the pipeline; it runs and reports.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/params.h"
#include "tcop/dest.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "base/rights.h"
#include "base/settings.h"
#include "definition/check.h"
#include "definition/parse.h"
#include "definition/sqlgen.h"
#include "pipeline/indexrun.h"

/* ---- rights ---- */

Oid			flusso_sync_role = InvalidOid;
char	   *flusso_sync_role_problem = NULL;

/* Look flusso.role up (inside a transaction). */
void
flusso_index_resolve_role(void)
{
	flusso_sync_role = InvalidOid;
	if (flusso_sync_role_problem)
		pfree(flusso_sync_role_problem);	/* a load's, in TopMemoryContext */
	flusso_sync_role_problem = NULL;
	if (flusso_role == NULL || flusso_role[0] == '\0')
		return;
	flusso_sync_role = get_role_oid(flusso_role, true);
	if (!OidIsValid(flusso_sync_role))
		flusso_sync_role_problem = MemoryContextStrdup(TopMemoryContext,
													   psprintf("flusso.role \"%s\" does not exist", flusso_role));
}

/* Why the index may not be read now (its owner gone, flusso.role), or NULL. */
char *
flusso_index_access_problem(IndexRuntime *ix)
{
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(ix->owner)))
		return psprintf("its owner (role %u) was dropped; a superuser can hand it to another role with flusso.alter_index_owner('%s', ...)",
						ix->owner, ix->name);
	if (flusso_sync_role_problem)
		return flusso_sync_role_problem;
	if (OidIsValid(flusso_sync_role) && ix->def)
		return flusso_def_access(ix->def, flusso_sync_role);
	return NULL;
}

void
flusso_index_rights_enter(IndexRuntime *ix, FlussoRights *rights)
{
	char	   *problem = flusso_index_access_problem(ix);

	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s", problem)));
	flusso_rights_as_owner(ix->owner, rights);
}

/* ---- streaming rows ---- */

typedef struct RowReceiver
{
	DestReceiver pub;
	FlussoRowFn fn;
	void	   *arg;
} RowReceiver;

static bool
receive_row(TupleTableSlot *slot, DestReceiver *self)
{
	RowReceiver *r = (RowReceiver *) self;

	slot_getallattrs(slot);
	r->fn(r->arg, slot->tts_values, slot->tts_isnull, slot->tts_tupleDescriptor->natts);
	return true;
}

static void
receiver_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
receiver_shutdown(DestReceiver *self)
{
}

static ParamListInfo
params_of(int n, Oid *types, Datum *values)
{
	ParamListInfo params = makeParamList(n);
	int			i;

	for (i = 0; i < n; i++)
	{
		params->params[i].ptype = types[i];
		params->params[i].value = values[i];
		params->params[i].isnull = false;
		params->params[i].pflags = PARAM_FLAG_CONST;
	}
	return params;
}

/* Run a kept plan, handing each row to fn. */
static void
run_streaming(IndexRuntime *ix, SPIPlanPtr plan, int n, Oid *types, Datum *values,
			  FlussoRowFn fn, void *arg)
{
	RowReceiver receiver = {{receive_row, receiver_startup, receiver_shutdown,
	receiver_shutdown, DestTuplestore}, fn, arg};
	SPIExecuteOptions options;
	FlussoRights rights;
	int			rc;

	memset(&options, 0, sizeof(options));
	options.params = params_of(n, types, values);
	options.read_only = true;
	options.dest = (DestReceiver *) &receiver;
	flusso_index_rights_enter(ix, &rights);
	rc = SPI_execute_plan_extended(plan, &options);
	flusso_rights_restore(&rights);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "a generated statement of index \"%s\" failed: %s", ix->name,
			 SPI_result_code_string(rc));
}

typedef struct RunArgs
{
	IndexRuntime *ix;
	List	   *ids;			/* build: the document ids */
	List	   *cursor;			/* backfill: after this key (NIL: from the start) */
	int			limit;
	FlussoRowFn fn;
	void	   *arg;
	FlussoWatch *watch;			/* resolve */
	List	   *images;
	FlussoKeySet *keys;
	List	  **out_ids;		/* backfill keys */
	int64		count;
} RunArgs;

static void
run_build(void *arg)
{
	RunArgs    *a = arg;

	run_streaming(a->ix, a->ix->build_plan, a->ix->nkeys, flusso_sql_array_types(a->ix->nkeys),
				  flusso_keyset_params(a->ids, a->ix->nkeys), a->fn, a->arg);
}

bool
flusso_run_build(IndexRuntime *ix, List *ids, FlussoRowFn fn, void *arg, FlussoError *error)
{
	RunArgs		a = {.ix = ix,.ids = ids,.fn = fn,.arg = arg};

	return flusso_guard(run_build, &a, error);
}

/*
 * The parameters of a keyset page: the cursor's key columns, then the
 * limit (their types: flusso_sql_backfill_types()).
 */
static Datum *
page_params(RunArgs *a)
{
	Datum	   *values = palloc(sizeof(Datum) * (a->ix->nkeys + 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, a->cursor)
		values[n++] = CStringGetTextDatum(lfirst(lc));
	values[n] = Int32GetDatum(a->limit);
	return values;
}

static void
run_backfill(void *arg)
{
	RunArgs    *a = arg;
	int			n;
	Oid		   *types = flusso_sql_backfill_types(a->ix->def, a->cursor == NIL, &n);

	run_streaming(a->ix, a->cursor == NIL ? a->ix->backfill_first_plan : a->ix->backfill_next_plan,
				  n, types, page_params(a), a->fn, a->arg);
}

bool
flusso_run_backfill(IndexRuntime *ix, List *cursor, int limit, FlussoRowFn fn, void *arg,
					FlussoError *error)
{
	RunArgs		a = {.ix = ix,.cursor = cursor,.limit = limit,.fn = fn,.arg = arg};

	return flusso_guard(run_backfill, &a, error);
}

/*
 * The ids of a backfill page, without building anything and without the
 * root filter: when a page cannot be built, its documents are built one
 * group at a time to find the one that fails.
 */
static void
run_backfill_keys(void *arg)
{
	RunArgs    *a = arg;
	int			n;
	Oid		   *types = flusso_sql_backfill_types(a->ix->def, a->cursor == NIL, &n);
	FlussoRights rights;
	MemoryContext cxt = CurrentMemoryContext;
	uint64		r;
	int			rc;

	flusso_index_rights_enter(a->ix, &rights);
	rc = SPI_execute_with_args(flusso_sql_backfill_keys(a->ix->def, a->cursor == NIL),
							   n, types, page_params(a), NULL, true, 0);
	flusso_rights_restore(&rights);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the keys of a backfill page of index \"%s\"", a->ix->name);
	for (r = 0; r < SPI_processed; r++)
	{
		char	   *id = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		*a->out_ids = lappend(*a->out_ids, pstrdup(id));
		MemoryContextSwitchTo(old);
	}
}

bool
flusso_run_backfill_keys(IndexRuntime *ix, List *cursor, int limit, List **ids,
						 FlussoError *error)
{
	RunArgs		a = {.ix = ix,.cursor = cursor,.limit = limit,.out_ids = ids};

	*ids = NIL;
	return flusso_guard(run_backfill_keys, &a, error);
}

static int
watch_number(IndexRuntime *ix, FlussoWatch *w)
{
	ListCell   *lc;
	int			i = 0;

	foreach(lc, ix->watches)
	{
		if (lfirst(lc) == w)
			return i;
		i++;
	}
	elog(ERROR, "unknown watch");
	return -1;
}

static void
run_resolve(void *arg)
{
	RunArgs    *a = arg;
	FlussoRights rights;

	flusso_index_rights_enter(a->ix, &rights);
	flusso_resolve(a->watch, a->ix->resolve_plans[watch_number(a->ix, a->watch)],
				   a->images, a->keys, a->ix->nkeys);
	flusso_rights_restore(&rights);
}

bool
flusso_run_resolve(IndexRuntime *ix, FlussoWatch *w, List *images, FlussoKeySet *keys,
				   FlussoError *error)
{
	RunArgs		a = {.ix = ix,.watch = w,.images = images,.keys = keys};

	return flusso_guard(run_resolve, &a, error);
}

static void
run_count(void *arg)
{
	RunArgs    *a = arg;
	FlussoRights rights;
	bool		isnull;
	int			rc;

	flusso_index_rights_enter(a->ix, &rights);
	rc = SPI_execute(flusso_sql_count(a->ix->def), true, 1);
	flusso_rights_restore(&rights);
	if (rc == SPI_OK_SELECT && SPI_processed == 1)
		a->count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

bool
flusso_run_count(IndexRuntime *ix, int64 *count, FlussoError *error)
{
	RunArgs		a = {.ix = ix};
	bool		ok = flusso_guard(run_count, &a, error);

	*count = a.count;
	return ok;
}

/* ---- probes: which part of a definition a document fails in ---- */

typedef struct ProbeArgs
{
	IndexRuntime *ix;
	char	   *sql;
	List	   *ids;
} ProbeArgs;

static void
run_probe(void *arg)
{
	ProbeArgs  *a = arg;
	FlussoRights rights;
	int			rc;

	flusso_index_rights_enter(a->ix, &rights);
	rc = SPI_execute_with_args(a->sql, a->ix->nkeys, flusso_sql_array_types(a->ix->nkeys),
							   flusso_keyset_params(a->ids, a->ix->nkeys), NULL, true, 0);
	flusso_rights_restore(&rights);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "a probe of index \"%s\" failed", a->ix->name);
}

/* Does this probe fail for the document? */
static bool
probe_fails(IndexRuntime *ix, const char *id, DefNode *node, const char *text,
			FlussoProbeKind kind)
{
	ProbeArgs	a = {ix, flusso_sql_probe(ix->def, node, text, kind), list_make1((char *) id)};
	FlussoError error;

	return !flusso_guard(run_probe, &a, &error);
}

static char *
path_of(const char *base, const char *key)
{
	return base[0] ? psprintf("%s.%s", base, key) : pstrdup(key);
}

char *
flusso_run_probes(IndexRuntime *ix, const char *id)
{
	ListCell   *lc;

	foreach(lc, flusso_def_nodes(ix->def))
	{
		DefNode    *node = lfirst(lc);
		ListCell   *fc;

		if (node->filter && probe_fails(ix, id, node, node->filter, PROBE_FILTER))
			return path_of(node->path, "filter");
		foreach(fc, node->fields)
		{
			DefField   *f = lfirst(fc);

			if (f->expr && probe_fails(ix, id, node, f->expr, PROBE_VALUE))
				return psprintf("%s.expr", f->path);
		}
		if (node->value && probe_fails(ix, id, node, node->value, PROBE_VALUE))
			return path_of(node->path, "value");
		if (node->order_by && probe_fails(ix, id, node, node->order_by, PROBE_ORDER))
			return path_of(node->path, "order_by");
	}
	return NULL;
}
