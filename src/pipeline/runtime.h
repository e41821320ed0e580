/*-------------------------------------------------------------------------
 *
 * runtime.h
 *	  IndexRuntime: the sync worker's view of one index, its fields grouped
 *	  by lifetime.
 *
 * The type alone, for the files that run an index's statements
 * (indexrun.c) and those that drive it (indexes.c, the engine's stages);
 * the functions are indexes.h's.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_RUNTIME_H
#define FLUSSO_RUNTIME_H

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"

#include "definition/definition.h"

/* A backfill chunk: a key range sent in one or more bulk requests. */
typedef struct BackfillChunk
{
	struct IndexRuntime *index;
	int			generation;
	List	   *last_key;		/* key of its last row (char *) */
	int64		rows;
	int			pending;		/* requests not yet acknowledged */
	bool		built;
} BackfillChunk;

/*
 * A remote step that failed is not tried again before retry_at; the wait
 * (ms) doubles from 100 ms up to flusso.retry_max_interval, and is 0 once
 * the step succeeded.
 */
typedef struct Backoff
{
	TimestampTz retry_at;
	int			ms;
} Backoff;

typedef struct IndexRuntime
{
	int			num;
	char	   *name;
	Oid			owner;			/* its statements run with this role's rights */
	char	   *def_json;		/* the stored definition */
	IndexDef   *def;			/* NULL when broken */
	char	   *broken;			/* why it cannot sync now */
	List	   *watches;
	int			nkeys;
	int			policy;
	char	   *body;			/* settings and mappings for a new generation */
	SPIPlanPtr	build_plan;
	SPIPlanPtr	backfill_first_plan;
	SPIPlanPtr	backfill_next_plan;
	SPIPlanPtr *resolve_plans;	/* per watch; NULL where direct */

	/* durable, in flusso.index_state */
	char	   *live_def_json;	/* what the live generation was built from */
	char	   *build_def_json; /* what the build generation is built from */
	int			live_gen;		/* the alias points here; 0 none */
	int			build_gen;		/* being filled; 0 none; = live_gen at first */
	XLogRecPtr	build_version;
	List	   *build_cursor;	/* last key acknowledged; NIL from the start */
	int64		build_done;
	int64		build_total;
	bool		paused;
	bool		stopped;
	bool		has_dead_letters;	/* some of its documents are in dead_letters */
	bool		no_access;		/* its owner or flusso.role may not read a table */
	char	   *error;

	/* this run only */
	bool		remote_ready;	/* generations prepared in OpenSearch */
	Backoff		remote_backoff; /* after a failed preparation */
	TransactionId *wait_xids;	/* backfill starts once these finished */
	int			nwait;
	List	   *chunks;			/* BackfillChunk in key order, in flight */
	List	   *next_cursor;	/* where the next chunk starts */
	bool		build_exhausted;
	List	   *drop_gens;		/* generations to drop in the sink */
	Backoff		drop_backoff;	/* after a failed drop */
	Backoff		finish_backoff; /* after a failed alias swap */
	bool		rebuild_needed; /* the live generation vanished remotely */
	bool		build_fresh;	/* the build generation was started this run */
	bool		dirty;			/* durable state changed; save it */
	TimestampTz saved_at;
	Backoff		lock_backoff;	/* after flusso.lock_timeout: its work waits */
	char	   *waiting_for;	/* what it waits for, or NULL */
	TimestampTz waiting_since;
} IndexRuntime;

#endif							/* FLUSSO_RUNTIME_H */
