/*-------------------------------------------------------------------------
 *
 * bulk.c
 *	  Builds bulk request bodies: one NDJSON action (and document) per item.
 *
 * Every action carries version_type external_gte and a version that grows
 * with the WAL position the document was built at, so OpenSearch keeps the
 * newest build whatever order requests land in, and a replay or a late
 * retry can never overwrite a newer document.  Each request owns a memory
 * context holding its body and items; the items remember where their lines
 * are, so a retry of some items copies just those lines.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/json.h"
#include "utils/memutils.h"

#include "sink/bulk.h"

BulkRequest *
flusso_bulk_create(MemoryContext parent, BulkOwnerKind kind, void *owner)
{
	MemoryContext cxt = AllocSetContextCreate(parent, "flusso bulk request",
											  ALLOCSET_DEFAULT_SIZES);
	BulkRequest *req = MemoryContextAllocZero(cxt, sizeof(BulkRequest));
	MemoryContext old = MemoryContextSwitchTo(cxt);

	req->cxt = cxt;
	req->kind = kind;
	req->owner = owner;
	initStringInfo(&req->body);
	req->maxitems = 64;
	req->items = palloc0(sizeof(BulkItem) * req->maxitems);
	MemoryContextSwitchTo(old);
	return req;
}

void
flusso_bulk_free(BulkRequest *req)
{
	if (req)
		MemoryContextDelete(req->cxt);
}

static BulkItem *
new_item(BulkRequest *req)
{
	if (req->nitems == req->maxitems)
	{
		req->maxitems *= 2;
		req->items = repalloc(req->items, sizeof(BulkItem) * req->maxitems);
	}
	memset(&req->items[req->nitems], 0, sizeof(BulkItem));
	return &req->items[req->nitems++];
}

/*
 * Append a JSON document without the white space between its tokens.
 * PostgreSQL's json output has "key" : value spacing (and a json column
 * keeps its input's layout, newlines included): compact, the body is
 * smaller, OpenSearch parses less, and a document is always one line.
 */
static void
append_compact(StringInfo b, const char *doc, size_t len)
{
	const char *p = doc;
	const char *end = doc + len;
	char	   *out;
	bool		in_string = false;

	enlargeStringInfo(b, len);
	out = b->data + b->len;
	for (; p < end; p++)
	{
		char		c = *p;

		if (in_string)
		{
			*out++ = c;
			if (c == '\\' && p + 1 < end)
				*out++ = *++p;
			else if (c == '"')
				in_string = false;
		}
		else if (c == ' ' || c == '\n' || c == '\t' || c == '\r')
			continue;
		else
		{
			*out++ = c;
			in_string = c == '"';
		}
	}
	b->len = out - b->data;
	b->data[b->len] = '\0';
}

void
flusso_bulk_add(BulkRequest *req, int index, const char *physical, int generation,
				const char *id, uint64 version, const char *doc, size_t doclen)
{
	MemoryContext old = MemoryContextSwitchTo(req->cxt);
	BulkItem   *item = new_item(req);
	StringInfo	b = &req->body;

	item->index = index;
	item->generation = generation;
	item->id = pstrdup(id);
	item->is_delete = doc == NULL;
	item->start = b->len;
	appendStringInfo(b, "{\"%s\":{\"_index\":", doc ? "index" : "delete");
	escape_json(b, physical);
	appendStringInfoString(b, ",\"_id\":");
	escape_json(b, id);
	appendStringInfo(b, ",\"version\":" UINT64_FORMAT ",\"version_type\":\"external_gte\"}}\n",
					 version);
	item->doc = b->len;
	if (doc)
	{
		append_compact(b, doc, doclen);
		appendStringInfoChar(b, '\n');
	}
	item->end = b->len;
	MemoryContextSwitchTo(old);
}

BulkRequest *
flusso_bulk_subset(BulkRequest *req, bool (*keep) (BulkItem *), int from, int to)
{
	BulkRequest *sub = flusso_bulk_create(MemoryContextGetParent(req->cxt),
										  req->kind, req->owner);
	MemoryContext old = MemoryContextSwitchTo(sub->cxt);
	int			i;

	for (i = from; i < to; i++)
	{
		BulkItem   *src = &req->items[i];
		BulkItem   *dst;
		size_t		base = sub->body.len;

		if (keep && !keep(src))
			continue;
		dst = new_item(sub);
		*dst = *src;
		dst->id = pstrdup(src->id);
		dst->outcome = BULK_ITEM_PENDING;
		dst->status = 0;
		dst->error = NULL;
		appendBinaryStringInfo(&sub->body, req->body.data + src->start, src->end - src->start);
		dst->start = base;
		dst->doc = base + (src->doc - src->start);
		dst->end = sub->body.len;
	}
	sub->attempts = req->attempts;
	MemoryContextSwitchTo(old);
	return sub;
}
