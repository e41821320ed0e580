/*-------------------------------------------------------------------------
 *
 * batches.c
 *	  Live batches: made from rounds, built, confirmed in order.
 *
 * A live batch holds the document ids of one closed round, per index.  It
 * is built a chunk (flusso.batch_size ids) at a time, each chunk in its own
 * transaction with the index's prepared build plan, and sent.  Batches
 * confirm in order: the slot advances to a batch's end only once every
 * batch before it, and every request of it, is acknowledged.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "guard.h"
#include "pipeline.h"
#include "resolve.h"
#include "settings.h"

typedef struct BuildArgs
{
	IndexRuntime *ix;
	List	   *ids;
	Builder    *bld;
	LiveBatch  *batch;
} BuildArgs;

/* ---- batches ---- */

LiveBatch *
eng_new_batch(XLogRecPtr end_lsn, bool confirm)
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

/*
 * Tell the observer what a confirmed batch did.  The batch that closes on
 * a control change (a definition created, altered or dropped, a request)
 * does not count as synced until the reload has applied it: until then
 * the indexes do not show the build it starts, and flusso.wait_synced()
 * would return too early.  flusso_engine_step() reports it after the reload.
 */
static void
report_batch(LiveBatch *b)
{
	FlussoBatchStats stats;
	bool		synced = b->confirm &&
		(E.reload_lsn == InvalidXLogRecPtr || b->end_lsn < E.reload_lsn);
	int			i;

	for (i = 0; i < E.nix; i++)
		b->stats[i].index = E.ix[i]->name;
	stats.changes = b->nchanges;
	stats.documents = b->documents;
	stats.flush_ms = b->flush_ms;
	stats.acked_lsn = synced ? b->end_lsn : InvalidXLogRecPtr;
	stats.nindexes = E.nix;
	stats.indexes = b->stats;
	if (b->documents > 0 || b->nchanges > 0)
		flusso_observer->on_batch_committed(&stats);
	else if (synced)
		flusso_observer->on_caught_up(b->end_lsn);
}

/* Confirm the slot through every leading batch that is fully acknowledged. */
void
eng_confirm_done_batches(void)
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

LiveBatch *
eng_unbuilt_batch(void)
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

		eng_builder_add_row(a->bld, a->ix, tup, SPI_tuptable->tupdesc, a->batch->end_lsn, false);
	}
	a->batch->documents += SPI_processed;
}

/* Build and send the next chunk of documents of a live batch. */
bool
eng_build_live_chunk(LiveBatch *b)
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
		eng_begin_work("flusso: building documents");
		if (!flusso_guard(build_docs, &args, &error))
			flusso_index_set_error(ix, psprintf("building documents of index \"%s\" failed: %s",
												ix->name, error), true);
		eng_flush_dead_letters();
		eng_save_dirty();
		eng_end_work();
		eng_builder_send(&bld);
		return true;
	}
	b->built = true;
	eng_confirm_done_batches();
	return true;
}
