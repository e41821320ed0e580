/*-------------------------------------------------------------------------
 *
 * ship.c
 *	  Shipping documents: bulk requests, completions, retries, policies.
 *
 * Turning built documents into _bulk requests of at most flusso.batch_size
 * documents and flusso.batch_bytes bytes, sending them through the sink,
 * and handling what comes back: 429/5xx and transport failures are
 * retried with backoff (a whole request or only its failed items), a 413
 * splits the request, a rejected document goes to its index's failure
 * policy (stop, skip, dead_letter).  A request is done for its owner (a
 * live batch or a backfill chunk) once nothing of it is left to retry.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "opensearch.h"
#include "pipeline.h"
#include "settings.h"


/* ---- sending ---- */

static void
send_request(BulkRequest *req)
{
	E.sink->send(req);
	E.in_flight++;
	dlist_push_tail(&E.flight, &req->flight_node);
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

static void
dead_letter(IndexRuntime *ix, int generation, const char *id, const char *error,
			const char *doc, size_t doclen)
{
	MemoryContext old = MemoryContextSwitchTo(E.cxt);
	List	   *row = list_make5(pstrdup(ix->name), pstrdup(id), psprintf("%d", generation),
								 pstrdup(error), doc ? pnstrdup(doc, doclen) : NULL);

	row = lappend(row, psprintf("%u", ix->owner));
	E.dead_letters = lappend(E.dead_letters, row);
	ix->has_dead_letters = true;
	MemoryContextSwitchTo(old);
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

		eng_reject(ix, gens[0] ? gens[0] : gens[1], id, why, why, NULL, 0);
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
		send_request(r);
		n++;
	}
	/* the requests are E.flight's now; the list was in bld->cxt, long-lived */
	list_free(bld->requests);
	bld->requests = NIL;
	bld->current = NULL;
	return n;
}

/* ---- failure policies ---- */

static int
policy_of(IndexRuntime *ix)
{
	return ix->def && ix->def->on_error >= 0 ? ix->def->on_error : flusso_on_error;
}

/*
 * A document that cannot be written goes to its index's failure policy.
 * error may carry row values; public_error (what pg_monitor sees) must not.
 */
