/*-------------------------------------------------------------------------
 *
 * loader.c
 *	  What the pipeline syncs: definitions, watches, requests, DDL.
 *
 * What the pipeline syncs.  Loading reads every definition and its
 * durable state (flusso.index_state), compiles it, and decides what each
 * index must do given where the stream stands (settle_index: start a
 * build, resume one, or go on).  A reload happens when a control change
 * (a definition created, altered or dropped, a row in flusso.requests) or
 * DDL on a watched table has been decoded and the pipeline has drained,
 * so the new definitions apply from an exact WAL position.  Watches tell
 * capture which tables and columns the indexes read.  Reindex requests
 * from backends arrive through shared memory (take_requests).
 *
 * It must not send anything: starting a build only records it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "capture/ddlwatch.h"
#include "pipeline/batches.h"
#include "pipeline/indexrun.h"
#include "pipeline/loader.h"
#include "sink/choose.h"
#include "status/status.h"

/* ---- watches ---- */

static CaptureRel *
rel_for(List **rels, Oid relid, MemoryContext cxt)
{
	ListCell   *lc;
	CaptureRel *cr;

	foreach(lc, *rels)
		if (((CaptureRel *) lfirst(lc))->relid == relid)
			return lfirst(lc);
	cr = MemoryContextAllocZero(cxt, sizeof(CaptureRel));
	cr->relid = relid;
	cr->columns = MemoryContextAlloc(cxt, sizeof(char *) * 32);
	*rels = lappend(*rels, cr);
	return cr;
}

static int
column_pos(CaptureRel *cr, const char *column)
{
	int			i;

	for (i = 0; i < cr->ncols; i++)
		if (strcmp(cr->columns[i], column) == 0)
			return i;
	if (cr->ncols % 32 == 0 && cr->ncols > 0)
		cr->columns = repalloc(cr->columns, sizeof(char *) * (cr->ncols + 32));
	cr->columns[cr->ncols] = pstrdup(column);
	return cr->ncols++;
}

/*
 * Tell capture which tables and columns the indexes read.  Stopped and
 * paused indexes are watched too (their changes are dropped when resolved):
 * a reindex or resume may bring them back between two reloads, and from
 * that point on no change of theirs may be missing.
 */
static void
remember_tables(List *rels)
{
	List	   *relids = NIL;
	ListCell   *lc;

	foreach(lc, rels)
		relids = lappend_oid(relids, ((CaptureRel *) lfirst(lc))->relid);
	flusso_ddl_remember(relids);
}

static void
set_watches(Engine *eng)
{
	MemoryContext old = MemoryContextSwitchTo(eng->cxt);
	List	   *rels = NIL;
	int			i;

	for (i = 0; i < eng->nix; i++)
	{
		IndexRuntime *ix = eng->ix[i];
		ListCell   *lc;

		if (ix->def == NULL)
			continue;
		foreach(lc, ix->watches)
		{
			FlussoWatch *w = lfirst(lc);
			CaptureRel *cr = rel_for(&rels, w->relid, eng->cxt);
			CaptureUse *use = palloc0(sizeof(CaptureUse));
			int			c;

			use->index = i;
			use->watch = w;
			use->pos = palloc(sizeof(int) * w->ncols);
			for (c = 0; c < w->ncols; c++)
				use->pos[c] = column_pos(cr, w->columns[c]);
			cr->watches = lappend(cr->watches, use);
		}
	}
	MemoryContextSwitchTo(old);
	flusso_capture_set_watches(rels, eng->definitions_relid, eng->requests_relid);
	remember_tables(rels);
}

/* ---- loading and reloading ---- */

static IndexRuntime *
add_index(Engine *eng, const char *name, const char *json, Oid owner, bool fresh)
{
	MemoryContext old = MemoryContextSwitchTo(eng->cxt);
	IndexRuntime *ix = palloc0(sizeof(IndexRuntime));

	ix->name = pstrdup(name);
	ix->owner = owner;
	ix->num = eng->nix;
	eng->ix = eng->ix ? repalloc(eng->ix, sizeof(IndexRuntime *) * (eng->nix + 1)) :
		palloc(sizeof(IndexRuntime *));
	eng->ix[eng->nix++] = ix;
	MemoryContextSwitchTo(old);
	if (!fresh)					/* a recreated index: its old state is gone */
		flusso_index_load_state(ix);
	ix->live_def_json = ix->live_def_json ? MemoryContextStrdup(eng->cxt, ix->live_def_json) : NULL;
	ix->build_def_json = ix->build_def_json ? MemoryContextStrdup(eng->cxt, ix->build_def_json) : NULL;
	ix->error = ix->error ? MemoryContextStrdup(eng->cxt, ix->error) : NULL;
	if (ix->build_cursor)
	{
		List	   *copy = NIL;
		ListCell   *lc;

		old = MemoryContextSwitchTo(eng->cxt);
		foreach(lc, ix->build_cursor)
			copy = lappend(copy, pstrdup(lfirst(lc)));
		ix->build_cursor = ix->next_cursor = copy;
		MemoryContextSwitchTo(old);
	}
	flusso_index_compile(ix, json, eng->cxt);
	return ix;
}

