/*-------------------------------------------------------------------------
 *
 * backfill.c
 *	  Backfills: building a generation chunk by chunk in key order.
 *
 * Building a generation: the root table is read in key order, a chunk at
 * a time (each in its own guarded transaction, with the index owner's
 * rights: indexrun.c), built with the same statement as live documents and
 * versioned with the build's start position, so a live change decoded
 * after it always wins.  A page that fails is built again id by id group
 * (batches.c), so a bad row costs one document, not the build; a page that
 * waits for a lock is tried again later.  Progress (the
 * last key acknowledged) is saved in flusso.index_state, so a restart
 * resumes where it stopped.  When the last chunk is acknowledged, the
 * alias moves to the new generation and the old one is dropped.
 *
 * It owns the build's chunks (IndexRuntime.chunks).  It must not decide
 * what a request's outcome is: ship.c settles requests and hands an
 * acknowledged chunk back through Engine.chunk_acked (eng_chunk_acked).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/memutils.h"

#include "base/settings.h"
#include "pipeline/backfill.h"
#include "pipeline/batches.h"
#include "pipeline/indexrun.h"
#include "pipeline/policy.h"

/* ---- backfill ---- */

static void
save_progress(Engine *eng, IndexRuntime *ix, bool force)
{
	if (!force && !TimestampDifferenceExceeds(ix->saved_at, GetCurrentTimestamp(), 1000))
		return;
	eng_begin_work(eng, "flusso: saving backfill progress");
	flusso_index_save_state(ix);
	eng_end_work(eng);
}

static void
maybe_finish_build(Engine *eng, IndexRuntime *ix)
{
	if (!flusso_index_build_complete(ix))
		return;
	if (flusso_index_finish_build(ix, eng->sink))
		save_progress(eng, ix, true);
}

/* A chunk is acknowledged: advance the durable cursor over leading acked chunks. */
void
eng_chunk_acked(Engine *eng, BackfillChunk *chunk)
{
	IndexRuntime *ix = chunk->index;
	bool		advanced = false;

	if (chunk->generation != ix->build_gen)
	{
		list_free_deep(chunk->last_key);
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
		{
			/* the key it replaces is no one's: next_cursor is this one or later */
			list_free_deep(ix->build_cursor);
			ix->build_cursor = head->last_key;
		}
		ix->build_done += head->rows;
		advanced = true;
		pfree(head);
	}
	if (!advanced)
		return;
	ix->dirty = true;
	flusso_observer->on_backfill_progress(ix->name, ix->build_done, ix->build_total);
	if (ix->build_exhausted && ix->chunks == NIL)
		maybe_finish_build(eng, ix);
	else
		save_progress(eng, ix, false);
}

typedef struct PageCtx
{
	IndexRuntime *ix;
	BackfillChunk *chunk;
	Builder    *bld;
	MemoryContext cxt;			/* the index's: the chunk's last key lives there */
	int64		rows;
} PageCtx;

/* The cursor after a page: its last row's key columns, copied into the index's memory. */
static List *
page_cursor(PageCtx *c, Datum *values)
{
	MemoryContext old = MemoryContextSwitchTo(c->cxt);
	List	   *key = NIL;
	int			i;

	for (i = 0; i < c->ix->nkeys; i++)
		key = lappend(key, TextDatumGetCString(values[i]));
	MemoryContextSwitchTo(old);
	return key;
}

typedef struct LastKeyCtx
{
	PageCtx    *page;
	List	   *key;
} LastKeyCtx;

/* A row of a page: its document, and its key as the cursor so far. */
static void
page_row(void *arg, Datum *values, bool *isnull, int natts)
{
	LastKeyCtx *k = arg;
	PageCtx    *c = k->page;

	eng_builder_add_row(c->bld, c->ix, values[0], values[1], isnull[1], c->ix->build_version, true);
	c->rows++;
	list_free_deep(k->key);
	k->key = page_cursor(c, values + 2);
}

/*
 * A page that cannot be built as a whole: its ids are read on their own
 * (keys only), and built the way live changes are, half by half down to the
 * documents that fail (batches.c); those go to the failure policy.
 * False when the index waits for a lock.
 */
static bool
build_page_by_ids(PageCtx *c, List **cursor)
{
	IndexRuntime *ix = c->ix;
	List	   *ids;
	FlussoError error;
	int64		documents;

	if (!flusso_run_backfill_keys(ix, ix->next_cursor, flusso_batch_size, &ids, &error))
	{
		if (flusso_error_is_lock_wait(&error))
		{
			flusso_index_lock_wait(ix);
			return false;
		}
		flusso_index_set_error(ix, psprintf("backfilling index \"%s\" failed: %s", ix->name,
											error.message), true);
		return true;
	}
	if (!eng_build_ids(ix, ids, c->bld, ix->build_version, true, &documents))
		return false;
	c->rows = list_length(ids);
	if (ids != NIL)
	{
		MemoryContext old = MemoryContextSwitchTo(c->cxt);

		*cursor = flusso_id_split(llast(ids), ix->nkeys);
		MemoryContextSwitchTo(old);
	}
	return true;
}

