/*-------------------------------------------------------------------------
 *
 * choose.c
 *	  Which sink documents go to: the one the settings ask for.
 *
 * The sinks are interchangeable tables of functions (sink.h): the
 * OpenSearch sink when flusso.opensearch_url is set, the dry run when it
 * is empty.  This file only chooses (the sinks know only the seam, not
 * each other); it must not hold any sink's state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sink/choose.h"
#include "sink/search.h"

const FlussoSink *
flusso_sink(void)
{
	return flusso_search_configured() ? &flusso_opensearch_sink : &flusso_dryrun_sink;
}
