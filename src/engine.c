/*-------------------------------------------------------------------------
 *
 * engine.c
 *	  The sync pipeline of one database: capture, resolve, build, ship, ack.
 *
 * The worker calls flusso_engine_step() once per loop.  A step
 *	1. collects finished bulk requests, applies retries and failure
 *	   policies, and confirms the slot up to the newest live batch whose
 *	   every document OpenSearch acknowledged (batches confirm in order);
 *	2. while fewer than flusso.queue_capacity requests are in flight, builds
 *	   and sends the next chunk of documents of the oldest live batch, or
 *	   decodes more WAL, closing a round into a live batch when it holds
 *	   flusso.batch_size images, when flusso.flush_interval passed, or at
 *	   once when nothing else is in flight;
 *	3. with room left, builds and sends the next backfill chunk of an
 *	   index being (re)built.
 * Closing a round resolves its images to document keys, deduplicated, in
 * one transaction that first waits until every decoded transaction is
 * visible.  Each chunk of keys is then built by the index's prepared build
 * statement in its own transaction.  Documents are versioned by the WAL
 * position of their batch (or of their build), so OpenSearch keeps the
 * newest whatever order requests complete in.
 *
 * Control changes (a definition created, altered or dropped, a request
 * such as reindex) end the round at the commit that made them; the engine
 * then reloads, and the new definitions apply to every change after it.
 *
 * Error handling: a failed step (the worker catches it) drops everything in
 * flight and closes the decoding context; the next step reopens the slot
 * at its confirmed position and replays.  Nothing acknowledged is lost,
 * nothing unacknowledged was confirmed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "capture.h"
#include "catalog.h"
#include "ddlwatch.h"
#include "engine.h"
#include "flusso.h"
#include "guard.h"
#include "indexes.h"
#include "opensearch.h"
#include "resolve.h"
#include "settings.h"
#include "sink.h"
#include "status.h"

/* The documents of one closed round (or of a dead-letter retry). */
typedef struct LiveBatch
{
	dlist_node	node;
	MemoryContext cxt;
	XLogRecPtr	end_lsn;		/* version, and where to confirm */
	bool		confirm;		/* false for dead-letter retries */
	int64		nchanges;
	List	  **ids;			/* per index: document ids to build */
	int		   *done;			/* per index: how many are built */
	int			next_index;
	int			pending;		/* requests not yet acknowledged */
	bool		built;
	int64		documents;
	FlussoIndexBatchStats *stats;
	double		flush_ms;
	TimestampTz oldest_commit;	/* of its oldest change, for lag */
} LiveBatch;

typedef struct Engine
{
	bool		loaded;
	const FlussoSink *sink;
	MemoryContext cxt;			/* index runtimes: reset on reload */
	MemoryContext batches_cxt;
	IndexRuntime **ix;
	int			nix;
	Oid			definitions_relid;
	Oid			requests_relid;
	dlist_head	batches;		/* live batches, oldest first */
	BulkRequest *retries;		/* waiting for their backoff */
	int			nretries;
	int			in_flight;
	TimestampTz round_started;
	TimestampTz next_lag_poll;
	XLogRecPtr	marker_lsn;
	int64		captured_reported;
	bool		os_failing;
	TimestampTz last_log;
	List	   *dead_letters;	/* rows to insert, in cxt */
	int			backfill_turn;
	XLogRecPtr	reload_lsn;		/* a control change waits for the pipeline to drain */
	TimestampTz lag_warned_at;
	List	   *requests;		/* reindex requests not handled yet */
	bool		ddl_reload;		/* a watched table was altered: reload at round end */
} Engine;

static Engine E;

static void reload(XLogRecPtr lsn);
static void reset_pipeline(void);
static void take_requests(void);
static void check_ddl(void);
static void rebuild_vanished(void);
static void report_lag(void);

/* ---- transactions ---- */

static void
begin_work(const char *what)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