/* Build the next page of a build into the chunk; false when it waits for a lock. */
static bool
build_page(PageCtx *c)
{
	IndexRuntime *ix = c->ix;
	LastKeyCtx	k = {c, NIL};
	FlussoError error;
	BuilderMark mark;
	List	   *cursor = NIL;

	eng_builder_mark(c->bld, &mark);
	if (flusso_run_backfill(ix, ix->next_cursor, flusso_batch_size, page_row, &k, &error))
	{
		flusso_index_lock_granted(ix);
		cursor = k.key;
	}
	else
	{
		eng_builder_rollback(c->bld, &mark);
		list_free_deep(k.key);	/* the page's rows so far: in the index's memory */
		c->rows = 0;
		if (flusso_error_is_lock_wait(&error))
		{
			flusso_index_lock_wait(ix);
			return false;
		}
		if (error.sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE)
		{
			flusso_index_no_access(ix, error.message);
			return true;
		}
		if (!build_page_by_ids(c, &cursor))
			return false;
	}
	if (ix->stopped)
	{
		list_free_deep(cursor);
		return true;
	}
	c->chunk->rows = c->rows;
	if (cursor != NIL)
		c->chunk->last_key = ix->next_cursor = cursor;
	ix->build_exhausted = c->rows < flusso_batch_size;
	return true;
}

static void
backfill_chunk(Engine *eng, IndexRuntime *ix)
{
	MemoryContext cxt = GetMemoryChunkContext(ix);
	BackfillChunk *chunk = MemoryContextAllocZero(cxt, sizeof(BackfillChunk));
	Builder		bld = {eng, BULK_BACKFILL, chunk, eng->batches_cxt, NIL, NULL};
	PageCtx		page = {ix, chunk, &bld, cxt, 0};
	MemoryContext old;
	bool		built;

	chunk->index = ix;
	chunk->generation = ix->build_gen;
	flusso_observer->on_activity(psprintf("%s %s (generation %d)",
										  ix->live_gen == ix->build_gen ? "backfilling" : "reindexing",
										  ix->name, ix->build_gen));
	eng_begin_work(eng, "flusso: backfill");
	built = build_page(&page);
	eng_flush_dead_letters(eng);
	eng_save_dirty(eng);
	eng_end_work(eng);
	if (!built || ix->stopped)
	{
		eng_builder_rollback(&bld, &(BuilderMark) {0, 0, 0});
		pfree(chunk);
		return;
	}
	old = MemoryContextSwitchTo(cxt);
	ix->chunks = lappend(ix->chunks, chunk);
	MemoryContextSwitchTo(old);
	eng_builder_send(&bld);
	chunk->built = true;
	if (chunk->pending == 0)
		eng_chunk_acked(eng, chunk);
}

/* Send one backfill chunk of some index being built; false if none could. */
bool
eng_backfill_step(Engine *eng)
{
	int			n;

	for (n = 0; n < eng->nix; n++)
	{
		IndexRuntime *ix = eng->ix[(eng->backfill_turn + n) % eng->nix];

		if (!flusso_index_active(ix) || ix->build_gen == 0 || ix->build_exhausted ||
			flusso_index_lock_waiting(ix) || !flusso_index_build_ready(ix) ||
			!flusso_index_ensure_remote(ix, eng->sink))
			continue;
		eng->backfill_turn = (eng->backfill_turn + n + 1) % eng->nix;
		backfill_chunk(eng, ix);
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
eng_finish_builds(Engine *eng)
{
	int			i;

	for (i = 0; i < eng->nix; i++)
	{
		if (flusso_index_finish_wait_ms(eng->ix[i]) == 0)
			maybe_finish_build(eng, eng->ix[i]);
	}
}

/* Indexes whose live generation vanished from OpenSearch are rebuilt. */
void
eng_rebuild_vanished(Engine *eng)
{
	int			i;
	bool		any = false;

	for (i = 0; i < eng->nix; i++)
		any |= eng->ix[i]->rebuild_needed && flusso_index_active(eng->ix[i]);
	if (!any)
		return;
	eng_begin_work(eng, "flusso: rebuilding a vanished index");
	for (i = 0; i < eng->nix; i++)
	{
		IndexRuntime *ix = eng->ix[i];

		if (!ix->rebuild_needed || !flusso_index_active(ix))
			continue;
		ix->rebuild_needed = false;
		flusso_index_start_build(ix, flusso_capture_round()->end_lsn,
								 "its index disappeared from OpenSearch");
	}
	eng_save_dirty(eng);
	eng_end_work(eng);
}
