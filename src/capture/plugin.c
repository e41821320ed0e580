/*-------------------------------------------------------------------------
 *
 * plugin.c
 *	  flusso's logical decoding output plugin, compiled into flusso.so.
 *
 * The slot flusso owns names this library as its plugin.  The callbacks
 * write nothing to an output stream: in the sync worker they hand each
 * change to capture.c, which keeps only the watched columns of the old and
 * new image.  Anywhere else (someone peeking at the slot from SQL) they
 * produce nothing.  Callbacks run under a historic snapshot: they read
 * catalogs only, never user tables, and never use SPI.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "replication/logical.h"
#include "replication/output_plugin.h"

#include "capture/capture.h"

extern PGDLLEXPORT void _PG_output_plugin_init(OutputPluginCallbacks *cb);

static void
plugin_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt, bool is_init)
{
	opt->output_type = OUTPUT_PLUGIN_BINARY_OUTPUT;
	opt->receive_rewrites = false;
}

static void
plugin_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
}

static void
plugin_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, Relation rel,
			  ReorderBufferChange *change)
{
	if (flusso_capture_active())
		flusso_capture_change(txn, rel, change);
}

static void
plugin_truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, int nrelations,
				Relation relations[], ReorderBufferChange *change)
{
	if (flusso_capture_active())
		flusso_capture_truncate(txn, nrelations, relations);
}

static void
plugin_commit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, XLogRecPtr commit_lsn)
{
	if (flusso_capture_active())
		flusso_capture_commit(txn, commit_lsn);
}

static bool
plugin_filter_origin(LogicalDecodingContext *ctx, RepOriginId origin_id)
{
	return false;				/* replicated changes count like local ones */
}

static void
plugin_shutdown(LogicalDecodingContext *ctx)
{
}

void
_PG_output_plugin_init(OutputPluginCallbacks *cb)
{
	cb->startup_cb = plugin_startup;
	cb->begin_cb = plugin_begin;
	cb->change_cb = plugin_change;
	cb->truncate_cb = plugin_truncate;
	cb->commit_cb = plugin_commit;
	cb->filter_by_origin_cb = plugin_filter_origin;
	cb->shutdown_cb = plugin_shutdown;
}
