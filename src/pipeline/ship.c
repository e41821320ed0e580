/*-------------------------------------------------------------------------
 *
 * ship.c
 *	  Shipping documents: bulk requests, completions, retries.
 *
 * Turning built documents into _bulk requests of at most flusso.batch_size
 * documents and flusso.batch_bytes bytes, sending them through the sink,
 * and handling what comes back: 429/5xx and transport failures are
 * retried with backoff (a whole request or only its failed items), a 413
 * splits the request, a rejected document goes to its index's failure
 * policy (policy.c).  A request is done for its owner (a live batch or a
 * backfill chunk) once nothing of it is left to retry; a backfill chunk
 * all of whose requests are done is handed to the callback its stage
 * supplied (Engine.chunk_acked).
 *
 * It must not build documents nor call up into the stages that send
 * (batches.c, backfill.c): they hand it builders and take its callbacks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "base/settings.h"
#include "pipeline/policy.h"
#include "pipeline/ship.h"
#include "sink/search.h"

/* ---- sending ---- */

static void
send_request(Engine *eng, BulkRequest *req)
{
	eng->sink->send(req);
	eng->in_flight++;
	dlist_push_tail(&eng->flight, &req->flight_node);
}

static void
owner_add_pending(BulkRequest *req, int n)
{
	if (req->kind == BULK_BACKFILL)
		((BackfillChunk *) req->owner)->pending += n;
	else
		((LiveBatch *) req->owner)->pending += n;
}

static BulkRequest *
builder_request(Builder *bld, size_t adding)
{
	BulkRequest *r = bld->current;

	if (r == NULL || r->nitems >= flusso_batch_size ||
		(r->nitems > 0 && r->body.len + adding > (size_t) flusso_batch_bytes))
	{
		MemoryContext old;

		r = flusso_bulk_create(bld->cxt, bld->kind, bld->owner);
		/* the list outlives the transaction the documents are built in */
		old = MemoryContextSwitchTo(bld->cxt);
		bld->requests = lappend(bld->requests, r);
		MemoryContextSwitchTo(old);
		bld->current = r;
	}
	return r;
}

/* One built document (doc NULL: a delete) to every generation that takes it. */
static void
builder_add(Builder *bld, IndexRuntime *ix, const char *id, const char *doc, size_t len,
			uint64 version, bool build_only)
{
	int			gens[2] = {build_only ? 0 : ix->live_gen, ix->build_gen};
	int			g;

	if (len + 256 > (size_t) flusso_batch_bytes)
	{
		char	   *why = psprintf("the document is %zu bytes, more than flusso.batch_bytes (%d)",
								   len, flusso_batch_bytes);

		eng_reject(bld->eng, ix, gens[0] ? gens[0] : gens[1], id, why, why, NULL, 0);
		return;
	}
	for (g = 0; g < 2; g++)
	{
		if (gens[g] == 0 || (g == 1 && gens[1] == gens[0]))
			continue;
		flusso_bulk_add(builder_request(bld, len + 256), ix->num,
						flusso_index_physical(ix, gens[g]), gens[g], id, version, doc, len);
	}
}

/*
 * The document of a build statement's row (id, doc, ...): the text is read
 * where it lies in the row, not copied out through its output function.
 */
void
eng_builder_add_row(Builder *bld, IndexRuntime *ix, Datum id, Datum doc, bool doc_null,
					uint64 version, bool build_only)
{
	const char *body = NULL;
	size_t		len = 0;

	if (!doc_null)
	{
		struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(doc));

		body = VARDATA_ANY(v);
		len = VARSIZE_ANY_EXHDR(v);
	}
	builder_add(bld, ix, TextDatumGetCString(id), body, len, version, build_only);
}

void
eng_builder_mark(Builder *bld, BuilderMark *mark)
{
	mark->nrequests = list_length(bld->requests);
	mark->nitems = bld->current ? bld->current->nitems : 0;
	mark->len = bld->current ? bld->current->body.len : 0;
}

/* Take back what was added since the mark: a build that failed half way. */
void
eng_builder_rollback(Builder *bld, const BuilderMark *mark)
{
	while (list_length(bld->requests) > mark->nrequests)
	{
		flusso_bulk_free(llast(bld->requests));
		bld->requests = list_delete_last(bld->requests);
	}
	bld->current = bld->requests != NIL ? llast(bld->requests) : NULL;
	if (bld->current)
	{
		bld->current->nitems = mark->nitems;
		bld->current->body.len = mark->len;
		bld->current->body.data[mark->len] = '\0';
	}
}

