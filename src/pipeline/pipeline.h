/*-------------------------------------------------------------------------
 *
 * pipeline.h
 *	  The pipeline's shared state and helpers, for its own files only
 *	  (engine.c, loader.c, rounds.c, batches.c, backfill.c, ship.c).
 *
 * The worker process runs one pipeline: its state is one process-local
 * struct, E.  Nothing here is in shared memory.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_PIPELINE_H
#define FLUSSO_PIPELINE_H

#include "lib/ilist.h"

#include "pipeline/resolve.h"

#include "capture/capture.h"
#include "pipeline/indexes.h"
#include "sink/bulk.h"
#include "sink/sink.h"
#include "status/status.h"

/* The documents of one closed round (or of a dead-letter retry). */
typedef struct LiveBatch
{
	dlist_node	node;
	MemoryContext cxt;
	XLogRecPtr	end_lsn;		/* version, and where to confirm */
	bool		confirm;		/* false for dead-letter retries */
	int64		nchanges;
	struct FlussoKeySet **keys; /* per index: the ids' set (NULL: a retry batch) */
	List	  **ids;			/* per index: document ids to build */
	int		   *done;			/* per index: how many are built */
	List	  **deferred;		/* per index: DeferredImages waiting for a lock */
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
	int			nbatches;
	dlist_head	flight;			/* requests sent, not yet completed */
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
	List	   *settled_letters;	/* SettledLetters: dead letters to delete, in cxt */
	int			backfill_turn;
	XLogRecPtr	reload_lsn;		/* a control change waits for the pipeline to drain */
	TimestampTz lag_warned_at;
	List	   *requests;		/* reindex requests not handled yet */
	bool		ddl_reload;		/* a watched table was altered: reload at round end */
} Engine;

/* Documents of an index with dead letters that OpenSearch has since acknowledged. */
typedef struct SettledLetters
{
	char	   *index;
	List	   *ids;
	TimestampTz sent_at;		/* only dead letters older than this go */
} SettledLetters;

/* Images of one watch whose resolution waits for a lock. */
typedef struct DeferredImages
{
	FlussoWatch *watch;
	List	   *images;			/* of char *[watch->ncols], in the batch's memory */
} DeferredImages;

/* Put documents of one index into requests of at most batch_size / batch_bytes. */
typedef struct Builder
{
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

/* Live batches held at once at most (a lock wait must not hold the WAL in memory). */
#define MAX_LIVE_BATCHES 64

extern Engine flusso_engine_state;
#define E flusso_engine_state

/*
 * A round closes at this many images (four batches' worth): when changes
 * pile up, a larger round folds more changes to the same documents into
 * one build; memory stays bounded by flusso.capture_memory.
 */
#define ROUND_IMAGES (4 * flusso_batch_size)

/* engine.c: transactions and small helpers */
extern long eng_backoff_ms(int attempts);
extern void eng_begin_transaction(void);
extern void eng_begin_work(const char *what);
extern void eng_end_work(void);
extern IndexRuntime *eng_find_index(const char *name);
extern void eng_log_limited(int level, const char *fmt, const char *arg);
extern void eng_reset_pipeline(void);
extern void eng_save_dirty(void);

/* loader.c: definitions, requests, DDL */
extern void eng_check_ddl(void);
extern bool eng_drained(void);
extern void eng_forget_indexes(void);
extern void eng_load(void);
extern void eng_reload(XLogRecPtr lsn);
extern void eng_take_requests(void);

/* rounds.c: decoding into rounds */
extern bool eng_decode_step(void);

/* batches.c: live batches, and building a list of documents */
extern bool eng_build_live_chunk(LiveBatch *b);
extern bool eng_build_ids(IndexRuntime *ix, List *ids, Builder *bld, uint64 version,
						  bool build_only, int64 *documents);
extern void eng_confirm_done_batches(void);
extern LiveBatch *eng_new_batch(XLogRecPtr end_lsn, bool confirm);
extern LiveBatch *eng_unbuilt_batch(void);
extern void eng_report_lag(void);

/* backfill.c: builds */
extern bool eng_backfill_step(void);
extern void eng_chunk_acked(BackfillChunk *chunk);
extern void eng_finish_builds(void);
extern void eng_rebuild_vanished(void);

/* ship.c: bulk requests and their outcomes */
extern void eng_builder_add_row(Builder *bld, IndexRuntime *ix, Datum id, Datum doc, bool doc_null,
								uint64 version, bool build_only);
extern void eng_builder_mark(Builder *bld, BuilderMark *mark);
extern void eng_builder_rollback(Builder *bld, const BuilderMark *mark);
extern int	eng_builder_send(Builder *bld);
extern void eng_reject(IndexRuntime *ix, int generation, const char *id, const char *error,
					   const char *public_error, const char *doc, size_t doclen);
extern void eng_collect_completions(void);
extern void eng_drop_retired(void);
extern void eng_flush_dead_letters(void);
extern void eng_free_dead_letters(void);
extern long eng_next_retry_ms(void);
extern void eng_probe_opensearch(void);
extern void eng_send_due_retries(void);

#endif							/* FLUSSO_PIPELINE_H */
