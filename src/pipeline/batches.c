/*-------------------------------------------------------------------------
 *
 * batches.c
 *	  Live batches: made from rounds, built, confirmed in order; and what a
 *	  build that fails means.
 *
 * A live batch holds the document ids of one closed round, per index.  It
 * is built a chunk (flusso.batch_size ids) at a time, each chunk in its own
 * transaction with the index's prepared build statement (indexrun.c), and
 * sent.  Batches confirm in order: the slot advances to a batch's end only
 * once every batch before it, and every request of it, is acknowledged.
 *
 * A build that fails is judged here, per index, so that one index never
 * holds up the others:
 *	- a lock it waited flusso.lock_timeout for: the chunk is put back and
 *	  tried again after a backoff (indexes.c reports what it waits for);
 *	  meanwhile later batches are built and sent for the other indexes;
 *	- no right to read a table: the index stops, naming what to grant;
 *	- flusso.statement_timeout: the chunk's documents go to the index's
 *	  failure policy;
 *	- any other error (a row an expression cannot handle): the chunk is
 *	  built half by half until the documents that fail are found, and those
 *	  alone go to the failure policy.
 *
 * It must not decode or send anything itself: rounds.c and ship.c do.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/memutils.h"

#include "base/settings.h"
#include "pipeline/batches.h"
#include "pipeline/indexrun.h"
#include "pipeline/policy.h"

/* ---- batches ---- */

LiveBatch *
eng_new_batch(Engine *eng, XLogRecPtr end_lsn, bool confirm)
{
	MemoryContext cxt = AllocSetContextCreate(eng->batches_cxt, "flusso live batch",
											  ALLOCSET_DEFAULT_SIZES);
	LiveBatch  *b = MemoryContextAllocZero(cxt, sizeof(LiveBatch));
	int			n = Max(1, eng->nix);

	b->cxt = cxt;
	b->end_lsn = end_lsn;
	b->confirm = confirm;
	b->keys = MemoryContextAllocZero(cxt, sizeof(FlussoKeySet *) * n);
	b->ids = MemoryContextAllocZero(cxt, sizeof(List *) * n);
	b->done = MemoryContextAllocZero(cxt, sizeof(int) * n);
	b->deferred = MemoryContextAllocZero(cxt, sizeof(List *) * n);
	b->stats = MemoryContextAllocZero(cxt, sizeof(FlussoIndexBatchStats) * n);
	dlist_push_tail(&eng->batches, &b->node);
	eng->nbatches++;
	return b;
}

/*
 * Tell the observer what a confirmed batch did.  The batch that closes on
 * a control change (a definition created, altered or dropped, a request)
 * does not count as synced until the reload has applied it: until then
 * the indexes do not show the build it starts, and flusso.wait_synced()
 * would return too early.  flusso_engine_step() reports it after the reload.
 */
static void
report_batch(Engine *eng, LiveBatch *b)
{
	FlussoBatchStats stats;
	bool		synced = b->confirm &&
		(eng->reload_lsn == InvalidXLogRecPtr || b->end_lsn < eng->reload_lsn);
	int			i;

	for (i = 0; i < eng->nix; i++)
		b->stats[i].index = eng->ix[i]->name;
	stats.changes = b->nchanges;
	stats.documents = b->documents;
	stats.flush_ms = b->flush_ms;
	stats.acked_lsn = synced ? b->end_lsn : InvalidXLogRecPtr;
	stats.nindexes = eng->nix;
	stats.indexes = b->stats;
	if (b->documents > 0 || b->nchanges > 0)
		flusso_observer->on_batch_committed(&stats);
	else if (synced)
		flusso_observer->on_caught_up(b->end_lsn);
}

/* Confirm the slot through every leading batch that is fully acknowledged. */
void
eng_confirm_done_batches(Engine *eng)
{
	while (!dlist_is_empty(&eng->batches))
	{
		LiveBatch  *b = dlist_head_element(LiveBatch, node, &eng->batches);

		if (!b->built || b->pending > 0)
			break;
		dlist_pop_head_node(&eng->batches);
		eng->nbatches--;
		if (b->confirm)
			flusso_capture_confirm(b->end_lsn);
		report_batch(eng, b);
		MemoryContextDelete(b->cxt);
	}
}

/* Has index i of batch b documents (or images) left to build? */
static bool
index_pending(Engine *eng, LiveBatch *b, int i)
{
	return flusso_index_active(eng->ix[i]) &&
		(b->deferred[i] != NIL || b->done[i] < list_length(b->ids[i]));
}

/* The index of b to build a chunk of now, or -1. */
static int
buildable_index(Engine *eng, LiveBatch *b)
{
	int			i;

	for (i = 0; i < eng->nix; i++)
	{
		if (index_pending(eng, b, i) && !flusso_index_lock_waiting(eng->ix[i]))
			return i;
	}
	return -1;
}