int
eng_builder_send(Builder *bld)
{
	ListCell   *lc;
	int			n = 0;

	/* documents never hold what the standbys of a failover slot lack */
	if (bld->requests != NIL)
		flusso_capture_wait_for_standbys();
	foreach(lc, bld->requests)
	{
		BulkRequest *r = lfirst(lc);

		if (r->nitems == 0)
		{
			flusso_bulk_free(r);
			continue;
		}
		owner_add_pending(r, 1);
		send_request(bld->eng, r);
		n++;
	}
	/* the requests are eng->flight's now; the list was in bld->cxt, long-lived */
	list_free(bld->requests);
	bld->requests = NIL;
	bld->current = NULL;
	return n;
}

/* ---- completions ---- */

static void
schedule_retry(Engine *eng, BulkRequest *req)
{
	req->attempts++;
	req->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), eng_backoff_ms(req->attempts));
	req->next = eng->retries;
	eng->retries = req;
	eng->nretries++;
}

/* A whole request failed (the search engine is away), or one came back. */
static void
note_search_outcome(Engine *eng, BulkRequest *req)
{
	if (req->whole_retry && req->failure)
	{
		/* a refused engine answers: the ping's "unsupported" stays */
		if (!eng->search_failing && flusso_search_refusal() == NULL)
			flusso_observer->on_reachability(FLUSSO_SEARCH_UNREACHABLE, NULL, NULL, req->failure);
		flusso_observer->on_error(NULL, req->failure, NULL);
		eng_log_limited(eng, LOG, "flusso: %s; retrying with backoff", req->failure);
		eng->search_failing = true;
	}
	else if (eng->search_failing && !req->whole_retry)
	{
		eng->search_failing = false;
		(void) flusso_search_ping();
	}
}

static bool
is_retry(BulkItem *item)
{
	return item->outcome == BULK_ITEM_RETRY;
}

