/*-------------------------------------------------------------------------
 *
 * loader.h
 *	  What the pipeline syncs: definitions, watches, requests, DDL.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_LOADER_H
#define FLUSSO_LOADER_H

#include "pipeline/pipeline.h"

/* Load every definition at the slot's confirmed position (the slot made if missing). */
extern void eng_load(Engine *eng);

/* Load the definitions again at lsn, once the pipeline has drained. */
extern void eng_reload(Engine *eng, XLogRecPtr lsn);
extern bool eng_drained(Engine *eng);

/* Forget every index (their memory goes). */
extern void eng_forget_indexes(Engine *eng);

/* Requests from backends, through shared memory: reindex, refresh. */
extern void eng_take_requests(Engine *eng);

/* A watched table was altered: the definitions are compiled again at round end. */
extern void eng_check_ddl(Engine *eng);

#endif							/* FLUSSO_LOADER_H */