static void
end_work(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* ---- small helpers ---- */

static bool
room(void)
{
	return E.in_flight + E.nretries < flusso_queue_capacity;
}

/* Is some index's build able to send a chunk now? */
static bool
build_waiting(void)
{
	int			i;

	for (i = 0; i < E.nix; i++)
	{
		IndexRuntime *ix = E.ix[i];

		if (flusso_index_active(ix) && ix->build_gen != 0 && !ix->build_exhausted &&
			ix->nwait == 0 && ix->remote_ready)
			return true;
	}
	return false;
}

/*
 * Live changes come first, but while a build waits they leave it one place
 * in the queue, so a rebuild finishes even under a constant live load.
 */
static bool
room_for_live(void)
{
	int			reserve = flusso_queue_capacity > 1 && E.reload_lsn == InvalidXLogRecPtr &&
		build_waiting() ? 1 : 0;

	return E.in_flight + E.nretries < flusso_queue_capacity - reserve;
}

static IndexRuntime *
find_index(const char *name)
{
	int			i;

	for (i = 0; i < E.nix; i++)
		if (strcmp(E.ix[i]->name, name) == 0)
			return E.ix[i];
	return NULL;
}

static void
log_limited(int level, const char *fmt, const char *arg)
{
	TimestampTz now = GetCurrentTimestamp();

	if (!TimestampDifferenceExceeds(E.last_log, now, 10000))
		return;
	E.last_log = now;
	ereport(level, (errmsg(fmt, flusso_redact(arg))));
}

static long
backoff_ms(int attempts)
{
	double		base = 100.0 * (1 << Min(attempts, 16));
	double		cap = Min(base, (double) flusso_retry_max_interval);

	return (long) (cap * (0.5 + 0.5 * pg_prng_double(&pg_global_prng_state)));
}

static void
save_dirty(void)
{
	int			i;

	for (i = 0; i < E.nix; i++)
		if (E.ix[i]->dirty)
			flusso_index_save_state(E.ix[i]);
}

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
set_watches(void)
{
	MemoryContext old = MemoryContextSwitchTo(E.cxt);
	List	   *rels = NIL;
	int			i;

	for (i = 0; i < E.nix; i++)
	{
		IndexRuntime *ix = E.ix[i];
		ListCell   *lc;

		if (ix->def == NULL)
			continue;
		foreach(lc, ix->watches)
		{
			FlussoWatch *w = lfirst(lc);
			CaptureRel *cr = rel_for(&rels, w->relid, E.cxt);
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
	flusso_capture_set_watches(rels, E.definitions_relid, E.requests_relid);
	remember_tables(rels);
}

/* ---- batches ---- */

static LiveBatch *
new_batch(XLogRecPtr end_lsn, bool confirm)
{
	MemoryContext cxt = AllocSetContextCreate(E.batches_cxt, "flusso live batch",
											  ALLOCSET_DEFAULT_SIZES);
	LiveBatch  *b = MemoryContextAllocZero(cxt, sizeof(LiveBatch));

	b->cxt = cxt;
	b->end_lsn = end_lsn;
	b->confirm = confirm;
	b->ids = MemoryContextAllocZero(cxt, sizeof(List *) * Max(1, E.nix));
	b->done = MemoryContextAllocZero(cxt, sizeof(int) * Max(1, E.nix));
	b->stats = MemoryContextAllocZero(cxt, sizeof(FlussoIndexBatchStats) * Max(1, E.nix));
	dlist_push_tail(&E.batches, &b->node);
	return b;
}

static void
report_batch(LiveBatch *b)
{
	FlussoBatchStats stats;
	int			i;

	for (i = 0; i < E.nix; i++)
		b->stats[i].index = E.ix[i]->name;
	stats.changes = b->nchanges;
	stats.documents = b->documents;
	stats.flush_ms = b->flush_ms;
	stats.acked_lsn = b->confirm ? b->end_lsn : InvalidXLogRecPtr;
	stats.nindexes = E.nix;
	stats.indexes = b->stats;
	if (b->documents > 0 || b->nchanges > 0)
		flusso_observer->on_batch_committed(&stats);
	else if (b->confirm)
		flusso_observer->on_caught_up(b->end_lsn);
}

/* Confirm the slot through every leading batch that is fully acknowledged. */
static void
confirm_done_batches(void)
{
	while (!dlist_is_empty(&E.batches))
	{
		LiveBatch  *b = dlist_head_element(LiveBatch, node, &E.batches);

		if (!b->built || b->pending > 0)
			break;
		dlist_pop_head_node(&E.batches);
		if (b->confirm)
			flusso_capture_confirm(b->end_lsn);
		report_batch(b);
		MemoryContextDelete(b->cxt);
	}
}

static LiveBatch *
unbuilt_batch(void)
{
	dlist_iter	it;

	dlist_foreach(it, &E.batches)
	{
		LiveBatch  *b = dlist_container(LiveBatch, node, it.cur);

		if (!b->built)
			return b;
	}
	return NULL;
}

/* ---- sending ---- */

static void
send_request(BulkRequest *req)
{
	E.sink->send(req);
	E.in_flight++;
}

static void
owner_add_pending(BulkRequest *req, int n)
{
	if (req->kind == BULK_BACKFILL)
		((BackfillChunk *) req->owner)->pending += n;
	else
		((LiveBatch *) req->owner)->pending += n;
}

/* Put documents of one index into requests of at most batch_size / batch_bytes. */
typedef struct Builder
{
	BulkOwnerKind kind;
	void	   *owner;
	MemoryContext cxt;
	List	   *requests;
	BulkRequest *current;
} Builder;

static BulkRequest *
builder_request(Builder *bld, size_t adding)
{
	BulkRequest *r = bld->current;

	if (r == NULL || r->nitems >= flusso_batch_size ||
		(r->nitems > 0 && r->body.len + adding > (size_t) flusso_batch_bytes))
	{
		r = flusso_bulk_create(bld->cxt, bld->kind, bld->owner);
		bld->requests = lappend(bld->requests, r);
		bld->current = r;
	}
	return r;
}

static void
dead_letter(IndexRuntime *ix, int generation, const char *id, const char *error,
			const char *doc, size_t doclen)
{
	MemoryContext old = MemoryContextSwitchTo(E.cxt);
	List	   *row = list_make5(pstrdup(ix->name), pstrdup(id), psprintf("%d", generation),
								 pstrdup(error), doc ? pnstrdup(doc, doclen) : NULL);

	E.dead_letters = lappend(E.dead_letters, row);
	MemoryContextSwitchTo(old);
}

static void reject(IndexRuntime *ix, int generation, const char *id, const char *error,
				   const char *doc, size_t doclen);

/* One built document (doc NULL: a delete) to every generation that takes it. */
static void
builder_add(Builder *bld, IndexRuntime *ix, const char *id, const char *doc, uint64 version,
			bool build_only)
{
	int			gens[2] = {build_only ? 0 : ix->live_gen, ix->build_gen};
	size_t		len = doc ? strlen(doc) : 0;
	int			g;

	if (len + 256 > (size_t) flusso_batch_bytes)
	{
		reject(ix, gens[0] ? gens[0] : gens[1], id,
			   psprintf("the document is %zu bytes, more than flusso.batch_bytes (%d)",
						len, flusso_batch_bytes), doc, len);
		return;
	}
	for (g = 0; g < 2; g++)
	{
		if (gens[g] == 0 || (g == 1 && gens[1] == gens[0]))
			continue;
		flusso_bulk_add(builder_request(bld, len + 256), ix->num,
						flusso_index_physical(ix, gens[g]), gens[g], id, version, doc);
	}
}

static int
builder_send(Builder *bld)
{
	ListCell   *lc;
	int			n = 0;

	foreach(lc, bld->requests)
	{
		BulkRequest *r = lfirst(lc);

		if (r->nitems == 0)
		{
			flusso_bulk_free(r);
			continue;
		}
		owner_add_pending(r, 1);
		send_request(r);
		n++;
	}
	return n;
}

/* ---- failure policies ---- */

static int
policy_of(IndexRuntime *ix)
{
	return ix->def && ix->def->on_error >= 0 ? ix->def->on_error : flusso_on_error;
}

static void
reject(IndexRuntime *ix, int generation, const char *id, const char *error,
	   const char *doc, size_t doclen)
{
	char	   *message = psprintf("document \"%s\" of index \"%s\" rejected: %s", id, ix->name, error);

	switch (policy_of(ix))
	{
		case FLUSSO_ON_ERROR_STOP:
			flusso_index_set_error(ix, message, true);
			break;
		case FLUSSO_ON_ERROR_SKIP:
			flusso_observer->on_error(ix->name, message);
			log_limited(LOG, "flusso skipped a document: %s", message);
			break;
		case FLUSSO_ON_ERROR_DEAD_LETTER:
			flusso_observer->on_error(ix->name, message);
			dead_letter(ix, generation, id, error, doc, doclen);
			break;
	}
}

static void
flush_dead_letters(void)
{
	ListCell   *lc;

	if (E.dead_letters == NIL)
		return;
	foreach(lc, E.dead_letters)
	{
		List	   *row = lfirst(lc);
		Oid			types[5] = {TEXTOID, TEXTOID, INT4OID, TEXTOID, TEXTOID};
		Datum		values[5];
		char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

		values[0] = CStringGetTextDatum(list_nth(row, 0));
		values[1] = CStringGetTextDatum(list_nth(row, 1));
		values[2] = Int32GetDatum(atoi(list_nth(row, 2)));
		values[3] = CStringGetTextDatum(list_nth(row, 3));
		nulls[4] = list_nth(row, 4) ? ' ' : 'n';
		values[4] = list_nth(row, 4) ? CStringGetTextDatum(list_nth(row, 4)) : (Datum) 0;
		if (SPI_execute_with_args("INSERT INTO flusso.dead_letters (index_name, document_id, generation, error, body) "
								  "VALUES ($1, $2, $3, $4, $5)", 5, types, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert into flusso.dead_letters");
	}
	E.dead_letters = NIL;
}

/* ---- completions ---- */

static void
schedule_retry(BulkRequest *req)
{
	req->attempts++;
	req->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff_ms(req->attempts));
	req->next = E.retries;
	E.retries = req;
	E.nretries++;
}

static void
note_opensearch(BulkRequest *req)
{
	if (req->whole_retry && req->failure)
	{
		if (!E.os_failing)
			flusso_observer->on_opensearch(FLUSSO_OS_UNREACHABLE, NULL, req->failure);
		flusso_observer->on_error(NULL, req->failure);
		log_limited(LOG, "flusso: %s; retrying with backoff", req->failure);
		E.os_failing = true;
	}
	else if (E.os_failing && !req->whole_retry)
	{
		E.os_failing = false;
		(void) flusso_os_ping();
	}
}

static bool
is_retry(BulkItem *item)
{
	return item->outcome == BULK_ITEM_RETRY;
}

static void chunk_acked(BackfillChunk *chunk);

static void
owner_done_one(BulkRequest *req)
{
	if (req->kind == BULK_BACKFILL)
	{
		BackfillChunk *chunk = req->owner;

		if (--chunk->pending == 0 && chunk->built)
			chunk_acked(chunk);
		return;
	}
	((LiveBatch *) req->owner)->pending--;
	((LiveBatch *) req->owner)->flush_ms += req->elapsed_ms;
}

/*
 * An item that failed because its physical index is gone: the generation
 * was dropped after a swap (nothing to do), or someone deleted the index
 * (rebuild it).  Either way the item itself is settled.
 */
static void
settle_missing_index(IndexRuntime *ix, BulkItem *item)
{
	if (item->generation == ix->live_gen || item->generation == ix->build_gen)
	{
		ix->remote_ready = false;
		ix->rebuild_needed = true;
	}
	item->outcome = BULK_ITEM_OK;
}

static void
count_items(BulkRequest *req)
{
	int			i;

	for (i = 0; i < req->nitems; i++)
	{
		BulkItem   *item = &req->items[i];
		IndexRuntime *ix = item->index < E.nix ? E.ix[item->index] : NULL;

		if (ix == NULL || item->outcome == BULK_ITEM_RETRY)
			continue;
		if (item->outcome == BULK_ITEM_REJECTED && item->status == 404 &&
			item->error && strstr(item->error, "index_not_found_exception"))
			settle_missing_index(ix, item);
		if (item->outcome == BULK_ITEM_REJECTED)
			reject(ix, item->generation, item->id, item->error,
				   req->body.data + item->doc, item->is_delete ? 0 : item->end - item->doc - 1);
		if (req->kind != BULK_BACKFILL)
		{
			LiveBatch  *b = req->owner;
			FlussoIndexBatchStats *s = &b->stats[item->index];

			if (item->outcome == BULK_ITEM_REJECTED)
				s->failed++;
			else if (item->is_delete)
				s->deleted++;
			else
				s->upserted++;
		}
	}
}

static void
handle_done(BulkRequest *req)
{
	int			retry_items = 0;
	int			i;

	E.in_flight--;
	note_opensearch(req);
	if (!req->whole_retry)
		flusso_observer->on_bulk_latency(req->elapsed_ms);
	if (req->whole_retry)
	{
		schedule_retry(req);
		return;
	}
	if (req->too_large && req->nitems > 1)
	{
		BulkRequest *a = flusso_bulk_subset(req, NULL, 0, req->nitems / 2);
		BulkRequest *b = flusso_bulk_subset(req, NULL, req->nitems / 2, req->nitems);

		owner_add_pending(req, 1);
		schedule_retry(a);
		schedule_retry(b);
		flusso_bulk_free(req);
		return;
	}
	if (req->too_large)
	{
		req->items[0].outcome = BULK_ITEM_REJECTED;
		req->items[0].error = pstrdup("HTTP 413: the document is larger than OpenSearch's http.max_content_length");
	}
	count_items(req);
	for (i = 0; i < req->nitems; i++)
		retry_items += is_retry(&req->items[i]);
	if (retry_items > 0)
	{
		BulkRequest *sub;
		BulkItem   *first = req->items;

		while (!is_retry(first))
			first++;
		log_limited(LOG, "flusso: OpenSearch asked to retry documents (%s); retrying with backoff",
					psprintf("%d of %d, the first: HTTP %d %s", retry_items, req->nitems,
							 first->status, first->error ? first->error : ""));
		sub = flusso_bulk_subset(req, is_retry, 0, req->nitems);
		owner_add_pending(req, 1);
		schedule_retry(sub);
	}
	owner_done_one(req);
	flusso_bulk_free(req);
}

/* Write what completions left to record: dead letters, index state. */
static void
record_outcomes(void)
{
	int			i;
	bool		dirty = E.dead_letters != NIL;

	for (i = 0; i < E.nix && !dirty; i++)
		dirty = E.ix[i]->dirty;
	if (!dirty)
		return;
	begin_work("flusso: recording outcomes");
	flush_dead_letters();
	save_dirty();
	end_work();
}

static void
collect_completions(void)
{
	BulkRequest *req;

	while ((req = E.sink->next_done()) != NULL)
		handle_done(req);
	record_outcomes();
}

static void
send_due_retries(void)
{
	BulkRequest **p = &E.retries;
	TimestampTz now = GetCurrentTimestamp();

	while (*p)
	{
		BulkRequest *req = *p;

		if (req->not_before > now)
		{
			p = &req->next;
			continue;
		}
		*p = req->next;
		E.nretries--;
		req->next = NULL;
		send_request(req);
	}
}

static long
next_retry_ms(void)
{
	BulkRequest *req;
	long		best = -1;
	TimestampTz now = GetCurrentTimestamp();

	for (req = E.retries; req; req = req->next)
	{
		long		ms = Max(0, TimestampDifferenceMilliseconds(now, req->not_before));

		if (best < 0 || ms < best)
			best = ms;
	}
	return best;
}

/* ---- backfill ---- */

static void
save_progress(IndexRuntime *ix, bool force)
{
	if (!force && !TimestampDifferenceExceeds(ix->saved_at, GetCurrentTimestamp(), 1000))
		return;
	begin_work("flusso: saving backfill progress");
	flusso_index_save_state(ix);
	end_work();
}

static void
maybe_finish_build(IndexRuntime *ix)
{
	if (!ix->build_exhausted || ix->chunks != NIL || ix->build_gen == 0 || ix->stopped)
		return;
	if (flusso_index_finish_build(ix, E.sink))
		save_progress(ix, true);
}

/* A chunk is acknowledged: advance the durable cursor over leading acked chunks. */
static void
chunk_acked(BackfillChunk *chunk)
{
	IndexRuntime *ix = chunk->index;
	bool		advanced = false;

	if (chunk->generation != ix->build_gen)
	{
		pfree(chunk);
		return;					/* from a build that was restarted */
	}
	while (ix->chunks != NIL)
	{
		BackfillChunk *head = linitial(ix->chunks);

		if (head->pending > 0 || !head->built)
			break;
		ix->chunks = list_delete_first(ix->chunks);
		if (head->last_key)
			ix->build_cursor = head->last_key;
		ix->build_done += head->rows;
		advanced = true;
		pfree(head);
	}
	if (!advanced)
		return;
	ix->dirty = true;
	flusso_observer->on_backfill_progress(ix->name, ix->build_done, ix->build_total);
	if (ix->build_exhausted && ix->chunks == NIL)
		maybe_finish_build(ix);
	else
		save_progress(ix, false);
}

static List *
row_key(IndexRuntime *ix, HeapTuple tup, TupleDesc desc, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	List	   *key = NIL;
	int			i;

	for (i = 0; i < ix->nkeys; i++)
		key = lappend(key, SPI_getvalue(tup, desc, 3 + i));
	MemoryContextSwitchTo(old);
	return key;
}

static int
run_backfill_plan(IndexRuntime *ix)
{
	Datum	   *values = palloc(sizeof(Datum) * (ix->nkeys + 1));
	ListCell   *lc;
	int			i = 0;

	int			rc;

	if (ix->next_cursor == NIL)
		values[0] = Int32GetDatum(flusso_batch_size);
	else
	{
		foreach(lc, ix->next_cursor)
			values[i++] = CStringGetTextDatum(lfirst(lc));
		values[i] = Int32GetDatum(flusso_batch_size);
	}
	flusso_index_role_enter();
	rc = SPI_execute_plan(ix->next_cursor == NIL ? ix->backfill_first_plan : ix->backfill_next_plan,
						  values, NULL, true, 0);
	flusso_index_role_leave();
	return rc;
}

typedef struct ChunkArgs
{
	IndexRuntime *ix;
	BackfillChunk *chunk;
	Builder    *bld;
	MemoryContext cxt;
} ChunkArgs;

static void
build_chunk(void *arg)
{
	ChunkArgs  *a = arg;
	IndexRuntime *ix = a->ix;
	uint64		r;

	if (run_backfill_plan(ix) != SPI_OK_SELECT)
		elog(ERROR, "backfill statement failed");
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		char	   *doc = SPI_getvalue(tup, SPI_tuptable->tupdesc, 2);

		builder_add(a->bld, ix, SPI_getvalue(tup, SPI_tuptable->tupdesc, 1), doc,
					ix->build_version, true);
		if (r == SPI_processed - 1)
			a->chunk->last_key = ix->next_cursor = row_key(ix, tup, SPI_tuptable->tupdesc, a->cxt);
	}
	a->chunk->rows = (int64) SPI_processed;
	ix->build_exhausted = SPI_processed < (uint64) flusso_batch_size;
}

static void
backfill_chunk(IndexRuntime *ix)
{
	MemoryContext cxt = GetMemoryChunkContext(ix);
	BackfillChunk *chunk = MemoryContextAllocZero(cxt, sizeof(BackfillChunk));
	Builder		bld = {BULK_BACKFILL, chunk, E.batches_cxt, NIL, NULL};
	ChunkArgs	args = {ix, chunk, &bld, cxt};
	char	   *error;

	chunk->index = ix;
	chunk->generation = ix->build_gen;
	begin_work("flusso: backfill");
	if (!flusso_guard(build_chunk, &args, &error))
	{
		flusso_index_set_error(ix, psprintf("backfilling index \"%s\" failed: %s", ix->name, error), true);
		save_dirty();
		end_work();
		pfree(chunk);
		return;
	}
	flush_dead_letters();
	save_dirty();
	end_work();
	ix->chunks = lappend(ix->chunks, chunk);
	builder_send(&bld);
	chunk->built = true;
	if (chunk->pending == 0)
		chunk_acked(chunk);
}

/* Send one backfill chunk of some index being built; false if none could. */
static bool
backfill_step(void)
{
	int			n;

	for (n = 0; n < E.nix; n++)
	{
		IndexRuntime *ix = E.ix[(E.backfill_turn + n) % E.nix];

		if (!flusso_index_active(ix) || ix->build_gen == 0 || ix->build_exhausted ||
			!flusso_index_build_ready(ix) || !flusso_index_ensure_remote(ix, E.sink))
			continue;
		E.backfill_turn = (E.backfill_turn + n + 1) % E.nix;
		backfill_chunk(ix);
		return true;
	}
	return false;
}

/* ---- live batches ---- */

static int
run_build_plan(IndexRuntime *ix, List *ids)
{
	Datum	   *params = flusso_keyset_params(ids, ix->nkeys);
	int			rc;

	flusso_index_role_enter();
	rc = SPI_execute_plan(ix->build_plan, params, NULL, true, 0);
	flusso_index_role_leave();
	return rc;
}

typedef struct BuildArgs
{
	IndexRuntime *ix;
	List	   *ids;
	Builder    *bld;
	LiveBatch  *batch;
} BuildArgs;

static void
build_docs(void *arg)
{
	BuildArgs  *a = arg;
	uint64		r;

	if (run_build_plan(a->ix, a->ids) != SPI_OK_SELECT)
		elog(ERROR, "build statement failed");
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];

		builder_add(a->bld, a->ix, SPI_getvalue(tup, SPI_tuptable->tupdesc, 1),
					SPI_getvalue(tup, SPI_tuptable->tupdesc, 2), a->batch->end_lsn, false);
	}
	a->batch->documents += SPI_processed;
}

/* Build and send the next chunk of documents of a live batch. */
static bool
build_live_chunk(LiveBatch *b)
{
	while (b->next_index < E.nix)
	{
		int			i = b->next_index;
		IndexRuntime *ix = E.ix[i];
		List	   *chunk = NIL;
		Builder		bld = {BULK_LIVE, b, E.batches_cxt, NIL, NULL};
		BuildArgs	args = {ix, NIL, &bld, b};
		char	   *error;

		if (b->done[i] >= list_length(b->ids[i]) || !flusso_index_active(ix))
		{
			b->next_index++;
			continue;
		}
		if (!flusso_index_ensure_remote(ix, E.sink))
			return false;		/* try again later */
		while (b->done[i] < list_length(b->ids[i]) && list_length(chunk) < flusso_batch_size)
			chunk = lappend(chunk, list_nth(b->ids[i], b->done[i]++));
		args.ids = chunk;
		begin_work("flusso: building documents");
		if (!flusso_guard(build_docs, &args, &error))
			flusso_index_set_error(ix, psprintf("building documents of index \"%s\" failed: %s",
												ix->name, error), true);
		flush_dead_letters();
		save_dirty();
		end_work();
		builder_send(&bld);
		return true;
	}
	b->built = true;
	confirm_done_batches();
	return true;
}

/* ---- rounds ---- */

static void
wait_visible(CaptureRound *round)
{
	int			i;

	for (i = 0; i < round->nxids; i++)
		XactLockTableWait(round->xids[i], NULL, NULL, XLTW_None);
}

typedef struct ResolveArgs
{
	IndexRuntime *ix;
	FlussoWatch *watch;
	SPIPlanPtr	plan;
	List	   *images;
	FlussoKeySet *keys;
} ResolveArgs;

static void
resolve_guarded(void *arg)
{
	ResolveArgs *a = arg;

	flusso_index_role_enter();
	flusso_resolve(a->watch, a->plan, a->images, a->keys, a->ix->nkeys);
	flusso_index_role_leave();
}

static List *
use_images(CaptureRel *cr, CaptureUse *use)
{
	List	   *out = NIL;
	ListCell   *lc;

	foreach(lc, cr->images)
	{
		char	  **image = lfirst(lc);
		char	  **values = palloc(sizeof(char *) * use->watch->ncols);
		int			i;

		for (i = 0; i < use->watch->ncols; i++)
			values[i] = image[use->pos[i]];
		out = lappend(out, values);
	}
	return out;
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
resolve_rel(CaptureRel *cr, FlussoKeySet **keys)
{
	ListCell   *lc;

	foreach(lc, cr->watches)
	{
		CaptureUse *use = lfirst(lc);
		IndexRuntime *ix = E.ix[use->index];
		ResolveArgs args;
		char	   *error;

		if (!flusso_index_active(ix))
			continue;
		args.ix = ix;
		args.watch = use->watch;
		args.plan = ix->resolve_plans[watch_number(ix, use->watch)];
		args.images = use_images(cr, use);
		args.keys = keys[use->index];
		if (!flusso_guard(resolve_guarded, &args, &error))
			flusso_index_set_error(ix, psprintf("resolving changes of %s for index \"%s\" failed: %s",
												get_rel_name(cr->relid), ix->name, error), true);
	}
}

/* Resolve the round's images into the batch's document ids. */
static void
resolve_round(CaptureRound *round, LiveBatch *b)
{
	FlussoKeySet **keys = palloc(sizeof(FlussoKeySet *) * Max(1, E.nix));
	ListCell   *lc;
	int			i;

	for (i = 0; i < E.nix; i++)
		keys[i] = flusso_keyset_create(b->cxt);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	wait_visible(round);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "flusso: resolving changes");
	foreach(lc, flusso_capture_rels())
	{
		CaptureRel *cr = lfirst(lc);

		if (cr->images != NIL)
			resolve_rel(cr, keys);
	}
	save_dirty();
	end_work();
	for (i = 0; i < E.nix; i++)
		b->ids[i] = flusso_keyset_ids(keys[i]);
}

static void
start_rebuilds(CaptureRound *round)
{
	int			i;

	begin_work("flusso: starting rebuilds");
	for (i = 0; i < E.nix; i++)
	{
		IndexRuntime *ix = E.ix[i];
		ListCell   *lc;
		bool		hit = false;

		if (ix->def == NULL)
			continue;
		foreach(lc, ix->watches)
			hit |= list_member_oid(round->rebuild_relids, ((FlussoWatch *) lfirst(lc))->relid);
		if (hit)
			flusso_index_start_build(ix, round->end_lsn, round->rebuild_reason);
	}
	save_dirty();
	end_work();
}

static void
close_round(void)
{
	CaptureRound *round = flusso_capture_round();
	LiveBatch  *b = new_batch(round->end_lsn, true);
	bool		control = round->control_changed;

	b->nchanges = round->nchanges;
	b->oldest_commit = round->oldest_commit;
	if (round->nimages > 0)
		resolve_round(round, b);
	if (round->rebuild_relids != NIL)
		start_rebuilds(round);
	flusso_capture_reset_round();
	E.round_started = 0;
	if (control || E.ddl_reload)
		E.reload_lsn = b->end_lsn;
	E.ddl_reload = false;
}

static bool
pipeline_idle(void)
{
	return E.in_flight == 0 && E.nretries == 0 && unbuilt_batch() == NULL;
}

/*
 * A round closes at this many images (four batches' worth): when changes
 * pile up, a larger round folds more changes to the same documents into
 * one build; memory stays bounded by flusso.capture_memory.
 */
#define ROUND_IMAGES (4 * flusso_batch_size)

/* Decode more WAL; close the round when it is ready.  True if work was done. */
static bool
decode_step(void)
{
	CaptureRound *round = flusso_capture_round();
	int64		before = round->nchanges;
	TimestampTz now;

	flusso_capture_decode(ROUND_IMAGES);
	if (round->nchanges > before)
		flusso_observer->on_changes_captured(round->nchanges - before);
	now = GetCurrentTimestamp();
	if (round->nimages > 0 && E.round_started == 0)
		E.round_started = now;
	if (round->control_changed || round->rebuild_relids != NIL || E.ddl_reload ||
		round->nimages >= ROUND_IMAGES ||
		(round->reached_end && round->nimages > 0 &&
		 (pipeline_idle() || TimestampDifferenceExceeds(E.round_started, now, flusso_flush_interval))))
	{
		close_round();
		return true;
	}
	if (round->reached_end && round->nimages == 0 && round->end_lsn > E.marker_lsn)
	{
		LiveBatch  *marker = new_batch(round->end_lsn, true);

		marker->nchanges = round->nchanges;
		marker->built = true;
		E.marker_lsn = round->end_lsn;
		flusso_capture_reset_round();
		confirm_done_batches();
	}
	return !round->reached_end;
}

/* ---- loading and reloading ---- */

static IndexRuntime *
add_index(const char *name, const char *json)
{
	MemoryContext old = MemoryContextSwitchTo(E.cxt);
	IndexRuntime *ix = palloc0(sizeof(IndexRuntime));

	ix->name = pstrdup(name);
	ix->num = E.nix;
	E.ix = E.ix ? repalloc(E.ix, sizeof(IndexRuntime *) * (E.nix + 1)) :
		palloc(sizeof(IndexRuntime *));
	E.ix[E.nix++] = ix;
	MemoryContextSwitchTo(old);
	flusso_index_load_state(ix);
	ix->live_def_json = ix->live_def_json ? MemoryContextStrdup(E.cxt, ix->live_def_json) : NULL;
	ix->build_def_json = ix->build_def_json ? MemoryContextStrdup(E.cxt, ix->build_def_json) : NULL;
	ix->error = ix->error ? MemoryContextStrdup(E.cxt, ix->error) : NULL;
	if (ix->build_cursor)
	{
		List	   *copy = NIL;
		ListCell   *lc;

		old = MemoryContextSwitchTo(E.cxt);
		foreach(lc, ix->build_cursor)
			copy = lappend(copy, pstrdup(lfirst(lc)));
		ix->build_cursor = ix->next_cursor = copy;
		MemoryContextSwitchTo(old);
	}
	flusso_index_compile(ix, json, E.cxt);
	return ix;
}

/* Decide what a freshly loaded index must do, given where the stream stands. */
static void
settle_index(IndexRuntime *ix, XLogRecPtr lsn, bool reloaded, bool fresh_slot)
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
		ix->wait_xids = MemoryContextAlloc(E.cxt, sizeof(TransactionId) * Max(1, snap->xcnt));
		memcpy(ix->wait_xids, snap->xip, sizeof(TransactionId) * snap->xcnt);
	}
	flusso_observer->on_index_phase(ix->name,
									ix->stopped ? FLUSSO_INDEX_STOPPED :
									ix->paused ? FLUSSO_INDEX_PAUSED :
									ix->live_gen == ix->build_gen && ix->build_gen ? FLUSSO_INDEX_BACKFILLING :
									FLUSSO_INDEX_SEEDED);
	flusso_observer->on_generations(ix->name, ix->live_gen, ix->build_gen);
	if (ix->build_gen)
		flusso_observer->on_backfill_progress(ix->name, ix->build_done, ix->build_total);
}

