/*-------------------------------------------------------------------------
 *
 * batches.h
 *	  Live batches, and building a list of documents.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_BATCHES_H
#define FLUSSO_BATCHES_H

#include "pipeline/ship.h"

/* A new live batch at the end of the engine's list; confirm: its end goes to the slot. */
extern LiveBatch *eng_new_batch(Engine *eng, XLogRecPtr end_lsn, bool confirm);

/* The oldest batch not fully built that has work to do now, or NULL. */
extern LiveBatch *eng_unbuilt_batch(Engine *eng);

/* Build and send the next chunk of documents of b; false when nothing could be. */
extern bool eng_build_live_chunk(Engine *eng, LiveBatch *b);

/* Confirm the slot through every leading batch that is fully acknowledged. */
extern void eng_confirm_done_batches(Engine *eng);

/* The commit time of the oldest change each index (and the database) waits for. */
extern void eng_report_lag(Engine *eng);

/*
 * Build the documents of ids into bld, versioned with version; a failure
 * splits them down to the documents that fail, which go to the failure
 * policy.  False when the index waits for a lock (bld is as it was).
 * *documents counts the rows built.
 */
extern bool eng_build_ids(IndexRuntime *ix, List *ids, Builder *bld, uint64 version,
						  bool build_only, int64 *documents);

#endif							/* FLUSSO_BATCHES_H */