/* Decide what a freshly loaded index must do, given where the stream stands. */
static void
settle_index(Engine *eng, IndexRuntime *ix, XLogRecPtr lsn, bool reloaded, bool fresh_slot)
{
	if (ix->def == NULL)
	{
		flusso_observer->on_index_phase(ix->name, FLUSSO_INDEX_STOPPED);
		return;
	}
	if (ix->no_access)
		;						/* stays stopped: a GRANT, then resume, builds it */
	else if (ix->live_gen == 0 && ix->build_gen == 0)
		flusso_index_start_build(ix, lsn, reloaded ? "new index" : "first start");
	else if (fresh_slot)
		flusso_index_start_build(ix, lsn, "the replication slot was missing or invalidated, so changes may have been missed");
	else if (ix->build_gen == 0 && ix->live_def_json &&
			 strcmp(ix->live_def_json, ix->def_json) != 0)
		flusso_index_start_build(ix, lsn, "definition changed");
	else if (ix->build_gen != 0 && ix->build_def_json &&
			 strcmp(ix->build_def_json, ix->def_json) != 0)
		flusso_index_start_build(ix, lsn, "definition changed during the build");
	else if (ix->build_gen != 0)
	{
		Snapshot	snap = GetLatestSnapshot();

		ix->nwait = snap->xcnt;
		ix->wait_xids = MemoryContextAlloc(eng->cxt, sizeof(TransactionId) * Max(1, snap->xcnt));
		memcpy(ix->wait_xids, snap->xip, sizeof(TransactionId) * snap->xcnt);
	}
	flusso_index_report_phase(ix);
	flusso_observer->on_generations(ix->name, ix->live_gen, ix->build_gen);
	if (ix->build_gen)
		flusso_observer->on_backfill_progress(ix->name, ix->build_done, ix->build_total);
}

/* One generation of a dropped index; one try: the definition is gone already. */
static void
drop_generation(Engine *eng, IndexRuntime *tmp, int gen)
{
	char	   *physical = flusso_index_physical(tmp, gen);
	char	   *error = eng->sink->drop_index(physical, tmp->name);

	if (error)
		ereport(WARNING,
				(errmsg("flusso index \"%s\" is dropped, but its OpenSearch index is left: %s",
						tmp->name, error),
				 errhint("Delete it in OpenSearch by hand (DELETE /%s); a new index of that name drops it before building.",
						 physical)));
}

static void
drop_remote(Engine *eng, const char *name)
{
	IndexRuntime tmp;

	memset(&tmp, 0, sizeof(tmp));
	tmp.name = (char *) name;
	flusso_index_load_state(&tmp);
	if (tmp.live_gen)
		drop_generation(eng, &tmp, tmp.live_gen);
	if (tmp.build_gen && tmp.build_gen != tmp.live_gen)
		drop_generation(eng, &tmp, tmp.build_gen);
	/* and the generations retired but not yet dropped (their writes were in flight) */
	eng->sink->drop_leftovers(name, MyBgworkerEntry ? MyBgworkerEntry->bgw_extra : NULL, "");
}