static void
drop_remote(const char *name)
{
	IndexRuntime tmp;

	memset(&tmp, 0, sizeof(tmp));
	tmp.name = (char *) name;
	flusso_index_load_state(&tmp);
	if (tmp.live_gen)
		(void) E.sink->drop_index(flusso_index_physical(&tmp, tmp.live_gen));
	if (tmp.build_gen && tmp.build_gen != tmp.live_gen)
		(void) E.sink->drop_index(flusso_index_physical(&tmp, tmp.build_gen));
}

static void
queue_dead_letters(IndexRuntime *ix, XLogRecPtr lsn)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(ix->name)};
	LiveBatch  *b;
	uint64		i;

	if (SPI_execute_with_args("DELETE FROM flusso.dead_letters WHERE index_name = $1 RETURNING document_id",
							  1, types, values, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "could not read flusso.dead_letters");
	if (SPI_processed == 0)
		return;
	b = new_batch(lsn, false);
	for (i = 0; i < SPI_processed; i++)
		b->ids[ix->num] = lappend(b->ids[ix->num],
								  MemoryContextStrdup(b->cxt, SPI_getvalue(SPI_tuptable->vals[i],
																		   SPI_tuptable->tupdesc, 1)));
	ereport(LOG, (errmsg("flusso index \"%s\": retrying " UINT64_FORMAT " dead letters",
						 ix->name, SPI_processed)));
}

