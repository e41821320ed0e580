/*-------------------------------------------------------------------------
 *
 * indexes.c
 *	  The sync worker's view of each index: compiled definition, prepared
 *	  plans, generations and build progress, kept durable in
 *	  flusso.index_state.
 *
 * An index has a live generation (the physical OpenSearch index its alias
 * points at) and, while it is being (re)built, a build generation that a
 * keyset-paginated backfill fills.  The first build of an index is its live
 * generation from the start (the alias points at it at once); a rebuild
 * (reindex, TRUNCATE, a transaction too big to capture, a changed
 * definition) fills a new generation while live changes keep flowing to
 * both, then swaps the alias in one request and drops the old one.
 *
 * Every build has a version: the WAL position at which it was registered.
 * Live changes decoded after that position carry higher versions, so they
 * always win over backfilled documents.  Rows changed by transactions still
 * running at registration would be missed by both the backfill's snapshot
 * and the decoder, so a build waits for them to end before reading rows.
 *
 * This file owns IndexRuntime and flusso.index_state; the engine drives it.
 * It must not run an index's statements itself (indexrun.c does, guarded)
 * nor send documents (ship.c does).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "base/guard.h"
#include "base/rights.h"
#include "base/settings.h"
#include "definition/mapping.h"
#include "definition/sqlgen.h"
#include "definition/stored.h"
#include "pipeline/indexes.h"
#include "pipeline/indexrun.h"
#include "status/status.h"

#define REMOTE_BACKOFF_MIN_MS 100

char *
flusso_index_physical(IndexRuntime *ix, int generation)
{
	return psprintf("%s_%d", ix->name, generation);
}

bool
flusso_index_active(IndexRuntime *ix)
{
	return ix->def != NULL && !ix->stopped && !ix->paused;
}

/* ---- retrying remote steps (Backoff) ---- */

/* After a failure: not again before a wait that doubles up to flusso.retry_max_interval. */
static void
back_off(Backoff *b, TimestampTz now)
{
	b->ms = b->ms == 0 ? REMOTE_BACKOFF_MIN_MS : Min(b->ms * 2, flusso_retry_max_interval);
	b->retry_at = TimestampTzPlusMilliseconds(now, b->ms);
}

static void
backoff_clear(Backoff *b)
{
	b->ms = 0;
	b->retry_at = 0;
}

/* Milliseconds until the step may be tried again (0: now). */
static long
backoff_wait_ms(const Backoff *b)
{
	return Max(0, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), b->retry_at));
}

/* ---- compiling ---- */

