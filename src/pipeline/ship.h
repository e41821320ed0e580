/*-------------------------------------------------------------------------
 *
 * ship.h
 *	  Shipping documents: bulk requests, completions, retries.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_SHIP_H
#define FLUSSO_SHIP_H

#include "pipeline/pipeline.h"

/*
 * Puts the documents of one index into requests of at most
 * flusso.batch_size documents and flusso.batch_bytes bytes, for one owner:
 * a live batch (BULK_LIVE, a LiveBatch) or a backfill chunk (BULK_BACKFILL,
 * a BackfillChunk).  Requests and their list live in cxt, which outlives
 * the transaction the documents are built in.
 */
typedef struct Builder
{
	Engine	   *eng;
	BulkOwnerKind kind;
	void	   *owner;
	MemoryContext cxt;
	List	   *requests;
	BulkRequest *current;
} Builder;

/* Where a builder stood, to take back what a failed build added. */
typedef struct BuilderMark
{
	int			nrequests;
	int			nitems;
	int			len;
} BuilderMark;

/* One row of a build statement (id, doc or NULL for a delete, ...). */
extern void eng_builder_add_row(Builder *bld, IndexRuntime *ix, Datum id, Datum doc,
								bool doc_null, uint64 version, bool build_only);
extern void eng_builder_mark(Builder *bld, BuilderMark *mark);
extern void eng_builder_rollback(Builder *bld, const BuilderMark *mark);

/* Send the builder's requests; returns how many went. */
extern int	eng_builder_send(Builder *bld);

/*
 * Completed requests: outcomes applied (retries scheduled, rejections to
 * the failure policy), their owners told, dead letters and index state
 * written.  A backfill chunk whose last request is settled goes to
 * eng->chunk_acked.
 */
extern void eng_collect_completions(Engine *eng);

/* Requests whose backoff is over go again. */
extern void eng_send_due_retries(Engine *eng);

/* While the search engine fails, ask it every second whether it answers again. */
extern void eng_probe_search(Engine *eng);

/* Milliseconds until the next retry is due; -1 when none waits. */
extern long eng_next_retry_ms(Engine *eng);

/* Generations retired by a swap go once no write for them is on its way. */
extern void eng_drop_retired(Engine *eng);

#endif							/* FLUSSO_SHIP_H */
