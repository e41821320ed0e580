/*-------------------------------------------------------------------------
 *
 * resolve.h
 *	  Maps changed rows to the documents they affect; sets of document keys.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_RESOLVE_H
#define FLUSSO_RESOLVE_H

#include "executor/spi.h"

#include "definition/sqlgen.h"

typedef struct FlussoKeySet FlussoKeySet;

extern FlussoKeySet *flusso_keyset_create(MemoryContext cxt);
extern bool flusso_keyset_add(FlussoKeySet *ks, const char *id);
extern int	flusso_keyset_count(FlussoKeySet *ks);
extern void flusso_keyset_reset(FlussoKeySet *ks);
extern List *flusso_keyset_ids(FlussoKeySet *ks);

/* The build statement's parameters: one text[] per key column. */
extern Datum *flusso_keyset_params(List *ids, int nkeycols);

/* A document _id from key column values, and back (one part per key column). */
extern char *flusso_id_join(char **parts, int nparts);
extern List *flusso_id_split(const char *id, int nparts);

/*
 * Add to out the document ids that rows with these images affect.  Each
 * image is a char *[w->ncols] of the watched columns' text (NULL where the
 * image does not carry the column).  plan is the watch's prepared resolve
 * statement, or NULL to run its text.
 */
extern void flusso_resolve(FlussoWatch *w, SPIPlanPtr plan, List *images,
						   FlussoKeySet *out, int nkeycols);

#endif							/* FLUSSO_RESOLVE_H */
