/*-------------------------------------------------------------------------
 *
 * pgshim.c
 *	  Just enough of the PostgreSQL backend to run flusso's parsers in a
 *	  fuzz target, outside a server.
 *
 * The real PostgreSQL code is linked where a library has it: StringInfo and
 * psprintf come from libpgcommon.a, snprintf from libpgport.a.  This file
 * supplies the backend pieces no library has:
 *
 * - memory contexts.  Every chunk is a malloc() block of exactly the size
 *   asked for, so AddressSanitizer knows the bounds of each palloc (the
 *   backend's allocator packs chunks into blocks, where an overrun goes
 *   unseen).  A context owns its chunks and its child contexts; resetting
 *   or deleting it frees them, as in the backend.  The targets run each
 *   input in a context they delete afterwards, so the leak checker reports
 *   only memory outside contexts (json-c's) that was never freed.  pfree of
 *   a pointer that palloc did not return aborts.
 * - List: list_make1 and lappend over pg_list.h's layout, with the cell
 *   array always exactly as long as the list, so that reading past the
 *   end is caught.
 * - escape_json, as utils/adt/json.c writes it.
 * - ereport and elog.  The code under test raises no PostgreSQL error by
 *   design (it reports problems in its results), so any ERROR, and any
 *   palloc the backend would refuse, prints the message and aborts: the
 *   fuzzer reports it as a crash, with the input.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/json.h"
#include "utils/memutils.h"

/* ---- memory contexts ---- */

typedef struct ShimChunk
{
	void	   *ptr;
	struct ShimContext *cxt;
	struct ShimChunk *prev;		/* in the context's list */
	struct ShimChunk *next;
	struct ShimChunk *hnext;	/* in the hash chain */
} ShimChunk;

typedef struct ShimContext
{
	const char *name;
	struct ShimContext *parent;
	struct ShimContext *children;
	struct ShimContext *next_sibling;
	ShimChunk  *chunks;
} ShimContext;

static ShimContext top = {"TopMemoryContext"};

MemoryContext TopMemoryContext = (MemoryContext) &top;
MemoryContext CurrentMemoryContext = (MemoryContext) &top;
MemoryContext ErrorContext = (MemoryContext) &top;

#define NBUCKETS (1 << 16)
static ShimChunk *buckets[NBUCKETS];

static void shim_error(const char *fmt,...) pg_attribute_printf(1, 2);

static void
shim_error(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "pgshim: ERROR: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

static inline ShimChunk **
bucket(const void *ptr)
{
	uintptr_t	h = (uintptr_t) ptr;

	h ^= h >> 17;
	return &buckets[(h >> 4) & (NBUCKETS - 1)];
}

static ShimChunk *
find_chunk(const void *ptr)
{
	ShimChunk  *c;

	for (c = *bucket(ptr); c; c = c->hnext)
		if (c->ptr == ptr)
			return c;
	shim_error("pointer %p was not returned by palloc", ptr);
	return NULL;
}

static void
hash_remove(ShimChunk *chunk)
{
	ShimChunk **p = bucket(chunk->ptr);

	while (*p != chunk)
		p = &(*p)->hnext;
	*p = chunk->hnext;
}

static void *
chunk_alloc(MemoryContext context, Size size, bool zero)
{
	ShimContext *cxt = (ShimContext *) context;
	ShimChunk  *chunk;
	void	   *ptr;

	if (!AllocSizeIsValid(size))
		shim_error("invalid memory alloc request size %zu", size);
	ptr = zero ? calloc(1, size) : malloc(size);
	chunk = malloc(sizeof(ShimChunk));
	if (ptr == NULL || chunk == NULL)
		shim_error("out of memory");
	chunk->ptr = ptr;
	chunk->cxt = cxt;
	chunk->prev = NULL;
	chunk->next = cxt->chunks;
	if (cxt->chunks)
		cxt->chunks->prev = chunk;
	cxt->chunks = chunk;
	chunk->hnext = *bucket(ptr);
	*bucket(ptr) = chunk;
	return ptr;
}

static void
chunk_free(ShimChunk *chunk)
{
	hash_remove(chunk);
	if (chunk->prev)
		chunk->prev->next = chunk->next;
	else
		chunk->cxt->chunks = chunk->next;
	if (chunk->next)
		chunk->next->prev = chunk->prev;
	free(chunk->ptr);
	free(chunk);
}

MemoryContext
AllocSetContextCreateInternal(MemoryContext parent, const char *name,
							  Size minContextSize, Size initBlockSize,
							  Size maxBlockSize)
{
	ShimContext *cxt = calloc(1, sizeof(ShimContext));

	if (cxt == NULL)
		shim_error("out of memory");
	cxt->name = name;
	cxt->parent = (ShimContext *) (parent ? parent : TopMemoryContext);
	cxt->next_sibling = cxt->parent->children;
	cxt->parent->children = cxt;
	return (MemoryContext) cxt;
}

void
MemoryContextDeleteChildren(MemoryContext context)
{
	ShimContext *cxt = (ShimContext *) context;

	while (cxt->children)
		MemoryContextDelete((MemoryContext) cxt->children);
}

void
MemoryContextReset(MemoryContext context)
{
	ShimContext *cxt = (ShimContext *) context;

	MemoryContextDeleteChildren(context);
	while (cxt->chunks)
		chunk_free(cxt->chunks);
}

void
MemoryContextDelete(MemoryContext context)
{
	ShimContext *cxt = (ShimContext *) context;
	ShimContext **p;

	if (cxt == &top)
		shim_error("cannot delete TopMemoryContext");
	if (CurrentMemoryContext == context)
		shim_error("deleting the current memory context \"%s\"", cxt->name);
	MemoryContextReset(context);
	for (p = &cxt->parent->children; *p != cxt; p = &(*p)->next_sibling)
		;
	*p = cxt->next_sibling;
	free(cxt);
}

MemoryContext
MemoryContextGetParent(MemoryContext context)
{
	return (MemoryContext) ((ShimContext *) context)->parent;
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, false);
}