static void
owner_done_one(Engine *eng, BulkRequest *req)
{
	if (req->kind == BULK_BACKFILL)
	{
		BackfillChunk *chunk = req->owner;

		if (--chunk->pending == 0 && chunk->built)
			eng->chunk_acked(eng, chunk);
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

/* The error type of an engine's "type: reason": what may be shown without row values. */
static char *
error_type(const char *error)
{
	const char *colon = error ? strchr(error, ':') : NULL;

	if (error == NULL)
		return pstrdup("rejected");
	return colon ? pnstrdup(error, colon - error) : pstrdup(error);
}

static void
count_items(Engine *eng, BulkRequest *req)
{
	List	  **acked = palloc0(sizeof(List *) * Max(1, eng->nix));
	int			i;

	for (i = 0; i < req->nitems; i++)
	{
		BulkItem   *item = &req->items[i];
		IndexRuntime *ix = item->index < eng->nix ? eng->ix[item->index] : NULL;

		if (ix != NULL && item->outcome != BULK_ITEM_OK &&
			item->generation != ix->live_gen && item->generation != ix->build_gen)
			item->outcome = BULK_ITEM_OK;	/* for a retired generation: moot */
		if (ix == NULL || item->outcome == BULK_ITEM_RETRY)
			continue;
		if (item->outcome == BULK_ITEM_REJECTED && item->status == 404 &&
			item->error && strstr(item->error, "index_not_found_exception"))
			settle_missing_index(ix, item);
		if (item->outcome == BULK_ITEM_REJECTED)
			eng_reject(eng, ix, item->generation, item->id, item->error, error_type(item->error),
					   req->body.data + item->doc, item->is_delete ? 0 : item->end - item->doc - 1);
		if (item->outcome == BULK_ITEM_OK && ix->has_dead_letters)
			acked[item->index] = lappend(acked[item->index], item->id);
		/* rejections count as errors when they happen (eng_reject), once */
		if (req->kind != BULK_BACKFILL && item->outcome == BULK_ITEM_OK)
		{
			FlussoIndexBatchStats *s = &((LiveBatch *) req->owner)->stats[item->index];

			if (!item->is_delete)
				s->upserted++;
			else if (item->status != 404)
				s->deleted++;	/* a delete of a document never written is not counted */
		}
	}
	for (i = 0; i < eng->nix; i++)
	{
		if (acked[i] != NIL)
			eng_settle_letters(eng, eng->ix[i], acked[i], req->sent_at);
	}
}

static void
handle_done(Engine *eng, BulkRequest *req)
{
	int			retry_items = 0;
	int			i;

	eng->in_flight--;
	dlist_delete(&req->flight_node);
	note_search_outcome(eng, req);
	if (!req->whole_retry)
		flusso_observer->on_bulk_latency(req->elapsed_ms);
	if (req->whole_retry)
	{
		schedule_retry(eng, req);
		return;
	}
	if (req->too_large && req->nitems > 1)
	{
		BulkRequest *a = flusso_bulk_subset(req, NULL, 0, req->nitems / 2);
		BulkRequest *b = flusso_bulk_subset(req, NULL, req->nitems / 2, req->nitems);

		owner_add_pending(req, 1);
		schedule_retry(eng, a);
		schedule_retry(eng, b);
		flusso_bulk_free(req);
		return;
	}
	if (req->too_large)
	{
		req->items[0].outcome = BULK_ITEM_REJECTED;
		req->items[0].error = pstrdup("HTTP 413: the document is larger than OpenSearch's http.max_content_length");
	}
	count_items(eng, req);
	for (i = 0; i < req->nitems; i++)
		retry_items += is_retry(&req->items[i]);
	if (retry_items > 0)
	{
		BulkRequest *sub;
		BulkItem   *first = req->items;

		while (!is_retry(first))
			first++;
		eng_log_limited(eng, LOG, "flusso: OpenSearch asked to retry documents (%s); retrying with backoff",
						psprintf("%d of %d, the first: HTTP %d %s", retry_items, req->nitems,
								 first->status, first->error ? first->error : ""));
		sub = flusso_bulk_subset(req, is_retry, 0, req->nitems);
		owner_add_pending(req, 1);
		schedule_retry(eng, sub);
	}
	owner_done_one(eng, req);
	flusso_bulk_free(req);
}

/* Write what completions left to record: dead letters, index state. */
static void
record_outcomes(Engine *eng)
{
	int			i;
	bool		dirty = eng->dead_letters != NIL || eng->settled_letters != NIL;

	for (i = 0; i < eng->nix && !dirty; i++)
		dirty = eng->ix[i]->dirty;
	if (!dirty)
		return;
	eng_begin_work(eng, "flusso: recording outcomes");
	eng_flush_dead_letters(eng);
	eng_save_dirty(eng);
	eng_end_work(eng);
}

void
eng_collect_completions(Engine *eng)
{
	BulkRequest *req;

	while ((req = eng->sink->next_done()) != NULL)
		handle_done(eng, req);
	record_outcomes(eng);
}

void
eng_send_due_retries(Engine *eng)
{
	BulkRequest **p = &eng->retries;
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
		eng->nretries--;
		req->next = NULL;
		send_request(eng, req);
	}
}

/*
 * While requests wait for their backoff because OpenSearch failed, ask it
 * every second whether it answers again; once it does, they go at once
 * instead of waiting out a backoff of up to flusso.retry_max_interval.
 */
void
eng_probe_search(Engine *eng)
{
	TimestampTz now = GetCurrentTimestamp();
	BulkRequest *req;

	if (!eng->search_failing || eng->retries == NULL ||
		!TimestampDifferenceExceeds(eng->last_probe, now, 1000))
		return;
	eng->last_probe = now;
	if (flusso_search_ping_within(1000) != FLUSSO_SEARCH_REACHABLE)
		return;
	eng->search_failing = false;
	for (req = eng->retries; req; req = req->next)
		req->not_before = now;
	ereport(LOG, (errmsg("flusso: OpenSearch answers again; the waiting requests are sent now")));
}

long
eng_next_retry_ms(Engine *eng)
{
	BulkRequest *req;
	long		best = -1;
	TimestampTz now = GetCurrentTimestamp();

	for (req = eng->retries; req; req = req->next)
	{
		long		ms = Max(0, TimestampDifferenceMilliseconds(now, req->not_before));

		if (best < 0 || ms < best)
			best = ms;
	}
	return best;
}

/* ---- retired generations ---- */

static bool
holds_generation(BulkRequest *req, int index, int generation)
{
	int			i;

	for (i = 0; i < req->nitems; i++)
	{
		if (req->items[i].index == index && req->items[i].generation == generation)
			return true;
	}
	return false;
}

/* Is a write for this generation in flight or waiting to be retried? */
static bool
generation_in_use(void *arg, IndexRuntime *ix, int generation)
{
	Engine	   *eng = arg;
	dlist_iter	it;
	BulkRequest *req;

	dlist_foreach(it, &eng->flight)
	{
		if (holds_generation(dlist_container(BulkRequest, flight_node, it.cur), ix->num, generation))
			return true;
	}
	for (req = eng->retries; req; req = req->next)
	{
		if (holds_generation(req, ix->num, generation))
			return true;
	}
	return false;
}

/* Generations retired by a swap or a restarted build go once no write for them is on its way. */
void
eng_drop_retired(Engine *eng)
{
	int			i;

	for (i = 0; i < eng->nix; i++)
	{
		if (eng->ix[i]->drop_gens != NIL)
			flusso_index_drop_retired(eng->ix[i], eng->sink, generation_in_use, eng);
	}
}
