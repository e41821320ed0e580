/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The sync worker of one database: its process lifecycle and main loop.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_WORKER_H
#define FLUSSO_WORKER_H

#include "fmgr.h"

/* Its main function, by name from the background worker the launcher starts. */
extern PGDLLEXPORT void flusso_worker_main(Datum main_arg);

#endif							/* FLUSSO_WORKER_H */
