/*-------------------------------------------------------------------------
 *
 * indexes.h
 *	  The sync worker's runtime view of each index: plans, generations,
 *	  backfill progress.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_INDEXES_H
#define FLUSSO_INDEXES_H

#include "access/xlogdefs.h"

#include "pipeline/runtime.h"
#include "sink/sink.h"

/*
 * Locks: a statement of the index waited flusso.lock_timeout for a lock.
 * Its work is put aside (the caller keeps it) and tried again after a
 * backoff; status says which table it waits for and since when.
 */
extern void flusso_index_lock_wait(IndexRuntime *ix);
extern void flusso_index_no_access(IndexRuntime *ix, const char *problem);
extern bool flusso_index_lock_waiting(IndexRuntime *ix);
extern void flusso_index_lock_granted(IndexRuntime *ix);
extern long flusso_index_lock_wait_ms(IndexRuntime *ix);

/* The physical OpenSearch index of a generation. */
extern char *flusso_index_physical(IndexRuntime *ix, int generation);

/* Does the index take changes now? */
extern bool flusso_index_active(IndexRuntime *ix);

/* Free the prepared plans. */
extern void flusso_index_free(IndexRuntime *ix);

/* Compile the definition and prepare its plans (inside a transaction). */
extern void flusso_index_compile(IndexRuntime *ix, const char *json, MemoryContext cxt);

/* flusso.index_state: load (or make) and save (inside a transaction). */
extern void flusso_index_load_state(IndexRuntime *ix);
extern void flusso_index_save_state(IndexRuntime *ix);
extern void flusso_index_delete_state(const char *name);

/* Free the build's backfill chunks; with all, also those still in flight. */
extern void flusso_index_free_chunks(IndexRuntime *ix, bool all);

/* Start a new build generation at version lsn (inside a transaction). */
extern void flusso_index_start_build(IndexRuntime *ix, XLogRecPtr lsn, const char *why);
extern void flusso_index_report_phase(IndexRuntime *ix);

/* Is the build allowed to read rows yet (the transactions it waits for ended)? */
extern bool flusso_index_build_ready(IndexRuntime *ix);

/* Make sure the generations exist in the sink; false (and error set) if not. */
extern bool flusso_index_ensure_remote(IndexRuntime *ix, const FlussoSink *sink);

/* Milliseconds until ensure_remote should be tried again; -1 when not needed. */
extern long flusso_index_remote_wait_ms(IndexRuntime *ix);

/* Every row of the build acknowledged: only the alias swap is left. */
extern bool flusso_index_build_complete(IndexRuntime *ix);

/* Milliseconds until finish_build should be tried again; -1 when not needed. */
extern long flusso_index_finish_wait_ms(IndexRuntime *ix);

/* The build is complete: swap the alias, drop the old generation later. */
extern bool flusso_index_finish_build(IndexRuntime *ix, const FlussoSink *sink);
extern void flusso_index_drop_retired(IndexRuntime *ix, const FlussoSink *sink,
									  bool (*in_use) (void *arg, IndexRuntime *ix, int generation),
									  void *arg);

/*
 * Record an error of the index (and stop it when stop).  The message may
 * carry row values: what members of pg_monitor see is public_message
 * (NULL: the message itself).
 */
extern void flusso_index_set_error(IndexRuntime *ix, const char *message, bool stop);
extern void flusso_index_set_error_public(IndexRuntime *ix, const char *message,
										  const char *public_message, bool stop);

#endif							/* FLUSSO_INDEXES_H */
