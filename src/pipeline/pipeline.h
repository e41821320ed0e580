/*-------------------------------------------------------------------------
 *
 * pipeline.h
 *	  The bottom of the pipeline: the engine's state, the live batch, and
 *	  the helpers every stage shares (pipeline.c).
 *
 * The worker process runs one pipeline, whose state is one process-local
 * Engine that engine.c owns and hands to every stage as eng.  Nothing here
 * is in shared memory.  The stages sit above this file, each with its own
 * header, and call downward only:
 *	engine.c	the step and the entry points
 *	loader.c, rounds.c, backfill.c	definitions; decoded rounds; builds
 *	batches.c	live batches, and building a list of documents
 *	ship.c		bulk requests and their outcomes
 *	policy.c	failure policies and dead letters
 *	pipeline.c	this header's functions
 * A stage that must tell one above it something takes a callback
 * (Engine.chunk_acked).
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_PIPELINE_H
#define FLUSSO_PIPELINE_H

#include "lib/ilist.h"

#include "capture/capture.h"
#include "pipeline/indexes.h"
#include "pipeline/resolve.h"
#include "sink/bulk.h"
#include "sink/sink.h"
#include "status/observer.h"

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

/* Images of one watch whose resolution waits for a lock. */
typedef struct DeferredImages
{
	FlussoWatch *watch;
	List	   *images;			/* of char *[watch->ncols], in the batch's memory */
} DeferredImages;

/* Documents of an index with dead letters that OpenSearch has since acknowledged. */
typedef struct SettledLetters
{
	char	   *index;
	List	   *ids;
	TimestampTz sent_at;		/* only dead letters older than this go */
} SettledLetters;

/* The state of one database's pipeline, its fields grouped by lifetime. */
typedef struct Engine
{
	/* the process's: set by flusso_engine_init() */
	MemoryContext cxt;			/* index runtimes: reset on every (re)load */
	MemoryContext batches_cxt;	/* live batches and bulk requests */
	/* backfill.c's, called by ship.c when a chunk's last request is settled */
	void		(*chunk_acked) (struct Engine *eng, BackfillChunk *chunk);
	char	   *role;			/* flusso.role the indexes were loaded with */

	/* the definitions: set by every (re)load (loader.c) */
	bool		loaded;
	const FlussoSink *sink;
	IndexRuntime **ix;
	int			nix;
	Oid			definitions_relid;
	Oid			requests_relid;

	/* in flight: dropped by eng_reset_pipeline(), replayed from the slot */
	dlist_head	batches;		/* live batches, oldest first */
	int			nbatches;
	dlist_head	flight;			/* requests sent, not yet completed */
	int			in_flight;
	BulkRequest *retries;		/* waiting for their backoff */
	int			nretries;
	List	   *dead_letters;	/* rows to insert, in cxt */
	List	   *settled_letters;	/* SettledLetters: dead letters to delete, in cxt */

	/* the stream */
	TimestampTz round_started;
	XLogRecPtr	marker_lsn;
	XLogRecPtr	reload_lsn;		/* a control change waits for the pipeline to drain */
	bool		ddl_reload;		/* a watched table was altered: reload at round end */
	List	   *requests;		/* reindex requests not handled yet */
	int			backfill_turn;

	/* the outside world, as last seen */
	bool		search_failing; /* the search engine failed a whole request */
	TimestampTz last_probe;		/* of the search engine, while it failed */
	TimestampTz next_lag_poll;
	TimestampTz lag_warned_at;
	TimestampTz last_log;		/* of eng_log_limited() */

	/* the unit of work in progress: eng_begin_work() to eng_end_work() */
	MemoryContext work_caller_cxt;
} Engine;

/* Live batches held at once at most (a lock wait must not hold the WAL in memory). */
#define MAX_LIVE_BATCHES 64

/*
 * A round closes at this many images (four batches' worth): when changes
 * pile up, a larger round folds more changes to the same documents into
 * one build; memory stays bounded by flusso.capture_memory.
 */
#define ROUND_IMAGES (4 * flusso_batch_size)

/*
 * A unit of work: one transaction, SPI connected, a snapshot pushed.
 * eng_end_work() commits and goes back to the memory context current at
 * eng_begin_work().  eng_begin_transaction() starts the transaction alone.
 */
extern void eng_begin_transaction(Engine *eng);
extern void eng_begin_work(Engine *eng, const char *what);
extern void eng_end_work(Engine *eng);

/* Save the durable state of every index that changed (inside a transaction). */
extern void eng_save_dirty(Engine *eng);

extern IndexRuntime *eng_find_index(Engine *eng, const char *name);

/* Drop everything in flight; what it held is replayed from the slot. */
extern void eng_reset_pipeline(Engine *eng);

/* Forget the dead letters not written yet, and the settled ones. */
extern void eng_free_dead_letters(Engine *eng);

/* A retry's wait: doubling from 100 ms up to flusso.retry_max_interval, with jitter. */
extern long eng_backoff_ms(int attempts);

/* A log line at most every 10 s; arg is redacted. */
extern void eng_log_limited(Engine *eng, int level, const char *fmt, const char *arg);

#endif							/* FLUSSO_PIPELINE_H */
