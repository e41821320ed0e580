/*-------------------------------------------------------------------------
 *
 * strset.c
 *	  A set of strings, on lib/simplehash.h.
 *
 * The captured images of a round are deduplicated by their text
 * (capture.c), and so are the document keys of a batch (resolve.c): both
 * keep a string once, in a memory context the caller resets as a whole.
 * The set never frees a string; it must not know what its strings mean.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"

#include "base/strset.h"

typedef struct StringEntry
{
	char	   *string;
	uint32		hash;
	char		status;
} StringEntry;

#define SH_PREFIX strhash
#define SH_ELEMENT_TYPE StringEntry
#define SH_KEY_TYPE char *
#define SH_KEY string
#define SH_HASH_KEY(tb, key) hash_bytes((const unsigned char *) (key), strlen(key))
#define SH_EQUAL(tb, a, b) (strcmp((a), (b)) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

struct FlussoStringSet
{
	MemoryContext cxt;			/* the hash and the strings */
	strhash_hash *hash;
};

FlussoStringSet *
flusso_strset_create(MemoryContext cxt, uint32 nelements)
{
	FlussoStringSet *set = MemoryContextAlloc(cxt, sizeof(FlussoStringSet));

	set->cxt = cxt;
	set->hash = strhash_create(cxt, nelements, NULL);
	return set;
}

char *
flusso_strset_add(FlussoStringSet *set, const char *s)
{
	char	   *copy = MemoryContextStrdup(set->cxt, s);
	bool		found;

	(void) strhash_insert(set->hash, copy, &found);
	if (!found)
		return copy;
	pfree(copy);
	return NULL;
}