static bool
batch_pending(Engine *eng, LiveBatch *b)
{
	int			i;

	for (i = 0; i < eng->nix; i++)
	{
		if (index_pending(eng, b, i))
			return true;
	}
	return false;
}

/*
 * The oldest batch not fully built that has work to do now.  A batch whose
 * only work left is for indexes waiting for a lock is passed over: the
 * batches after it are built for the other indexes meanwhile.
 */
LiveBatch *
eng_unbuilt_batch(Engine *eng)
{
	dlist_iter	it;

	dlist_foreach(it, &eng->batches)
	{
		LiveBatch  *b = dlist_container(LiveBatch, node, it.cur);

		if (!b->built && (buildable_index(eng, b) >= 0 || !batch_pending(eng, b)))
			return b;
	}
	return NULL;
}

/*
 * Does index i wait for batch b?  While b has documents of i left to build,
 * or requests not yet acknowledged and documents of i among them.  A batch
 * stays until every index's part is acknowledged, and one index may wait
 * for a lock while another's part was acknowledged long ago: that other
 * index waits for nothing.
 */
static bool
index_waits_for(LiveBatch *b, int i)
{
	return b->deferred[i] != NIL || b->done[i] < list_length(b->ids[i]) ||
		(b->ids[i] != NIL && b->pending > 0);
}

/* The commit time of the oldest change each index (and the database) waits for. */
void
eng_report_lag(Engine *eng)
{
	CaptureRound *round = flusso_capture_round();
	TimestampTz oldest = round->nimages > 0 ? round->oldest_commit : 0;
	dlist_iter	it;
	int			i;

	for (i = 0; i < eng->nix; i++)
	{
		TimestampTz index_oldest = 0;

		dlist_foreach(it, &eng->batches)
		{
			LiveBatch  *b = dlist_container(LiveBatch, node, it.cur);

			if (b->oldest_commit && index_waits_for(b, i) &&
				(index_oldest == 0 || b->oldest_commit < index_oldest))
				index_oldest = b->oldest_commit;
		}
		flusso_observer->on_index_lag(eng->ix[i]->name, index_oldest);
	}
	dlist_foreach(it, &eng->batches)
	{
		LiveBatch  *b = dlist_container(LiveBatch, node, it.cur);

		if (b->oldest_commit && (oldest == 0 || b->oldest_commit < oldest))
			oldest = b->oldest_commit;
	}
	flusso_observer->on_lag(oldest);
}

/* ---- building a list of documents ---- */

typedef struct BuildCtx
{
	IndexRuntime *ix;
	Builder    *bld;
	uint64		version;
	bool		build_only;
	int64		documents;
} BuildCtx;

typedef enum BuildOutcome
{
	BUILD_DONE,					/* built, or the failures went to the policy */
	BUILD_LOCKED,				/* a lock it waits for: nothing was built */
	BUILD_STOPPED				/* the index stopped */
} BuildOutcome;

static void
build_row(void *arg, Datum *values, bool *isnull, int natts)
{
	BuildCtx   *c = arg;

	eng_builder_add_row(c->bld, c->ix, values[0], values[1], isnull[1], c->version, c->build_only);
	c->documents++;
}

/* Documents that cannot be built go to the index's failure policy, one by one. */
static void
reject_unbuilt(BuildCtx *c, List *ids, const FlussoError *error)
{
	IndexRuntime *ix = c->ix;
	bool		timeout = flusso_error_is_timeout(error);
	char	   *path = !timeout && list_length(ids) == 1 ? flusso_run_probes(ix, linitial(ids)) : NULL;
	char	   *where = path ? psprintf(" (at %s in the definition)", path) : "";
	char	   *why = timeout ?
		psprintf("building it took longer than flusso.statement_timeout (%d ms)", flusso_statement_timeout) :
		psprintf("it cannot be built: %s%s", error->message, where);
	char	   *public_why = timeout ? why :
		psprintf("it cannot be built (SQLSTATE %s)%s", unpack_sql_state(error->sqlerrcode), where);
	ListCell   *lc;

	foreach(lc, ids)
	{
		eng_reject(c->bld->eng, ix, ix->live_gen ? ix->live_gen : ix->build_gen, lfirst(lc), why,
				   public_why, NULL, 0);
		if (ix->stopped)
			break;
	}
}

static BuildOutcome build_each(BuildCtx *c, List *ids);

/*
 * Build ids.  A failure that is not a lock wait or a missing grant is the
 * rows': each half is built on its own, down to the documents that fail,
 * so that one bad row costs one document.
 */