void
eng_reject(IndexRuntime *ix, int generation, const char *id, const char *error,
		   const char *public_error, const char *doc, size_t doclen)
{
	char	   *message = psprintf("document \"%s\" of index \"%s\" rejected: %s", id, ix->name, error);
	char	   *public_message = psprintf("a document of index \"%s\" was rejected: %s", ix->name,
										  public_error);

	switch (policy_of(ix))
	{
		case FLUSSO_ON_ERROR_STOP:
			flusso_index_set_error_public(ix, message, public_message, true);
			break;
		case FLUSSO_ON_ERROR_SKIP:
			flusso_observer->on_error(ix->name, message, public_message);
			eng_log_limited(LOG, "flusso skipped a document: %s", message);
			break;
		case FLUSSO_ON_ERROR_DEAD_LETTER:
			flusso_observer->on_error(ix->name, message, public_message);
			dead_letter(ix, generation, id, error, doc, doclen);
			break;
	}
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

/* Forget the settled letters (in E.cxt). */
static void
free_settled_letters(void)
{
	ListCell   *lc;

	foreach(lc, E.settled_letters)
	{
		SettledLetters *s = lfirst(lc);

		pfree(s->index);
		list_free_deep(s->ids);
		pfree(s);
	}
	list_free(E.settled_letters);
	E.settled_letters = NIL;
}

/* Delete the dead letters of documents OpenSearch has since acknowledged. */
static void
delete_settled_letters(void)
{
	ListCell   *lc;

	foreach(lc, E.settled_letters)
	{
		SettledLetters *s = lfirst(lc);
		Oid			types[3] = {TEXTOID, TEXTARRAYOID, TIMESTAMPTZOID};
		Datum		values[3];
		Datum	   *ids = palloc(sizeof(Datum) * list_length(s->ids));
		ListCell   *ic;
		int			n = 0;

		foreach(ic, s->ids)
			ids[n++] = CStringGetTextDatum(lfirst(ic));
		values[0] = CStringGetTextDatum(s->index);
		values[1] = PointerGetDatum(construct_array(ids, n, TEXTOID, -1, false, TYPALIGN_INT));
		values[2] = TimestampTzGetDatum(s->sent_at);
		if (SPI_execute_with_args("DELETE FROM flusso.dead_letters WHERE index_name OPERATOR(pg_catalog.=) $1 "
								  "AND document_id OPERATOR(pg_catalog.=) ANY ($2) "
								  "AND failed_at OPERATOR(pg_catalog.<) $3",
								  3, types, values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete from flusso.dead_letters");
	}
	free_settled_letters();
}

/* Forget the dead letters not written yet, and the settled ones (they are in E.cxt). */
void
eng_free_dead_letters(void)
{
	ListCell   *lc;

	foreach(lc, E.dead_letters)
	{
		List	   *row = lfirst(lc);
		ListCell   *field;

		foreach(field, row)
		{
			if (lfirst(field))
				pfree(lfirst(field));
		}
		list_free(row);
	}
	list_free(E.dead_letters);
	E.dead_letters = NIL;
	free_settled_letters();
}

void
eng_flush_dead_letters(void)
{
	ListCell   *lc;

	delete_settled_letters();
	if (E.dead_letters == NIL)
		return;
	foreach(lc, E.dead_letters)
	{
		List	   *row = lfirst(lc);
		Oid			types[6] = {TEXTOID, TEXTOID, INT4OID, TEXTOID, TEXTOID, REGROLEOID};
		Datum		values[6];
		char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

		values[0] = CStringGetTextDatum(list_nth(row, 0));
		values[1] = CStringGetTextDatum(list_nth(row, 1));
		values[2] = Int32GetDatum(atoi(list_nth(row, 2)));
		values[3] = CStringGetTextDatum(list_nth(row, 3));
		nulls[4] = list_nth(row, 4) ? ' ' : 'n';
		values[4] = list_nth(row, 4) ? CStringGetTextDatum(list_nth(row, 4)) : (Datum) 0;
		values[5] = ObjectIdGetDatum(atooid(list_nth(row, 5)));
		/* a document rejected again replaces its earlier dead letter */
		if (SPI_execute_with_args("DELETE FROM flusso.dead_letters WHERE index_name OPERATOR(pg_catalog.=) $1 "
								  "AND document_id OPERATOR(pg_catalog.=) $2",
								  2, types, values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete from flusso.dead_letters");
		if (SPI_execute_with_args("INSERT INTO flusso.dead_letters (index_name, document_id, generation, error, body, owner) "
								  "VALUES ($1, $2, $3, $4, $5, $6)", 6, types, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert into flusso.dead_letters");
	}
	eng_free_dead_letters();
}

/* ---- completions ---- */

static void
schedule_retry(BulkRequest *req)
{
	req->attempts++;
	req->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), eng_backoff_ms(req->attempts));
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
		flusso_observer->on_error(NULL, req->failure, NULL);
		eng_log_limited(LOG, "flusso: %s; retrying with backoff", req->failure);
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

static void
owner_done_one(BulkRequest *req)
{
	if (req->kind == BULK_BACKFILL)
	{
		BackfillChunk *chunk = req->owner;

		if (--chunk->pending == 0 && chunk->built)
			eng_chunk_acked(chunk);
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

/*
 * Documents of an index with dead letters that OpenSearch acknowledged:
 * their dead letters, older than this request, are settled.
 */
static void
settle_letters(BulkRequest *req, IndexRuntime *ix, List *ids)
{
	MemoryContext old = MemoryContextSwitchTo(E.cxt);
	SettledLetters *s = palloc(sizeof(SettledLetters));
	ListCell   *lc;

	s->index = pstrdup(ix->name);
	s->ids = NIL;
	foreach(lc, ids)
		s->ids = lappend(s->ids, pstrdup(lfirst(lc)));
	s->sent_at = req->sent_at;
	E.settled_letters = lappend(E.settled_letters, s);
	MemoryContextSwitchTo(old);
}

static void
count_items(BulkRequest *req)
{
	List	  **acked = palloc0(sizeof(List *) * Max(1, E.nix));
	int			i;

	for (i = 0; i < req->nitems; i++)
	{
		BulkItem   *item = &req->items[i];
		IndexRuntime *ix = item->index < E.nix ? E.ix[item->index] : NULL;

		if (ix != NULL && item->outcome != BULK_ITEM_OK &&
			item->generation != ix->live_gen && item->generation != ix->build_gen)
			item->outcome = BULK_ITEM_OK;	/* for a retired generation: moot */
		if (ix == NULL || item->outcome == BULK_ITEM_RETRY)
			continue;
		if (item->outcome == BULK_ITEM_REJECTED && item->status == 404 &&
			item->error && strstr(item->error, "index_not_found_exception"))
			settle_missing_index(ix, item);
		if (item->outcome == BULK_ITEM_REJECTED)
			eng_reject(ix, item->generation, item->id, item->error, error_type(item->error),
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
	for (i = 0; i < E.nix; i++)
	{
		if (acked[i] != NIL)
			settle_letters(req, E.ix[i], acked[i]);
	}
}

static void
handle_done(BulkRequest *req)
{
	int			retry_items = 0;
	int			i;

	E.in_flight--;
	dlist_delete(&req->flight_node);
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
		eng_log_limited(LOG, "flusso: OpenSearch asked to retry documents (%s); retrying with backoff",
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
	bool		dirty = E.dead_letters != NIL || E.settled_letters != NIL;

	for (i = 0; i < E.nix && !dirty; i++)
		dirty = E.ix[i]->dirty;
	if (!dirty)
		return;
	eng_begin_work("flusso: recording outcomes");
	eng_flush_dead_letters();
	eng_save_dirty();
	eng_end_work();
}

void
eng_collect_completions(void)
{
	BulkRequest *req;

	while ((req = E.sink->next_done()) != NULL)
		handle_done(req);
	record_outcomes();
}

void
eng_send_due_retries(void)
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

/*
 * While requests wait for their backoff because OpenSearch failed, ask it
 * every second whether it answers again; once it does, they go at once
 * instead of waiting out a backoff of up to flusso.retry_max_interval.
 */
void
eng_probe_opensearch(void)
{
	static TimestampTz last_probe = 0;
	TimestampTz now = GetCurrentTimestamp();
	BulkRequest *req;

	if (!E.os_failing || E.retries == NULL || !TimestampDifferenceExceeds(last_probe, now, 1000))
		return;
	last_probe = now;
	if (flusso_os_ping_within(1000) != FLUSSO_OS_REACHABLE)
		return;
	E.os_failing = false;
	for (req = E.retries; req; req = req->next)
		req->not_before = now;
	ereport(LOG, (errmsg("flusso: OpenSearch answers again; the waiting requests are sent now")));
}

long
eng_next_retry_ms(void)
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
generation_in_use(IndexRuntime *ix, int generation)
{
	dlist_iter	it;
	BulkRequest *req;

	dlist_foreach(it, &E.flight)
	{
		if (holds_generation(dlist_container(BulkRequest, flight_node, it.cur), ix->num, generation))
			return true;
	}
	for (req = E.retries; req; req = req->next)
	{
		if (holds_generation(req, ix->num, generation))
			return true;
	}
	return false;
}

/* Generations retired by a swap or a restarted build go once no write for them is on its way. */
void
eng_drop_retired(void)
{
	int			i;

	for (i = 0; i < E.nix; i++)
	{
		if (E.ix[i]->drop_gens != NIL)
			flusso_index_drop_retired(E.ix[i], E.sink, generation_in_use);
	}
}