static void
handle_request(const char *name, const char *action, XLogRecPtr lsn)
{
	IndexRuntime *ix = find_index(name);

	if (strcmp(action, "drop") == 0 || strcmp(action, "drop_remote") == 0)
	{
		if (ix != NULL)
			return;				/* dropped and created again: the new one stays */
		if (strcmp(action, "drop_remote") == 0)
			drop_remote(name);
		flusso_index_delete_state(name);
		flusso_status_forget_index(MyDatabaseId, name);
		ereport(LOG, (errmsg("flusso index \"%s\" dropped%s", name,
							 strcmp(action, "drop_remote") == 0 ? " here and in OpenSearch" : "")));
		return;
	}
	if (ix == NULL || ix->def == NULL)
		return;
	if (strcmp(action, "reindex") == 0)
		flusso_index_start_build(ix, lsn, "reindex requested");
	else if (strcmp(action, "pause") == 0 && !ix->paused)
	{
		ix->paused = ix->dirty = true;
		flusso_observer->on_index_phase(ix->name, FLUSSO_INDEX_PAUSED);
	}
	else if (strcmp(action, "resume") == 0 && (ix->paused || ix->stopped))
	{
		ix->paused = false;
		flusso_index_start_build(ix, lsn, "resumed");
	}
	else if (strcmp(action, "retry_dead_letters") == 0)
		queue_dead_letters(ix, lsn);
}

