/*-------------------------------------------------------------------------
 *
 * strset.h
 *	  A set of strings, on lib/simplehash.h: the captured images of a round
 *	  (capture.c) and the document keys of a batch (resolve.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_STRSET_H
#define FLUSSO_STRSET_H

typedef struct FlussoStringSet FlussoStringSet;

/* An empty set in cxt, sized for about nelements; it and its strings live there. */
extern FlussoStringSet *flusso_strset_create(MemoryContext cxt, uint32 nelements);

/* Add a copy of s unless s is there; the copy kept, or NULL when s was there. */
extern char *flusso_strset_add(FlussoStringSet *set, const char *s);

#endif							/* FLUSSO_STRSET_H */
