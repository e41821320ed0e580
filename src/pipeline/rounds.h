/*-------------------------------------------------------------------------
 *
 * rounds.h
 *	  Rounds: decoded changes resolved to the documents they affect.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_ROUNDS_H
#define FLUSSO_ROUNDS_H

#include "pipeline/pipeline.h"

/* Decode more WAL; close the round into a live batch when it is ready.  True if work was done. */
extern bool eng_decode_step(Engine *eng);

#endif							/* FLUSSO_ROUNDS_H */