/* Prepare and keep a plan; SPI leaves us in its own context, so come back. */
static SPIPlanPtr
keep_plan(const char *sql, int nargs, Oid *types)
{
	MemoryContext cxt = CurrentMemoryContext;
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	MemoryContextSwitchTo(cxt);

	if (plan == NULL)
		elog(ERROR, "could not prepare a generated statement: %s",
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep a generated statement");
	return plan;
}

void
flusso_index_free(IndexRuntime *ix)
{
	int			i;

	if (ix->build_plan)
		SPI_freeplan(ix->build_plan);
	if (ix->backfill_first_plan)
		SPI_freeplan(ix->backfill_first_plan);
	if (ix->backfill_next_plan)
		SPI_freeplan(ix->backfill_next_plan);
	for (i = 0; ix->resolve_plans && i < list_length(ix->watches); i++)
		if (ix->resolve_plans[i])
			SPI_freeplan(ix->resolve_plans[i]);
	ix->build_plan = ix->backfill_first_plan = ix->backfill_next_plan = NULL;
	ix->resolve_plans = NULL;
}

typedef struct CompileArgs
{
	IndexRuntime *ix;
	const char *json;
	MemoryContext cxt;
} CompileArgs;

/*
 * Compile the definition and prepare its statements, with the rights of the
 * index's owner (the lookups and the rewrite see what the owner may see).
 */
static void
compile(void *arg)
{
	CompileArgs *a = arg;
	IndexRuntime *ix = a->ix;
	MemoryContext old = MemoryContextSwitchTo(a->cxt);
	FlussoRights rights;
	Oid		   *types;
	int			nargs;
	ListCell   *lc;
	int			i;

	flusso_index_rights_enter(ix, &rights);
	ix->def = flusso_definition_compile(ix->name, a->json, false);
	ix->def->owner = ix->owner;
	ix->nkeys = list_length(ix->def->key);
	ix->watches = flusso_sql_watches(ix->def);
	ix->body = flusso_index_body(ix->def, MyBgworkerEntry ? MyBgworkerEntry->bgw_extra : NULL, 0);
	ix->build_plan = keep_plan(flusso_sql_build(ix->def), ix->nkeys,
							   flusso_sql_array_types(ix->nkeys));
	types = flusso_sql_backfill_types(ix->def, true, &nargs);
	ix->backfill_first_plan = keep_plan(flusso_sql_backfill(ix->def, true), nargs, types);
	types = flusso_sql_backfill_types(ix->def, false, &nargs);
	ix->backfill_next_plan = keep_plan(flusso_sql_backfill(ix->def, false), nargs, types);
	ix->resolve_plans = palloc0(sizeof(SPIPlanPtr) * list_length(ix->watches));
	i = 0;
	foreach(lc, ix->watches)
	{
		FlussoWatch *w = lfirst(lc);

		if (w->resolve_sql)
			ix->resolve_plans[i] = keep_plan(w->resolve_sql, w->ncols,
											 flusso_sql_array_types(w->ncols));
		i++;
	}
	flusso_rights_restore(&rights);
	MemoryContextSwitchTo(old);
}

void
flusso_index_compile(IndexRuntime *ix, const char *json, MemoryContext cxt)
{
	CompileArgs args = {ix, json, cxt};
	FlussoError error;

	flusso_index_free(ix);
	ix->def = NULL;
	ix->watches = NIL;
	ix->def_json = MemoryContextStrdup(cxt, json);
	flusso_observer->on_index_owner(ix->name, ix->owner);
	if (flusso_guard(compile, &args, &error))
	{
		char	   *problem = flusso_index_access_problem(ix);

		ix->broken = NULL;
		ix->no_access = false;
		if (problem)
			flusso_index_no_access(ix, problem);	/* flusso.role, say: at once, not at the next build */
		return;
	}
	flusso_index_free(ix);
	ix->def = NULL;
	ix->watches = NIL;
	if (error.sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE)
	{
		flusso_index_no_access(ix, error.message);
		return;
	}
	ix->broken = MemoryContextStrdup(cxt, error.message);
	flusso_index_set_error(ix, psprintf("index \"%s\" cannot sync: %s (fix it with flusso.alter_index)",
										ix->name, error.message), false);
}

/*
 * The index may not read a table any more (its owner lost a grant, or
 * flusso.role may not): it stops, saying what to grant; the others go on.
 */
void
flusso_index_no_access(IndexRuntime *ix, const char *problem)
{
	ix->no_access = true;
	flusso_index_set_error(ix, psprintf("index \"%s\" cannot be read with the rights of its owner \"%s\": %s; grant what is missing, then run flusso.resume('%s')",
										ix->name, flusso_role_name(ix->owner), problem, ix->name),
						   true);
}

/* ---- durable state ---- */

static List *
text_array_list(Datum d)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	List	   *out = NIL;

	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (i = 0; i < n; i++)
		out = lappend(out, nulls[i] ? NULL : TextDatumGetCString(elems[i]));
	return out;
}

static Datum
list_text_array(List *l)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(1, list_length(l)));
	ListCell   *lc;
	int			i = 0;

	foreach(lc, l)
		elems[i++] = CStringGetTextDatum(lfirst(lc));
	return PointerGetDatum(construct_array(elems, i, TEXTOID, -1, false, TYPALIGN_INT));
}

