/*-------------------------------------------------------------------------
 *
 * policy.h
 *	  What happens to a document that cannot be written: the index's failure
 *	  policy, and the dead letters kept, written and settled.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_POLICY_H
#define FLUSSO_POLICY_H

#include "pipeline/pipeline.h"

/*
 * A document that cannot be written goes to its index's failure policy.
 * error may carry row values; public_error (what pg_monitor sees) must not.
 */
extern void eng_reject(Engine *eng, IndexRuntime *ix, int generation, const char *id,
					   const char *error, const char *public_error,
					   const char *doc, size_t doclen);

/*
 * Documents of an index with dead letters that OpenSearch acknowledged in
 * a request sent at sent_at: their dead letters, older than that, go.
 */
extern void eng_settle_letters(Engine *eng, IndexRuntime *ix, List *ids, TimestampTz sent_at);

/* Write the dead letters kept, and delete the settled ones (inside a unit of work). */
extern void eng_flush_dead_letters(Engine *eng);

#endif							/* FLUSSO_POLICY_H */
