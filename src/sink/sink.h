/*-------------------------------------------------------------------------
 *
 * sink.h
 *	  Where documents go: an interface, with an OpenSearch and a dry-run sink.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_SINK_H
#define FLUSSO_SINK_H

#include "sink/bulk.h"

typedef struct FlussoSink
{
	const char *name;

	/*
	 * Index management, synchronous.  Each returns NULL on success or a
	 * message saying what went wrong.
	 */
	/*
	 * Make sure physical exists with this body and was made by flusso; says
	 * whether it had to be created, and whether a failure is permanent (a
	 * foreign index in the way) rather than passing (OpenSearch down).
	 */
	char	   *(*prepare_index) (const char *physical, const char *body,
								  const char *index_name, bool *created,
								  bool *permanent);
	/*
	 * Point alias (the index's name) at physical only, in one atomic step;
	 * refuses when the alias is held by an index flusso did not make.
	 */
	char	   *(*point_alias) (const char *alias, const char *physical);
	/* Drop physical, only if flusso made it for index_name (its _meta marker). */
	char	   *(*drop_index) (const char *physical, const char *index_name);
	/*
	 * Drop every other physical index flusso made for index_name from this
	 * database (left by an earlier index of that name): all but keep.
	 */
	void		(*drop_leftovers) (const char *index_name, const char *database,
								   const char *keep);
	/* make what was written to the index (an alias) searchable now */
	char	   *(*refresh) (const char *alias);

	/* bulk requests, asynchronous */
	void		(*send) (BulkRequest *req);
	BulkRequest *(*next_done) (void);
	int			(*in_flight) (void);
	/* wait for the latch, a socket or a timeout; returns WL_* events */
	int			(*wait) (long timeout_ms);
	void		(*abort_all) (void);
} FlussoSink;

/* The sinks there are (flusso_sink() in choose.h picks one). */
extern const FlussoSink flusso_opensearch_sink;
extern const FlussoSink flusso_dryrun_sink;

#endif							/* FLUSSO_SINK_H */