void *
MemoryContextAllocZero(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, true);
}

void *
palloc(Size size)
{
	return chunk_alloc(CurrentMemoryContext, size, false);
}

void *
palloc0(Size size)
{
	return chunk_alloc(CurrentMemoryContext, size, true);
}

void *
repalloc(void *pointer, Size size)
{
	ShimChunk  *chunk = find_chunk(pointer);
	void	   *ptr;

	if (!AllocSizeIsValid(size))
		shim_error("invalid memory alloc request size %zu", size);
	ptr = realloc(pointer, size ? size : 1);
	if (ptr == NULL)
		shim_error("out of memory");
	hash_remove(chunk);
	chunk->ptr = ptr;
	chunk->hnext = *bucket(ptr);
	*bucket(ptr) = chunk;
	return ptr;
}

void
pfree(void *pointer)
{
	chunk_free(find_chunk(pointer));
}

char *
MemoryContextStrdup(MemoryContext context, const char *string)
{
	size_t		len = strlen(string) + 1;
	char	   *copy = MemoryContextAlloc(context, len);

	memcpy(copy, string, len);
	return copy;
}

char *
pstrdup(const char *in)
{
	return MemoryContextStrdup(CurrentMemoryContext, in);
}

char *
pnstrdup(const char *in, Size len)
{
	char	   *out;

	len = strnlen(in, len);
	out = palloc(len + 1);
	memcpy(out, in, len);
	out[len] = '\0';
	return out;
}

/* ---- List ---- */

static List *
new_list(NodeTag type, int length)
{
	List	   *list = palloc(offsetof(List, initial_elements) + length * sizeof(ListCell));

	list->type = type;
	list->length = length;
	list->max_length = length;
	list->elements = list->initial_elements;
	return list;
}

List *
list_make1_impl(NodeTag t, ListCell datum1)
{
	List	   *list = new_list(t, 1);

	list->elements[0] = datum1;
	return list;
}

List *
lappend(List *list, void *datum)
{
	if (list == NIL)
		list = new_list(T_List, 1);
	else
	{
		ShimChunk  *chunk = find_chunk(list);
		ListCell   *cells;

		Assert(list->type == T_List);
		cells = MemoryContextAlloc((MemoryContext) chunk->cxt,
								   (list->length + 1) * sizeof(ListCell));
		memcpy(cells, list->elements, list->length * sizeof(ListCell));
		if (list->elements != list->initial_elements)
			pfree(list->elements);
		list->elements = cells;
		list->length++;
		list->max_length = list->length;
	}
	lfirst(list_last_cell(list)) = datum;
	return list;
}

void
list_free(List *list)
{
	if (list == NIL)
		return;
	if (list->elements != list->initial_elements)
		pfree(list->elements);
	pfree(list);
}

/* ---- JSON ---- */

void
escape_json(StringInfo buf, const char *str)
{
	const char *p;

	appendStringInfoCharMacro(buf, '"');
	for (p = str; *p; p++)
	{
		switch (*p)
		{
			case '\b':
				appendStringInfoString(buf, "\\b");
				break;
			case '\f':
				appendStringInfoString(buf, "\\f");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(buf, "\\r");
				break;
			case '\t':
				appendStringInfoString(buf, "\\t");
				break;
			case '"':
				appendStringInfoString(buf, "\\\"");
				break;
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			default:
				if ((unsigned char) *p < ' ')
					appendStringInfo(buf, "\\u%04x", (int) *p);
				else
					appendStringInfoCharMacro(buf, *p);
				break;
		}
	}
	appendStringInfoCharMacro(buf, '"');
}

/* ---- ereport and elog ---- */

static int	report_level;
static char report_message[1024];

bool
errstart(int elevel, const char *domain)
{
	report_level = elevel;
	report_message[0] = '\0';
	return elevel >= ERROR;
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	shim_error("%s (level %d, raised at %s:%d in %s)", report_message,
			   report_level, filename ? filename : "?", lineno,
			   funcname ? funcname : "?");
}

int
errcode(int sqlerrcode)
{
	return 0;
}

static void
keep_message(const char *fmt, va_list ap)
{
	if (report_message[0] == '\0')
		vsnprintf(report_message, sizeof(report_message), fmt, ap);
}

int
errmsg(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	keep_message(fmt, ap);
	va_end(ap);
	return 0;
}

int
errmsg_internal(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	keep_message(fmt, ap);
	va_end(ap);
	return 0;
}

int
errdetail(const char *fmt,...)
{
	return 0;
}

int
errhint(const char *fmt,...)
{
	return 0;
}
