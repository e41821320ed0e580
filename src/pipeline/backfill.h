/*-------------------------------------------------------------------------
 *
 * backfill.h
 *	  Builds: a generation filled chunk by chunk in key order.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_BACKFILL_H
#define FLUSSO_BACKFILL_H

#include "pipeline/pipeline.h"

/* Send one backfill chunk of some index being built; false if none could. */
extern bool eng_backfill_step(Engine *eng);

/*
 * A chunk is acknowledged: the durable cursor advances over the leading
 * acknowledged chunks, and the build finishes after its last.  The engine
 * hands it to ship.c as Engine.chunk_acked.
 */
extern void eng_chunk_acked(Engine *eng, BackfillChunk *chunk);

/* Complete builds whose alias swap failed try it again after their backoff. */
extern void eng_finish_builds(Engine *eng);

/* Indexes whose live generation vanished from OpenSearch are rebuilt. */
extern void eng_rebuild_vanished(Engine *eng);

#endif							/* FLUSSO_BACKFILL_H */