static BuildOutcome
build_split(BuildCtx *c, List *ids)
{
	FlussoError error;
	BuilderMark mark;
	int			n = list_length(ids);
	int64		before = c->documents;
	BuildOutcome outcome;

	eng_builder_mark(c->bld, &mark);
	if (flusso_run_build(c->ix, ids, build_row, c, &error))
		return BUILD_DONE;
	eng_builder_rollback(c->bld, &mark);
	c->documents = before;
	if (flusso_error_is_lock_wait(&error))
		return BUILD_LOCKED;
	if (error.sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE)
	{
		flusso_index_no_access(c->ix, error.message);
		return BUILD_STOPPED;
	}
	if (n == 1)
	{
		reject_unbuilt(c, ids, &error);
		return c->ix->stopped ? BUILD_STOPPED : BUILD_DONE;
	}
	if (flusso_error_is_timeout(&error))
		return build_each(c, ids);
	outcome = build_split(c, list_copy_head(ids, n / 2));
	if (outcome != BUILD_DONE)
		return outcome;
	return build_split(c, list_copy_tail(ids, n / 2));
}

/*
 * After flusso.statement_timeout, one document at a time: a document whose
 * build never ends costs one timeout, not one per halving of the chunk.
 */
static BuildOutcome
build_each(BuildCtx *c, List *ids)
{
	ListCell   *lc;

	foreach(lc, ids)
	{
		BuildOutcome outcome = build_split(c, list_make1(lfirst(lc)));

		if (outcome != BUILD_DONE)
			return outcome;
	}
	return BUILD_DONE;
}

/*
 * Build the documents of ids into bld, versioned with version.  False when
 * the index waits for a lock: bld is as it was, and the caller tries again
 * later.  *documents counts the rows built.
 */
bool
eng_build_ids(IndexRuntime *ix, List *ids, Builder *bld, uint64 version, bool build_only,
			  int64 *documents)
{
	BuildCtx	c = {ix, bld, version, build_only, 0};
	BuilderMark mark;

	eng_builder_mark(bld, &mark);
	if (build_split(&c, ids) == BUILD_LOCKED)
	{
		eng_builder_rollback(bld, &mark);
		flusso_index_lock_wait(ix);
		*documents = 0;
		return false;
	}
	flusso_index_lock_granted(ix);
	*documents = c.documents;
	return true;
}

/* ---- live batches ---- */

/* Resolve the images of index i that waited for a lock; false if it still waits. */
static bool
resolve_deferred(Engine *eng, LiveBatch *b, int i)
{
	IndexRuntime *ix = eng->ix[i];

	while (b->deferred[i] != NIL)
	{
		DeferredImages *d = linitial(b->deferred[i]);
		FlussoError error;

		if (!flusso_run_resolve(ix, d->watch, d->images, b->keys[i], &error))
		{
			if (flusso_error_is_lock_wait(&error))
			{
				flusso_index_lock_wait(ix);
				return false;
			}
			flusso_index_set_error(ix, psprintf("resolving changes for index \"%s\" failed: %s",
												ix->name, error.message), true);
			b->deferred[i] = NIL;
			return true;
		}
		b->deferred[i] = list_delete_first(b->deferred[i]);
	}
	flusso_index_lock_granted(ix);
	b->ids[i] = flusso_keyset_ids(b->keys[i]);
	return true;
}

/* The next chunk of index i's ids in b. */
static List *
next_chunk(LiveBatch *b, int i)
{
	List	   *chunk = NIL;

	while (b->done[i] < list_length(b->ids[i]) && list_length(chunk) < flusso_batch_size)
		chunk = lappend(chunk, list_nth(b->ids[i], b->done[i]++));
	return chunk;
}

/* Build and send the next chunk of documents of a live batch. */
bool
eng_build_live_chunk(Engine *eng, LiveBatch *b)
{
	int			i = buildable_index(eng, b);
	IndexRuntime *ix;
	Builder		bld = {eng, BULK_LIVE, b, eng->batches_cxt, NIL, NULL};
	List	   *chunk;
	int64		documents;

	if (i < 0)
	{
		if (batch_pending(eng, b))
			return false;		/* only indexes waiting for a lock are left */
		b->built = true;
		eng_confirm_done_batches(eng);
		return true;
	}
	ix = eng->ix[i];
	if (!flusso_index_ensure_remote(ix, eng->sink))
		return false;			/* try again later */
	flusso_observer->on_activity(psprintf("building documents of index \"%s\"", ix->name));
	eng_begin_work(eng, "flusso: building documents");
	if (b->deferred[i] != NIL)
	{
		(void) resolve_deferred(eng, b, i);
		eng_save_dirty(eng);
		eng_end_work(eng);
		return true;
	}
	chunk = next_chunk(b, i);
	if (eng_build_ids(ix, chunk, &bld, b->end_lsn, false, &documents))
		b->documents += documents;
	else
		b->done[i] -= list_length(chunk);	/* built again once the lock is granted */
	eng_flush_dead_letters(eng);
	eng_save_dirty(eng);
	eng_end_work(eng);
	eng_builder_send(&bld);
	return true;
}