void
flusso_index_load_state(IndexRuntime *ix)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(ix->name)};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	if (SPI_execute_with_args("SELECT live_definition::text, live_generation, build_generation, "
							  "build_version, build_cursor, build_done, build_total, paused, "
							  "stopped, last_error, build_definition::text "
							  "FROM flusso.index_state WHERE name = $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read flusso.index_state");
	if (SPI_processed == 0)
		return;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	ix->live_def_json = SPI_getvalue(tup, desc, 1);
	ix->live_gen = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	ix->build_gen = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	d = SPI_getbinval(tup, desc, 4, &isnull);
	ix->build_version = isnull ? InvalidXLogRecPtr : DatumGetLSN(d);
	d = SPI_getbinval(tup, desc, 5, &isnull);
	ix->build_cursor = isnull ? NIL : text_array_list(d);
	ix->next_cursor = ix->build_cursor;
	ix->build_done = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
	ix->build_total = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
	ix->paused = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
	ix->stopped = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
	ix->error = SPI_getvalue(tup, desc, 10);
	ix->build_def_json = SPI_getvalue(tup, desc, 11);
}

void
flusso_index_save_state(IndexRuntime *ix)
{
	Oid			types[12] = {TEXTOID, TEXTOID, INT4OID, INT4OID, LSNOID, TEXTARRAYOID,
	INT8OID, INT8OID, BOOLOID, BOOLOID, TEXTOID, TEXTOID};
	Datum		values[12];
	char		nulls[12];

	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(ix->name);
	values[1] = ix->live_def_json ? CStringGetTextDatum(ix->live_def_json) : (Datum) 0;
	nulls[1] = ix->live_def_json ? ' ' : 'n';
	values[2] = Int32GetDatum(ix->live_gen);
	values[3] = Int32GetDatum(ix->build_gen);
	values[4] = LSNGetDatum(ix->build_version);
	nulls[4] = ix->build_version == InvalidXLogRecPtr ? 'n' : ' ';
	values[5] = list_text_array(ix->build_cursor);
	nulls[5] = ix->build_cursor == NIL ? 'n' : ' ';
	values[6] = Int64GetDatum(ix->build_done);
	values[7] = Int64GetDatum(ix->build_total);
	values[8] = BoolGetDatum(ix->paused);
	values[9] = BoolGetDatum(ix->stopped);
	values[10] = ix->error ? CStringGetTextDatum(ix->error) : (Datum) 0;
	nulls[10] = ix->error ? ' ' : 'n';
	values[11] = ix->build_def_json ? CStringGetTextDatum(ix->build_def_json) : (Datum) 0;
	nulls[11] = ix->build_def_json ? ' ' : 'n';
	if (SPI_execute_with_args("INSERT INTO flusso.index_state AS s (name, live_definition, live_generation, "
							  "build_generation, build_version, build_cursor, build_done, build_total, "
							  "paused, stopped, last_error, build_definition) "
							  "VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb) "
							  "ON CONFLICT (name) DO UPDATE SET live_definition = EXCLUDED.live_definition, "
							  "live_generation = EXCLUDED.live_generation, build_generation = EXCLUDED.build_generation, "
							  "build_version = EXCLUDED.build_version, build_cursor = EXCLUDED.build_cursor, "
							  "build_done = EXCLUDED.build_done, build_total = EXCLUDED.build_total, "
							  "paused = EXCLUDED.paused, stopped = EXCLUDED.stopped, "
							  "last_error = EXCLUDED.last_error, build_definition = EXCLUDED.build_definition, "
							  "updated_at = now()",
							  12, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not save flusso.index_state for \"%s\"", ix->name);
	ix->dirty = false;
	ix->saved_at = GetCurrentTimestamp();
}

void
flusso_index_delete_state(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	if (SPI_execute_with_args("DELETE FROM flusso.index_state WHERE name = $1",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from flusso.index_state");
}

/* ---- builds ---- */

/*
 * The estimate shown while a build runs.  Failing to count (a table the
 * owner may not read) is not fatal here: the backfill reports it.
 */
static int64
count_rows(IndexRuntime *ix)
{
	FlussoError error;
	int64		count;

	return flusso_run_count(ix, &count, &error) ? count : 0;
}

/* Remember the transactions running now: the build waits for them. */
static void
note_running(IndexRuntime *ix, MemoryContext cxt)
{
	Snapshot	snap = GetLatestSnapshot();

	if (ix->wait_xids)
		pfree(ix->wait_xids);	/* the previous build's */
	ix->nwait = snap->xcnt;
	ix->wait_xids = MemoryContextAlloc(cxt, sizeof(TransactionId) * Max(1, snap->xcnt));
	memcpy(ix->wait_xids, snap->xip, sizeof(TransactionId) * snap->xcnt);
}

/* Remember a generation to drop in the sink, in the index's own memory. */
static void
drop_later(IndexRuntime *ix, int generation)
{
	MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(ix));

	ix->drop_gens = lappend_int(ix->drop_gens, generation);
	MemoryContextSwitchTo(old);
}

/*
 * Free the backfill chunks of the build and their keys.  A chunk whose
 * requests are still in flight stays allocated unless all (its requests
 * were dropped): eng_chunk_acked() frees it when they complete, as a chunk
 * of a generation no longer built.
 */
void
flusso_index_free_chunks(IndexRuntime *ix, bool all)
{
	ListCell   *lc;

	foreach(lc, ix->chunks)
	{
		BackfillChunk *chunk = lfirst(lc);

		if (chunk->pending > 0 && !all)
			continue;
		list_free_deep(chunk->last_key);
		pfree(chunk);
	}
	list_free(ix->chunks);
	ix->chunks = NIL;
}

/* The build's keys go (the chunks hold next_cursor, if it is not build_cursor). */
static void
free_build_keys(IndexRuntime *ix)
{
	flusso_index_free_chunks(ix, false);
	list_free_deep(ix->build_cursor);
	ix->build_cursor = ix->next_cursor = NIL;
}

static void
clear_error(IndexRuntime *ix)
{
	if (ix->error)
		pfree(ix->error);
	ix->error = NULL;
}

/*
 * Show the phase the index is in, derived from its state alone: stopped,
 * paused (while a build started before the pause goes on and finishes),
 * backfilling its first generation, rebuilding behind the alias, seeded.
 */
void
flusso_index_report_phase(IndexRuntime *ix)
{
	FlussoIndexPhase phase;

	if (ix->stopped)
		phase = FLUSSO_INDEX_STOPPED;
	else if (ix->paused)
		phase = FLUSSO_INDEX_PAUSED;
	else if (ix->build_gen != 0 && ix->build_gen == ix->live_gen)
		phase = FLUSSO_INDEX_BACKFILLING;
	else if (ix->build_gen != 0)
		phase = FLUSSO_INDEX_REBUILDING;
	else
		phase = FLUSSO_INDEX_SEEDED;
	flusso_observer->on_index_phase(ix->name, phase);
}

void
flusso_index_start_build(IndexRuntime *ix, XLogRecPtr lsn, const char *why)
{
	MemoryContext cxt = GetMemoryChunkContext(ix);
	int			gen = Max(ix->live_gen, ix->build_gen) + 1;
	bool		first = ix->live_gen == 0 || ix->live_gen == ix->build_gen;

	if (ix->build_gen != 0)
		drop_later(ix, ix->build_gen);
	if (first && ix->live_gen != 0 && ix->live_gen != ix->build_gen)
		drop_later(ix, ix->live_gen);
	if (first)
		ix->live_gen = gen;
	ix->build_gen = gen;
	ix->build_def_json = ix->def_json;
	ix->build_fresh = true;
	ix->build_version = lsn;
	free_build_keys(ix);
	ix->build_done = 0;
	ix->build_total = ix->def ? count_rows(ix) : 0;
	ix->build_exhausted = false;
	ix->stopped = false;
	clear_error(ix);
	ix->remote_ready = false;
	backoff_clear(&ix->remote_backoff);
	backoff_clear(&ix->finish_backoff);
	note_running(ix, cxt);
	ix->dirty = true;
	flusso_index_report_phase(ix);
	flusso_observer->on_generations(ix->name, ix->live_gen, ix->build_gen);
	flusso_observer->on_backfill_progress(ix->name, 0, ix->build_total);
	ereport(LOG,
			(errmsg("flusso index \"%s\": building generation %d (%s) from %X/%X, about " INT64_FORMAT " documents",
					ix->name, gen, why, LSN_FORMAT_ARGS(lsn), ix->build_total)));
}

bool
flusso_index_build_ready(IndexRuntime *ix)
{
	int			i;

	for (i = 0; i < ix->nwait; i++)
	{
		if (TransactionIdIsInProgress(ix->wait_xids[i]))
			return false;
	}
	ix->nwait = 0;
	return true;
}

void
flusso_index_set_error(IndexRuntime *ix, const char *message, bool stop)
{
	flusso_index_set_error_public(ix, message, NULL, stop);
}

void
flusso_index_set_error_public(IndexRuntime *ix, const char *message,
							  const char *public_message, bool stop)
{
	MemoryContext cxt = GetMemoryChunkContext(ix);

	/* the same error again is counted, but the durable state is unchanged */
	if (ix->error == NULL || strcmp(ix->error, message) != 0)
	{
		char	   *previous = ix->error;

		ix->error = MemoryContextStrdup(cxt, message);
		if (previous)
			pfree(previous);
		ix->dirty = true;
	}
	if (stop && !ix->stopped)
	{
		ix->stopped = true;
		ix->dirty = true;
		flusso_observer->on_index_phase(ix->name, FLUSSO_INDEX_STOPPED);
		ereport(LOG, (errmsg("flusso index \"%s\" stopped: %s", ix->name, message)));
	}
	flusso_observer->on_error(ix->name, message, public_message);
}

/* ---- waiting for locks ---- */

/* The first table of the index that another session holds a conflicting lock on. */
static char *
locked_table(IndexRuntime *ix)
{
	ListCell   *lc;

	foreach(lc, ix->watches)
	{
		Oid			relid = ((FlussoWatch *) lfirst(lc))->relid;

		if (!ConditionalLockRelationOid(relid, AccessShareLock))
			return psprintf("a lock on table %s",
							quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
													   get_rel_name(relid)));
		UnlockRelationOid(relid, AccessShareLock);
	}
	return pstrdup("a lock");
}

void
flusso_index_lock_wait(IndexRuntime *ix)
{
	MemoryContext cxt = GetMemoryChunkContext(ix);
	TimestampTz now = GetCurrentTimestamp();
	char	   *what = locked_table(ix);

	if (ix->waiting_for == NULL || strcmp(ix->waiting_for, what) != 0)
	{
		if (ix->waiting_for == NULL)
			ix->waiting_since = now;
		else
			pfree(ix->waiting_for);
		ix->waiting_for = MemoryContextStrdup(cxt, what);
		flusso_observer->on_index_waiting(ix->name, ix->waiting_for, ix->waiting_since);
		ereport(LOG,
				(errmsg("flusso index \"%s\" waits for %s; the other indexes go on", ix->name, what),
				 errdetail("Its statements gave up after flusso.lock_timeout (%d ms); they are tried again with a backoff.",
						   flusso_lock_timeout)));
	}
	back_off(&ix->lock_backoff, now);
}

bool
flusso_index_lock_waiting(IndexRuntime *ix)
{
	return ix->waiting_for != NULL && GetCurrentTimestamp() < ix->lock_backoff.retry_at;
}

long
flusso_index_lock_wait_ms(IndexRuntime *ix)
{
	return ix->waiting_for == NULL ? -1 : backoff_wait_ms(&ix->lock_backoff);
}

void
flusso_index_lock_granted(IndexRuntime *ix)
{
	if (ix->waiting_for == NULL)
		return;
	ereport(LOG, (errmsg("flusso index \"%s\" got %s after waiting %ld ms", ix->name,
						 ix->waiting_for,
						 TimestampDifferenceMilliseconds(ix->waiting_since, GetCurrentTimestamp()))));
	pfree(ix->waiting_for);
	ix->waiting_for = NULL;
	backoff_clear(&ix->lock_backoff);
	flusso_observer->on_index_waiting(ix->name, NULL, 0);
}

/* ---- the remote side ---- */

static bool
prepare(IndexRuntime *ix, const FlussoSink *sink, int gen, bool *created)
{
	bool		permanent;
	char	   *physical = flusso_index_physical(ix, gen);
	char	   *error = sink->prepare_index(physical, ix->body, ix->name, created, &permanent);

	/*
	 * A generation started in this run must start empty: an index of ours
	 * left with that name (a dropped index, a restored database) goes.
	 */
	if (error == NULL && !*created && gen == ix->build_gen && ix->build_fresh)
	{
		ereport(LOG, (errmsg("flusso index \"%s\": dropping a leftover \"%s\" before building it",
							 ix->name, physical)));
		error = sink->drop_index(physical, ix->name);
		if (error == NULL)
			error = sink->prepare_index(physical, ix->body, ix->name, created, &permanent);
	}
	if (error)
		flusso_index_set_error(ix, error, permanent);
	else if (gen == ix->build_gen)
		ix->build_fresh = false;
	return error == NULL;
}

static bool
prepare_remote(IndexRuntime *ix, const FlussoSink *sink)
{
	bool		created = false;

	if (ix->live_gen && !prepare(ix, sink, ix->live_gen, &created))
		return false;
	if (created && ix->live_gen != ix->build_gen && ix->build_gen == 0)
	{
		/* the live generation vanished from OpenSearch: build it anew */
		ix->rebuild_needed = true;
	}
	if (ix->live_gen && ix->live_gen == ix->build_gen)
	{
		char	   *error = sink->point_alias(ix->name, flusso_index_physical(ix, ix->live_gen));

		if (error)
		{
			flusso_index_set_error(ix, error, false);
			return false;
		}
	}
	if (ix->build_gen && ix->build_gen != ix->live_gen &&
		!prepare(ix, sink, ix->build_gen, &created))
		return false;
	ix->remote_ready = true;
	if (ix->error && !ix->stopped)
	{
		clear_error(ix);
		ix->dirty = true;
	}
	return true;
}


/*
 * Are the index's generations there in OpenSearch (created, alias set)?
 * Prepares them if not; after a failure, tries again only after a backoff
 * that doubles up to flusso.retry_max_interval.
 */
bool
flusso_index_ensure_remote(IndexRuntime *ix, const FlussoSink *sink)
{
	TimestampTz now;

	if (ix->remote_ready)
		return true;
	now = GetCurrentTimestamp();
	if (ix->def == NULL || now < ix->remote_backoff.retry_at)
		return false;
	if (prepare_remote(ix, sink))
	{
		backoff_clear(&ix->remote_backoff);
		return true;
	}
	back_off(&ix->remote_backoff, now);
	return false;
}

/* How long until the index's generations should be prepared (ms); -1: nothing to do. */
long
flusso_index_remote_wait_ms(IndexRuntime *ix)
{
	if (ix->remote_ready || ix->def == NULL || !flusso_index_active(ix))
		return -1;
	return backoff_wait_ms(&ix->remote_backoff);
}

/* Is every row of the build acknowledged, so that only the alias swap is left? */
bool
flusso_index_build_complete(IndexRuntime *ix)
{
	return ix->build_gen != 0 && ix->build_exhausted && ix->chunks == NIL && !ix->stopped;
}

/* How long until a complete build should try its swap again (ms); -1: nothing to do. */
long
flusso_index_finish_wait_ms(IndexRuntime *ix)
{
	if (!flusso_index_active(ix) || !flusso_index_build_complete(ix))
		return -1;
	return backoff_wait_ms(&ix->finish_backoff);
}

/*
 * The build is complete: point the alias at it (a first build's alias
 * points there already: that makes it all searchable).  A failed swap is
 * tried again by the engine after a backoff that doubles up to
 * flusso.retry_max_interval; the build stays complete meanwhile.
 */
bool
flusso_index_finish_build(IndexRuntime *ix, const FlussoSink *sink)
{
	int			old = ix->live_gen;
	TimestampTz now = GetCurrentTimestamp();
	char	   *error;

	if (now < ix->finish_backoff.retry_at)
		return false;
	error = sink->point_alias(ix->name, flusso_index_physical(ix, ix->build_gen));
	if (error)
	{
		flusso_index_set_error(ix, psprintf("moving the alias to generation %d failed: %s",
											ix->build_gen, error), false);
		back_off(&ix->finish_backoff, now);
		return false;
	}
	if (ix->finish_backoff.ms != 0 && ix->error && !ix->stopped)
	{
		clear_error(ix);		/* the failed swap's, most likely */
		ix->dirty = true;
	}
	backoff_clear(&ix->finish_backoff);
	if (ix->build_gen != old)
	{
		/* dropped once no write for it is in flight (flusso_index_drop_retired) */
		drop_later(ix, old);
		ix->live_gen = ix->build_gen;
	}
	else
		sink->drop_leftovers(ix->name, MyBgworkerEntry ? MyBgworkerEntry->bgw_extra : NULL,
							 flusso_index_physical(ix, ix->live_gen));
	ereport(LOG,
			(errmsg("flusso index \"%s\": generation %d is live with " INT64_FORMAT " documents backfilled",
					ix->name, ix->live_gen, ix->build_done)));
	ix->build_gen = 0;
	if (ix->next_cursor != ix->build_cursor)
		list_free_deep(ix->next_cursor);	/* past the last row: no chunk holds it */
	free_build_keys(ix);
	ix->build_version = InvalidXLogRecPtr;
	ix->live_def_json = ix->build_def_json ? ix->build_def_json : ix->def_json;
	ix->build_def_json = NULL;
	ix->build_fresh = false;
	ix->dirty = true;
	flusso_index_report_phase(ix);
	flusso_observer->on_generations(ix->name, ix->live_gen, 0);
	flusso_observer->on_backfill_progress(ix->name, ix->build_done, ix->build_done);
	return true;
}

/*
 * Drop the retired generations no write is on its way to (in_use says).
 * OpenSearch creates a missing index when a write for it arrives, so a
 * generation dropped while a write for it was in flight would be made
 * again, with dynamic mappings, and left behind.  A failed drop is tried
 * again after a backoff that doubles up to flusso.retry_max_interval.
 */
void
flusso_index_drop_retired(IndexRuntime *ix, const FlussoSink *sink,
						  bool (*in_use) (void *arg, IndexRuntime *ix, int generation),
						  void *arg)
{
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext old;
	List	   *keep = NIL;
	ListCell   *lc;

	if (now < ix->drop_backoff.retry_at)
		return;
	foreach(lc, ix->drop_gens)
	{
		int			gen = lfirst_int(lc);
		char	   *error = NULL;

		/* never the generations in use (numbers only grow: a safeguard) */
		if (gen == ix->live_gen || gen == ix->build_gen)
			continue;
		if (!in_use(arg, ix, gen) &&
			(error = sink->drop_index(flusso_index_physical(ix, gen), ix->name)) == NULL)
		{
			backoff_clear(&ix->drop_backoff);
			continue;
		}
		old = MemoryContextSwitchTo(GetMemoryChunkContext(ix));
		keep = lappend_int(keep, gen);
		MemoryContextSwitchTo(old);
		if (error)
		{
			ereport(LOG, (errmsg("flusso index \"%s\": %s; trying again later", ix->name, error)));
			back_off(&ix->drop_backoff, now);
		}
	}
	list_free(ix->drop_gens);
	ix->drop_gens = keep;
}
