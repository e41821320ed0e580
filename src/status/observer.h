/*-------------------------------------------------------------------------
 *
 * observer.h
 *	  The events the pipeline reports, as a table of functions.
 *
 * The engine never touches status bookkeeping itself: every stage calls
 * the observer, and whatever observer the worker installed (the status
 * observer in status.c, or a test's own) turns the events into state.
 * This is the same seam the original daemon had between its engine and
 * its StatusObserver.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_OBSERVER_H
#define FLUSSO_OBSERVER_H

#include "postgres_ext.h"
#include "access/xlogdefs.h"
#include "datatype/timestamp.h"

typedef enum FlussoPhase
{
	FLUSSO_PHASE_STARTING,
	FLUSSO_PHASE_BACKFILLING,
	FLUSSO_PHASE_LIVE,
	FLUSSO_PHASE_STOPPED,
	FLUSSO_PHASE_STANDBY		/* a hot standby: waits for its promotion */
} FlussoPhase;

typedef enum FlussoIndexPhase
{
	FLUSSO_INDEX_PENDING,
	FLUSSO_INDEX_BACKFILLING,
	FLUSSO_INDEX_SEEDED,
	FLUSSO_INDEX_PAUSED,
	FLUSSO_INDEX_STOPPED,
	FLUSSO_INDEX_REBUILDING		/* seeded, and a new generation is being built */
} FlussoIndexPhase;

typedef enum FlussoReachability
{
	FLUSSO_SEARCH_UNKNOWN,
	FLUSSO_SEARCH_DRY_RUN,		/* no URL set: documents go to the log */
	FLUSSO_SEARCH_REACHABLE,
	FLUSSO_SEARCH_UNREACHABLE,
	FLUSSO_SEARCH_UNSUPPORTED	/* answers, but is an engine flusso refuses */
} FlussoReachability;

/* What one acknowledged batch did, for one index. */
typedef struct FlussoIndexBatchStats
{
	const char *index;
	uint64		upserted;
	uint64		deleted;
	uint64		failed;			/* dealt with by the failure policy */
} FlussoIndexBatchStats;

typedef struct FlussoBatchStats
{
	uint64		changes;		/* captured changes this batch settled */
	uint64		documents;		/* distinct documents built */
	double		flush_ms;		/* time from send to acknowledgement */
	XLogRecPtr	acked_lsn;		/* everything before it is acknowledged */
	int			nindexes;
	FlussoIndexBatchStats *indexes;
} FlussoBatchStats;

typedef struct FlussoObserver
{
	void		(*on_phase) (FlussoPhase phase);
	void		(*on_activity) (const char *what);
	void		(*on_changes_captured) (uint64 n);
	void		(*on_batch_committed) (const FlussoBatchStats *stats);
	void		(*on_caught_up) (XLogRecPtr lsn);
	void		(*on_index_phase) (const char *index, FlussoIndexPhase phase);
	void		(*on_backfill_progress) (const char *index, int64 done, int64 total);
	void		(*on_generations) (const char *index, int live, int building);
	/* message may carry row values; public_message (NULL: message) must not */
	void		(*on_error) (const char *index, const char *message,
							 const char *public_message);
	void		(*on_index_owner) (const char *index, Oid owner);
	/* what the index waits for (NULL: nothing), since when */
	void		(*on_index_waiting) (const char *index, const char *what,
									 TimestampTz since);
	void		(*on_slot_lag) (int64 bytes);
	void		(*on_lag_warning) (bool over);
	void		(*on_lag) (TimestampTz oldest_unacked);	/* 0: nothing waits */
	void		(*on_index_lag) (const char *index, TimestampTz oldest_unacked);
	void		(*on_bulk_latency) (double ms);
	/* engine: "opensearch", "elasticsearch" or NULL (not known) */
	void		(*on_reachability) (FlussoReachability state, const char *engine,
									const char *version, const char *error);
} FlussoObserver;

/* The observer the running process reports to (never NULL once set). */
extern const FlussoObserver *flusso_observer;

#endif							/* FLUSSO_OBSERVER_H */
