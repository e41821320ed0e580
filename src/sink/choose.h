/*-------------------------------------------------------------------------
 *
 * choose.h
 *	  Which sink documents go to.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_CHOOSE_H
#define FLUSSO_CHOOSE_H

#include "sink/sink.h"

/* The sink the settings ask for: OpenSearch with a URL, else the dry run. */
extern const FlussoSink *flusso_sink(void);

#endif							/* FLUSSO_CHOOSE_H */