static void
handle_requests(XLogRecPtr lsn)
{
	uint64		i;
	SPITupleTable *tab;
	uint64		n;

	if (SPI_execute("SELECT id, name, action FROM flusso.requests ORDER BY id", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read flusso.requests");
	tab = SPI_tuptable;
	n = SPI_processed;
	for (i = 0; i < n; i++)
		handle_request(SPI_getvalue(tab->vals[i], tab->tupdesc, 2),
					   SPI_getvalue(tab->vals[i], tab->tupdesc, 3), lsn);
	if (n > 0 &&
		SPI_execute(psprintf("DELETE FROM flusso.requests WHERE id <= %s",
							 SPI_getvalue(tab->vals[n - 1], tab->tupdesc, 1)), false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from flusso.requests");
}

static void
forget_indexes(void)
{
	int			i;

	/* capture's watch list lives in E.cxt: drop it before the memory goes */
	flusso_capture_set_watches(NIL, E.definitions_relid, E.requests_relid);
	for (i = 0; i < E.nix; i++)
		flusso_index_free(E.ix[i]);
	E.ix = NULL;
	E.nix = 0;
	MemoryContextReset(E.cxt);
}

static void
sync_status(void)
{
	List	   *names = NIL;
	int			i;

	for (i = 0; i < E.nix; i++)
		names = lappend(names, E.ix[i]->name);
	flusso_status_sync_indexes(MyDatabaseId, names);
}

/*
 * Load every definition and its durable state; the stream stands at lsn
 * and nothing is in flight (a reload waits for the pipeline to drain).
 */
static void
load_definitions(XLogRecPtr lsn, bool reloaded, bool fresh_slot)
{
	List	   *rows = NIL;
	ListCell   *lc;
	uint64		i;

	flusso_index_resolve_role();
	if (SPI_execute("SELECT name, definition::text FROM flusso.definitions ORDER BY name", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read flusso.definitions");
	for (i = 0; i < SPI_processed; i++)
		rows = lappend(rows, list_make2(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
										SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2)));
	forget_indexes();
	foreach(lc, rows)
	{
		IndexRuntime *ix = add_index(linitial(lfirst(lc)), lsecond(lfirst(lc)));

		settle_index(ix, lsn, reloaded, fresh_slot);
	}
	handle_requests(lsn);
	save_dirty();
	sync_status();
}

static bool
drained(void)
{
	int			i;

	if (!dlist_is_empty(&E.batches) || E.in_flight > 0 || E.nretries > 0)
		return false;
	for (i = 0; i < E.nix; i++)
		if (E.ix[i]->chunks != NIL)
			return false;
	return true;
}

static void
reload(XLogRecPtr lsn)
{
	begin_work("flusso: reloading definitions");
	load_definitions(lsn, true, false);
	set_watches();
	end_work();
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
	if (state == SLOT_INVALIDATED)
	{
		why = psprintf("replication slot \"%s\" was invalidated: the WAL it needed was removed (max_slot_wal_keep_size)",
					   flusso_capture_slot_name());
		ereport(WARNING,
				(errmsg("flusso: %s; it was created again, and every index is rebuilt", why)));
		flusso_observer->on_error(NULL, why);
	}
	return true;
}

static void
load(void)
{
	Oid			nsp;

	bool		fresh_slot;

	flusso_observer->on_phase(FLUSSO_PHASE_STARTING);
	reset_pipeline();
	flusso_capture_close();
	E.sink = flusso_sink();
	fresh_slot = ensure_slot();
	flusso_capture_open();
	begin_work("flusso: loading definitions");
	nsp = get_namespace_oid("flusso", false);
	E.definitions_relid = get_relname_relid("definitions", nsp);
	E.requests_relid = get_relname_relid("requests", nsp);
	load_definitions(flusso_capture_confirmed(), false, fresh_slot);
	set_watches();
	end_work();
	E.loaded = true;
	ereport(LOG, (errmsg("flusso is syncing %d index(es) from slot \"%s\" at %X/%X into %s",
						 E.nix, flusso_capture_slot_name(),
						 LSN_FORMAT_ARGS(flusso_capture_confirmed()), E.sink->name)));
}

/* ---- status ---- */

static void
report_phase(void)
{
	int			i;
	bool		backfilling = false;
	char		activity[128] = "streaming changes";

	for (i = 0; i < E.nix; i++)
	{
		IndexRuntime *ix = E.ix[i];

		if (!flusso_index_active(ix) || ix->build_gen == 0)
			continue;
		backfilling |= ix->live_gen == ix->build_gen;
		snprintf(activity, sizeof(activity), "%s %s (generation %d): " INT64_FORMAT " of about " INT64_FORMAT,
				 ix->live_gen == ix->build_gen ? "backfilling" : "reindexing",
				 ix->name, ix->build_gen, ix->build_done, ix->build_total);
	}
	if (E.os_failing)
		strlcpy(activity, "waiting for OpenSearch", sizeof(activity));
	flusso_observer->on_phase(backfilling ? FLUSSO_PHASE_BACKFILLING : FLUSSO_PHASE_LIVE);
	flusso_observer->on_activity(activity);
}

static void
poll_lag(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		lag;
	bool		over;

	if (now < E.next_lag_poll)
		return;
	lag = flusso_capture_lag_bytes();
	flusso_observer->on_slot_lag(lag);
	over = flusso_max_lag_bytes > 0 && lag > (int64) flusso_max_lag_bytes * 1024;
	flusso_observer->on_lag_warning(over);
	if (over && TimestampDifferenceExceeds(E.lag_warned_at, now, 60000))
	{
		ereport(WARNING,
				(errmsg("flusso's replication slot \"%s\" holds " INT64_FORMAT " MB of WAL, more than flusso.max_lag_bytes (%d MB)",
						flusso_capture_slot_name(), lag / (1024 * 1024), flusso_max_lag_bytes / 1024),
				 errdetail("The slot keeps WAL until flusso catches up; OpenSearch may be down or slow."),
				 errhint("See flusso.status; raise flusso.max_lag_bytes if this lag is expected.")));
		E.lag_warned_at = now;
	}
	E.next_lag_poll = TimestampTzPlusMilliseconds(now, flusso_lag_poll_interval);
}

/* The commit time of the oldest change each index (and the database) waits for. */
static void
report_lag(void)
{
	CaptureRound *round = flusso_capture_round();
	TimestampTz oldest = round->nimages > 0 ? round->oldest_commit : 0;
	dlist_iter	it;
	int			i;

	for (i = 0; i < E.nix; i++)
	{
		TimestampTz index_oldest = 0;

		dlist_foreach(it, &E.batches)
		{
			LiveBatch  *b = dlist_container(LiveBatch, node, it.cur);

			if (b->oldest_commit && b->ids[i] != NIL &&
				(index_oldest == 0 || b->oldest_commit < index_oldest))
				index_oldest = b->oldest_commit;
		}
		flusso_observer->on_index_lag(E.ix[i]->name, index_oldest);
	}
	dlist_foreach(it, &E.batches)
	{
		LiveBatch  *b = dlist_container(LiveBatch, node, it.cur);

		if (b->oldest_commit && (oldest == 0 || b->oldest_commit < oldest))
			oldest = b->oldest_commit;
	}
	flusso_observer->on_lag(oldest);
}

/* Indexes whose live generation vanished from OpenSearch are rebuilt. */
static void
rebuild_vanished(void)
{
	int			i;
	bool		any = false;

	for (i = 0; i < E.nix; i++)
		any |= E.ix[i]->rebuild_needed && flusso_index_active(E.ix[i]);
	if (!any)
		return;
	begin_work("flusso: rebuilding a vanished index");
	for (i = 0; i < E.nix; i++)
	{
		IndexRuntime *ix = E.ix[i];

		if (!ix->rebuild_needed || !flusso_index_active(ix))
			continue;
		ix->rebuild_needed = false;
		flusso_index_start_build(ix, flusso_capture_round()->end_lsn,
								 "its index disappeared from OpenSearch");
	}
	save_dirty();
	end_work();
}

/* Reindex requests from backends (flusso.reindex), through shared memory. */
static void
take_requests(void)
{
	ListCell   *lc;
	List	   *keep = NIL;
	bool		caught_up = E.reload_lsn == InvalidXLogRecPtr && flusso_capture_round()->reached_end;

	E.requests = list_concat(E.requests, flusso_status_take_requests(MyDatabaseId));
	if (E.requests == NIL)
		return;
	begin_work("flusso: reindex requested");
	foreach(lc, E.requests)
	{
		char	   *req = lfirst(lc);
		uint32		id = (uint32) strtoul(req, NULL, 10);
		char	   *name = strchr(req, ' ') + 1;
		IndexRuntime *ix = find_index(name);

		if (ix && ix->def)
		{
			flusso_index_start_build(ix, flusso_capture_round()->end_lsn, "reindex requested");
			flusso_status_finish_request(id, ix->build_gen, NULL);
		}
		else if (ix || caught_up)
			flusso_status_finish_request(id, 0, ix ? ix->broken : "the index does not exist");
		else
			keep = lappend(keep, req);	/* created but not loaded yet */
	}
	save_dirty();
	end_work();
	E.requests = keep;
}

/*
 * A watched table was altered (renamed, a column dropped...): close the
 * round and reload, so the definitions are compiled again by name.
 */
static void
check_ddl(void)
{
	bool		changed;

	if (!flusso_ddl_touched() || E.ddl_reload || E.reload_lsn != InvalidXLogRecPtr)
		return;
	begin_work("flusso: checking altered tables");
	changed = flusso_ddl_changed();
	end_work();
	if (!changed)
		return;
	ereport(LOG, (errmsg("flusso: a table an index reads was altered; the definitions are checked again")));
	E.ddl_reload = true;
}

/* ---- the engine's entry points ---- */

void
flusso_engine_init(void)
{
	memset(&E, 0, sizeof(E));
	E.cxt = AllocSetContextCreate(TopMemoryContext, "flusso indexes", ALLOCSET_DEFAULT_SIZES);
	E.batches_cxt = AllocSetContextCreate(TopMemoryContext, "flusso batches", ALLOCSET_DEFAULT_SIZES);
	dlist_init(&E.batches);
}

void
flusso_engine_start(void)
{
	E.loaded = false;
}

/* Drop everything in flight; what it held is replayed from the slot. */
static void
reset_pipeline(void)
{
	int			i;

	if (E.sink)
		E.sink->abort_all();
	flusso_http_abort_all();
	E.in_flight = 0;
	E.retries = NULL;
	E.nretries = 0;
	dlist_init(&E.batches);
	MemoryContextReset(E.batches_cxt);
	E.dead_letters = NIL;
	for (i = 0; i < E.nix; i++)
	{
		E.ix[i]->chunks = NIL;
		E.ix[i]->next_cursor = E.ix[i]->build_cursor;
		E.ix[i]->build_exhausted = false;
	}
}

void
flusso_engine_stop(void)
{
	reset_pipeline();
	flusso_capture_close();
	forget_indexes();
	E.loaded = false;
	E.marker_lsn = E.reload_lsn = InvalidXLogRecPtr;
}

/*
 * After a reload.  A new sink starts over; new connection settings drop
 * the requests in flight and every kept-alive connection (their batches
 * are sent again: nothing was confirmed for them).
 */
void
flusso_engine_settings_changed(bool connection_changed)
{
	if (E.loaded && E.sink != flusso_sink())
	{
		ereport(LOG, (errmsg("flusso switches to the %s sink", flusso_sink()->name)));
		flusso_engine_after_error();
		E.loaded = false;
	}
	else if (connection_changed)
	{
		ereport(LOG, (errmsg("flusso reconnects to OpenSearch with the new connection settings")));
		flusso_engine_after_error();
	}
	if (connection_changed)
		flusso_http_reset();
}

void
flusso_engine_after_error(void)
{
	reset_pipeline();
	flusso_capture_close();
	E.round_started = 0;
	E.marker_lsn = E.reload_lsn = InvalidXLogRecPtr;
	if (E.loaded)
	{
		int			i;

		for (i = 0; i < E.nix; i++)
			E.ix[i]->remote_ready = false;
	}
}

static long
sleep_time(bool worked)
{
	CaptureRound *round = flusso_capture_round();
	long		ms = flusso_lag_poll_interval;
	long		retry = next_retry_ms();
	int			i;

	if (worked && room())
		return 0;
	if (round->nimages > 0 && E.round_started)
		ms = Min(ms, Max(1, flusso_flush_interval -
						 TimestampDifferenceMilliseconds(E.round_started, GetCurrentTimestamp())));
	if (retry >= 0)
		ms = Min(ms, Max(1, retry));
	for (i = 0; i < E.nix; i++)
		if (E.ix[i]->build_gen && (E.ix[i]->nwait > 0 || !E.ix[i]->remote_ready))
			ms = Min(ms, 100);
	return ms;
}

long
flusso_engine_step(void)
{
	bool		worked = false;
	LiveBatch  *b;

	if (E.loaded && !flusso_capture_is_open() && flusso_capture_slot_state() != SLOT_OK)
		E.loaded = false;		/* the slot vanished or was invalidated */
	if (!E.loaded)
		load();
	if (!flusso_capture_is_open())
		flusso_capture_open();
	take_requests();
	check_ddl();
	rebuild_vanished();
	collect_completions();
	send_due_retries();
	confirm_done_batches();
	if (E.reload_lsn != InvalidXLogRecPtr && drained())
	{
		reload(E.reload_lsn);
		E.reload_lsn = InvalidXLogRecPtr;
		worked = true;
	}
	while (room_for_live())
	{
		if ((b = unbuilt_batch()) != NULL)
		{
			if (!build_live_chunk(b))
				break;
		}
		else if (E.reload_lsn != InvalidXLogRecPtr || !decode_step())
			break;
		worked = true;
	}
	while (E.reload_lsn == InvalidXLogRecPtr && room() && backfill_step())
		worked = true;
	collect_completions();
	confirm_done_batches();
	report_lag();
	poll_lag();
	report_phase();
	return sleep_time(worked);
}
