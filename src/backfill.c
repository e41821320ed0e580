/*-------------------------------------------------------------------------
 *
 * backfill.c
 *	  Backfills: building a generation chunk by chunk in key order.
 *
 * Building a generation: the root table is read in key order, a chunk at
 * a time (each in its own guarded transaction), built with the same
 * statement as live documents and versioned with the build's start
 * position, so a live change decoded after it always wins.  Progress (the
 * last key acknowledged) is saved in flusso.index_state, so a restart
 * resumes where it stopped.  When the last chunk is acknowledged, the
 * alias moves to the new generation and the old one is dropped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/memutils.h"

#include "guard.h"
#include "pipeline.h"
#include "settings.h"

typedef struct ChunkArgs
{
	IndexRuntime *ix;
	BackfillChunk *chunk;
	Builder    *bld;
	MemoryContext cxt;
} ChunkArgs;

/* ---- backfill ---- */

static void
save_progress(IndexRuntime *ix, bool force)
{
	if (!force && !TimestampDifferenceExceeds(ix->saved_at, GetCurrentTimestamp(), 1000))
		return;
	eng_begin_work("flusso: saving backfill progress");
	flusso_index_save_state(ix);
	eng_end_work();
}

static void
maybe_finish_build(IndexRuntime *ix)
{
	if (!flusso_index_build_complete(ix))
		return;
	if (flusso_index_finish_build(ix, E.sink))
		save_progress(ix, true);
}

/* A chunk is acknowledged: advance the durable cursor over leading acked chunks. */
void
eng_chunk_acked(BackfillChunk *chunk)
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

		eng_builder_add_row(a->bld, ix, tup, SPI_tuptable->tupdesc, ix->build_version, true);
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
	MemoryContext old;
	char	   *error;

	chunk->index = ix;
	chunk->generation = ix->build_gen;
	eng_begin_work("flusso: backfill");
	if (!flusso_guard(build_chunk, &args, &error))
	{
		flusso_index_set_error(ix, psprintf("backfilling index \"%s\" failed: %s", ix->name, error), true);
		eng_save_dirty();
		eng_end_work();
		pfree(chunk);
		return;
	}
	eng_flush_dead_letters();
	eng_save_dirty();
	eng_end_work();
	old = MemoryContextSwitchTo(cxt);
	ix->chunks = lappend(ix->chunks, chunk);
	MemoryContextSwitchTo(old);
	eng_builder_send(&bld);
	chunk->built = true;
	if (chunk->pending == 0)
		eng_chunk_acked(chunk);
}

/* Send one backfill chunk of some index being built; false if none could. */
bool
eng_backfill_step(void)
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

/*
 * Complete builds whose alias swap failed (OpenSearch went away between
 * the last acknowledgement and the swap) try it again once their backoff
 * is over; nothing else would ever finish them.
 */
void
eng_finish_builds(void)
{
	int			i;

	for (i = 0; i < E.nix; i++)
	{
		if (flusso_index_finish_wait_ms(E.ix[i]) == 0)
			maybe_finish_build(E.ix[i]);
	}
}

/* Indexes whose live generation vanished from OpenSearch are rebuilt. */
void
eng_rebuild_vanished(void)
{
	int			i;
	bool		any = false;

	for (i = 0; i < E.nix; i++)
		any |= E.ix[i]->rebuild_needed && flusso_index_active(E.ix[i]);
	if (!any)
		return;
	eng_begin_work("flusso: rebuilding a vanished index");
	for (i = 0; i < E.nix; i++)
	{
		IndexRuntime *ix = E.ix[i];

		if (!ix->rebuild_needed || !flusso_index_active(ix))
			continue;
		ix->rebuild_needed = false;
		flusso_index_start_build(ix, flusso_capture_round()->end_lsn,
								 "its index disappeared from OpenSearch");
	}
	eng_save_dirty();
	eng_end_work();
}