static void
queue_dead_letters(Engine *eng, IndexRuntime *ix, XLogRecPtr lsn)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(ix->name)};
	LiveBatch  *b;
	MemoryContext old;
	uint64		i;

	/* they stay until OpenSearch acknowledges their documents (ship.c settles them) */
	if (SPI_execute_with_args("SELECT l.document_id FROM flusso.dead_letters l "
							  "WHERE l.index_name OPERATOR(pg_catalog.=) $1",
							  1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read flusso.dead_letters");
	if (SPI_processed == 0)
		return;
	/* confirmed like a live batch: wait_synced() waits for it (its end is confirmed already) */
	b = eng_new_batch(eng, lsn, true);
	old = MemoryContextSwitchTo(b->cxt);
	for (i = 0; i < SPI_processed; i++)
		b->ids[ix->num] = lappend(b->ids[ix->num],
								  SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	MemoryContextSwitchTo(old);
	ereport(LOG, (errmsg("flusso index \"%s\": retrying " UINT64_FORMAT " dead letters",
						 ix->name, SPI_processed)));
}

/* A row of flusso.requests. */
typedef struct Request
{
	int64		id;
	char	   *name;
	char	   *action;
} Request;

static bool
is_drop(const Request *r)
{
	return strcmp(r->action, "drop") == 0 || strcmp(r->action, "drop_remote") == 0;
}

/*
 * The pending requests, read with the snapshot the definitions are read
 * with: a request and the definition change made in the same transaction
 * (drop_index deletes the definition and asks for the drop) are always
 * seen together, or not at all.
 */
static List *
read_requests(void)
{
	List	   *requests = NIL;
	uint64		i;

	if (SPI_execute("SELECT r.id, r.name, r.action FROM flusso.requests r ORDER BY r.id",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read flusso.requests");
	for (i = 0; i < SPI_processed; i++)
	{
		Request    *r = palloc(sizeof(Request));
		bool		isnull;

		r->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		r->name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		r->action = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);
		requests = lappend(requests, r);
	}
	return requests;
}

/* An index was dropped: its OpenSearch side (when asked) and its state go. */
static void
drop_index(Engine *eng, const Request *r)
{
	bool		remote = strcmp(r->action, "drop_remote") == 0;

	if (remote)
		drop_remote(eng, r->name);
	flusso_index_delete_state(r->name);
	if (SPI_execute_with_args("DELETE FROM flusso.dead_letters WHERE index_name OPERATOR(pg_catalog.=) $1",
							  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(r->name)},
							  NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from flusso.dead_letters");
	ereport(LOG, (errmsg("flusso index \"%s\" dropped%s", r->name,
						 remote ? " here and in OpenSearch" : "")));
}

/*
 * Drops of indexes whose name is defined again (dropped, then created
 * again before the worker saw the drop): the old one goes before the new
 * one is loaded, so the new one starts from nothing, not from the old
 * one's state (its deletion is not visible to this transaction's snapshot:
 * the names are returned, and their state is not read).
 */
static List *
drop_recreated(Engine *eng, List *requests, List *rows)
{
	List	   *fresh = NIL;
	ListCell   *lc;

	foreach(lc, requests)
	{
		Request    *r = lfirst(lc);
		ListCell   *rc;

		if (!is_drop(r))
			continue;
		foreach(rc, rows)
		{
			if (strcmp(linitial(lfirst(rc)), r->name) == 0)
			{
				drop_index(eng, r);
				r->action = "done";
				fresh = lappend(fresh, r->name);
				break;
			}
		}
	}
	return fresh;
}

static bool
name_in(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
	{
		if (strcmp(lfirst(lc), name) == 0)
			return true;
	}
	return false;
}

static void
handle_request(Engine *eng, const Request *r, XLogRecPtr lsn)
{
	IndexRuntime *ix = eng_find_index(eng, r->name);

	if (is_drop(r))
	{
		drop_index(eng, r);
		flusso_status_forget_index(MyDatabaseId, r->name);
		return;
	}
	if (ix == NULL || ix->def == NULL)
		return;
	if (strcmp(r->action, "reindex") == 0)
		flusso_index_start_build(ix, lsn, "reindex requested");
	else if (strcmp(r->action, "pause") == 0 && !ix->paused)
	{
		ix->paused = ix->dirty = true;
		flusso_index_report_phase(ix);
	}
	else if (strcmp(r->action, "resume") == 0 && (ix->paused || ix->stopped))
	{
		ix->paused = false;
		flusso_index_start_build(ix, lsn, "resumed");
	}
	else if (strcmp(r->action, "retry_dead_letters") == 0)
		queue_dead_letters(eng, ix, lsn);
}

/* Handle the requests in order, then delete exactly those. */
static void
handle_requests(Engine *eng, List *requests, XLogRecPtr lsn)
{
	Datum	   *ids = palloc(sizeof(Datum) * Max(1, list_length(requests)));
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		values[1];
	ListCell   *lc;
	int			n = 0;

	foreach(lc, requests)
	{
		Request    *r = lfirst(lc);

		if (strcmp(r->action, "done") != 0)
			handle_request(eng, r, lsn);
		ids[n++] = Int64GetDatum(r->id);
	}
	if (n == 0)
		return;
	values[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (SPI_execute_with_args("DELETE FROM flusso.requests WHERE id OPERATOR(pg_catalog.=) ANY ($1)",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from flusso.requests");
}

void
eng_forget_indexes(Engine *eng)
{
	int			i;

	/* capture's watch list lives in eng->cxt: drop it before the memory goes */
	flusso_capture_set_watches(NIL, eng->definitions_relid, eng->requests_relid);
	for (i = 0; i < eng->nix; i++)
		flusso_index_free(eng->ix[i]);
	eng->ix = NULL;
	eng->nix = 0;
	MemoryContextReset(eng->cxt);
}

static void
sync_status(Engine *eng)
{
	List	   *names = NIL;
	int			i;

	for (i = 0; i < eng->nix; i++)
		names = lappend(names, eng->ix[i]->name);
	flusso_status_sync_indexes(MyDatabaseId, names);
}

/* Which indexes have dead letters (their documents, once acknowledged, settle them). */
static void
mark_dead_letters(Engine *eng)
{
	uint64		i;

	if (SPI_execute("SELECT DISTINCT l.index_name FROM flusso.dead_letters l", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read flusso.dead_letters");
	for (i = 0; i < SPI_processed; i++)
	{
		IndexRuntime *ix = eng_find_index(eng, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));

		if (ix)
			ix->has_dead_letters = true;
	}
}

/*
 * Load every definition and its durable state; the stream stands at lsn
 * and nothing is in flight (a reload waits for the pipeline to drain).
 */
static void
load_definitions(Engine *eng, XLogRecPtr lsn, bool reloaded, bool fresh_slot)
{
	List	   *rows = NIL;
	List	   *requests;
	List	   *fresh;
	ListCell   *lc;
	uint64		i;

	flusso_index_resolve_role();
	if (SPI_execute("SELECT d.name, d.definition::pg_catalog.text, d.owner::pg_catalog.oid "
					"FROM flusso.definitions d ORDER BY d.name", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read flusso.definitions");
	for (i = 0; i < SPI_processed; i++)
		rows = lappend(rows, list_make3(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
										SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2),
										SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3)));
	requests = read_requests();
	eng_forget_indexes(eng);
	fresh = drop_recreated(eng, requests, rows);
	foreach(lc, rows)
	{
		IndexRuntime *ix = add_index(eng, linitial(lfirst(lc)), lsecond(lfirst(lc)),
									 atooid(lthird(lfirst(lc))),
									 name_in(fresh, linitial(lfirst(lc))));

		settle_index(eng, ix, lsn, reloaded, fresh_slot);
	}
	mark_dead_letters(eng);
	handle_requests(eng, requests, lsn);
	eng_save_dirty(eng);
	sync_status(eng);
}

bool
eng_drained(Engine *eng)
{
	int			i;

	if (!dlist_is_empty(&eng->batches) || eng->in_flight > 0 || eng->nretries > 0)
		return false;
	for (i = 0; i < eng->nix; i++)
		if (eng->ix[i]->chunks != NIL)
			return false;
	return true;
}

void
eng_reload(Engine *eng, XLogRecPtr lsn)
{
	eng_begin_work(eng, "flusso: reloading definitions");
	load_definitions(eng, lsn, true, false);
	set_watches(eng);
	eng_end_work(eng);
}

/*
 * Make sure the slot exists.  A slot that is missing while indexes have
 * state (a failover, or someone dropped it) or whose WAL was removed
 * (max_slot_wal_keep_size) cannot tell what changed since: returns true,
 * and every index is rebuilt.
 */
static bool
ensure_slot(void)
{
	SlotState	state = flusso_capture_slot_state();
	MemoryContext caller = CurrentMemoryContext;
	char	   *why;

	if (state == SLOT_OK)
		return false;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	flusso_observer->on_activity("creating the replication slot");
	if (state == SLOT_INVALIDATED)
		flusso_capture_drop_slot();
	(void) flusso_capture_create_slot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);	/* the commit left TopMemoryContext current */
	if (state == SLOT_INVALIDATED)
	{
		why = psprintf("replication slot \"%s\" was invalidated: the WAL it needed was removed (max_slot_wal_keep_size)",
					   flusso_capture_slot_name());
		ereport(WARNING,
				(errmsg("flusso: %s; it was created again, and every index is rebuilt", why)));
		flusso_observer->on_error(NULL, why, NULL);
	}
	return true;
}

void
eng_load(Engine *eng)
{
	Oid			nsp;
	MemoryContext caller = CurrentMemoryContext;
	bool		fresh_slot;

	flusso_observer->on_phase(FLUSSO_PHASE_STARTING);
	eng_reset_pipeline(eng);
	flusso_capture_close();
	eng->sink = flusso_sink();
	fresh_slot = ensure_slot();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	flusso_capture_drop_stale_slots(false, psprintf("flusso.slot_name is \"%s\" now",
												   flusso_capture_slot_name()));
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);	/* the commit left TopMemoryContext current */
	flusso_capture_open();
	eng_begin_work(eng, "flusso: loading definitions");
	nsp = get_namespace_oid("flusso", false);
	eng->definitions_relid = get_relname_relid("definitions", nsp);
	eng->requests_relid = get_relname_relid("requests", nsp);
	load_definitions(eng, flusso_capture_confirmed(), false, fresh_slot);
	set_watches(eng);
	eng_end_work(eng);
	eng->loaded = true;
	ereport(LOG, (errmsg("flusso is syncing %d index(es) from slot \"%s\" at %X/%X into %s",
						 eng->nix, flusso_capture_slot_name(),
						 LSN_FORMAT_ARGS(flusso_capture_confirmed()), eng->sink->name)));
}

/* Copy strings into a list in TopMemoryContext: requests outlive steps and reloads. */
static List *
copy_requests(List *to, List *from)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	ListCell   *lc;

	foreach(lc, from)
		to = lappend(to, pstrdup(lfirst(lc)));
	MemoryContextSwitchTo(old);
	return to;
}

/* flusso.wait_synced(refresh => true): every live index made searchable now. */
static char *
refresh_all(Engine *eng)
{
	char	   *error = NULL;
	int			i;

	for (i = 0; i < eng->nix && error == NULL; i++)
	{
		if (flusso_index_active(eng->ix[i]) && eng->ix[i]->live_gen != 0)
			error = eng->sink->refresh(eng->ix[i]->name);
	}
	return error;
}

/*
 * Requests from backends, through shared memory: reindex (an index name),
 * refresh (no name).
 */
void
eng_take_requests(Engine *eng)
{
	ListCell   *lc;
	List	   *keep = NIL;
	bool		caught_up = eng->reload_lsn == InvalidXLogRecPtr && flusso_capture_round()->reached_end;

	eng->requests = copy_requests(eng->requests, flusso_status_take_requests(MyDatabaseId));
	if (eng->requests == NIL)
		return;
	eng_begin_work(eng, "flusso: reindex requested");
	foreach(lc, eng->requests)
	{
		char	   *req = lfirst(lc);
		uint32		id = (uint32) strtoul(req, NULL, 10);
		char	   *name = strchr(req, ' ') + 1;
		IndexRuntime *ix = eng_find_index(eng, name);

		if (name[0] == '\0')
			flusso_status_finish_request(id, 0, refresh_all(eng));
		else if (ix && ix->def && ix->paused)
			flusso_status_finish_request(id, 0, psprintf("index \"%s\" is paused; flusso.resume('%s') rebuilds it",
														 name, name));
		else if (ix && ix->def)
		{
			flusso_index_start_build(ix, flusso_capture_round()->end_lsn, "reindex requested");
			flusso_status_finish_request(id, ix->build_gen, NULL);
		}
		else if (ix || caught_up)
			flusso_status_finish_request(id, 0, ix ? ix->broken : "the index does not exist");
		else
			keep = lappend(keep, req);	/* created but not loaded yet */
	}
	keep = copy_requests(NIL, keep);
	list_free_deep(eng->requests);
	eng->requests = keep;
	eng_save_dirty(eng);
	eng_end_work(eng);
}

/*
 * A watched table was altered (renamed, a column dropped...): close the
 * round and reload, so the definitions are compiled again by name.
 */
void
eng_check_ddl(Engine *eng)
{
	bool		changed;

	if (!flusso_ddl_touched() || eng->ddl_reload || eng->reload_lsn != InvalidXLogRecPtr)
		return;
	eng_begin_work(eng, "flusso: checking altered tables");
	changed = flusso_ddl_changed();
	eng_end_work(eng);
	if (!changed)
		return;
	ereport(LOG, (errmsg("flusso: a table an index reads was altered; the definitions are checked again")));
	eng->ddl_reload = true;
}
