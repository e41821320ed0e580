/*-------------------------------------------------------------------------
 *
 * donequeue.h
 *	  Finished requests waiting for their owner to collect them, first in
 *	  first out: the one queue of http.c and of both sinks, on lib/ilist.h.
 *
 * A request is queued by a dlist_node of its own, which is all zeros (or
 * taken out of the queue by done_queue_pop() or done_queue_remove()) while
 * it is not queued.  The queue never owns a request: freeing it is its
 * owner's business, after taking it out.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_DONEQUEUE_H
#define FLUSSO_DONEQUEUE_H

#include "lib/ilist.h"

typedef struct DoneQueue
{
	dlist_head	items;
} DoneQueue;

/* For a static queue: static DoneQueue done = DONE_QUEUE_INIT(done); */
#define DONE_QUEUE_INIT(queue) {DLIST_STATIC_INIT((queue).items)}

static inline void
done_queue_push(DoneQueue *queue, dlist_node *node)
{
	dlist_push_tail(&queue->items, node);
}

static inline bool
done_queue_is_empty(DoneQueue *queue)
{
	return dlist_is_empty(&queue->items);
}

/* Take node out of the queue, if it is in it. */
static inline void
done_queue_remove(dlist_node *node)
{
	if (node->next == NULL)
		return;
	dlist_delete(node);
	node->prev = node->next = NULL;
}

/* The oldest node, taken out; NULL when the queue is empty. */
static inline dlist_node *
done_queue_pop(DoneQueue *queue)
{
	dlist_node *node;

	if (dlist_is_empty(&queue->items))
		return NULL;
	node = dlist_head_node(&queue->items);
	done_queue_remove(node);
	return node;
}

/* Take every node out (after an error: their owner drops them). */
static inline void
done_queue_clear(DoneQueue *queue)
{
	while (done_queue_pop(queue) != NULL)
		;
}

#endif							/* FLUSSO_DONEQUEUE_H */
