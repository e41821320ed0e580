/*-------------------------------------------------------------------------
 *
 * capture.c
 *	  The replication slot, in-process logical decoding, captured images.
 *
 * The sync worker owns one logical replication slot whose output plugin is
 * flusso itself (plugin.c).  This file creates the slot, acquires it, and
 * keeps one decoding context open across batches, reading WAL record by
 * record with the same machinery a walsender uses (pg_squeeze is the
 * model).  Nothing is decoded twice: the reader only moves forward, and
 * the slot is confirmed as batches are acknowledged.
 *
 * On PostgreSQL 17 and later the slot is a failover slot unless
 * flusso.failover_slots is off: standbys with sync_replication_slots keep
 * a copy of it, and a promoted standby's worker goes on from there.  Then,
 * like a logical walsender, nothing goes out before the standbys named in
 * synchronized_standby_slots have the WAL it came from
 * (flusso_capture_wait_for_standbys(), called before documents are sent).
 *
 * What a change leaves behind is an image: the values, as text, of the
 * columns some index needs (keys and join columns) in the row's old or new
 * version.  Images are deduplicated per round, so N changes to one row
 * cost one image.  A round that would outgrow flusso.capture_memory is not
 * spilled: the changes of the transaction that overflowed it are dropped
 * and the indexes that read those tables are rebuilt from the current
 * state instead (a reindex, which never takes search down).  TRUNCATE is
 * handled the same way.
 *
 * Memory: the decoding context lives in capture_cxt for as long as the slot
 * is held; a round's images live in round_cxt, reset after each round is
 * resolved.  The rest of the engine reads rounds; it never touches the
 * slot or the reader.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogutils.h"
#include "catalog/partition.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/decode.h"
#include "replication/logical.h"
#include "replication/slot.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "base/compat.h"
#include "base/flusso.h"
#include "base/settings.h"
#include "base/settingutil.h"
#include "base/strset.h"
#include "capture/capture.h"
#include "status/observer.h"

/* How to read a CaptureRel's columns out of one decoded relation. */
typedef struct LeafEntry
{
	Oid			relid;			/* the decoded relation (a partition, maybe) */
	CaptureRel *rel;
	AttrNumber *attnums;		/* per union column; 0 if absent */
	FmgrInfo   *output;			/* output functions */
	bool	   *varlena;
} LeafEntry;

static MemoryContext capture_cxt = NULL;	/* watches, decoding */
static MemoryContext leaves_cxt = NULL; /* leaves: reset with the leaves hash */
static MemoryContext round_cxt = NULL;	/* xids, rebuild list */
static MemoryContext images_cxt = NULL; /* images and their dedup set */
static MemoryContext scratch_cxt = NULL; /* one change's work, reset after it */
static List *watched = NIL;		/* of CaptureRel */
static HTAB *leaves = NULL;
static Oid	definitions_relid = InvalidOid;
static Oid	requests_relid = InvalidOid;

static LogicalDecodingContext *decoding = NULL;
static char slot_name[NAMEDATALEN];
static bool capturing = false;	/* inside flusso_capture_decode() */

static CaptureRound round;
static FlussoStringSet *images = NULL; /* the round's images, by their text */
static TransactionId overflow_xid = InvalidTransactionId;
static bool txn_had_changes = false;	/* the transaction being replayed */
static int64 images_since_check = 0;

/* ---- watched relations ---- */

static void
ensure_contexts(void)
{
	if (capture_cxt == NULL)
	{
		capture_cxt = AllocSetContextCreate(TopMemoryContext, "flusso capture",
											ALLOCSET_DEFAULT_SIZES);
		leaves_cxt = AllocSetContextCreate(capture_cxt, "flusso capture leaves",
										   ALLOCSET_SMALL_SIZES);
	}
	if (round_cxt == NULL)
	{
		round_cxt = AllocSetContextCreate(TopMemoryContext, "flusso round",
										  ALLOCSET_DEFAULT_SIZES);
		images_cxt = AllocSetContextCreate(round_cxt, "flusso images",
										   ALLOCSET_DEFAULT_SIZES);
		scratch_cxt = AllocSetContextCreate(TopMemoryContext, "flusso change",
											ALLOCSET_SMALL_SIZES);
		flusso_capture_reset_round();
	}
}

static void
reset_leaves(void)
{
	HASHCTL		info;

	/*
	 * The entries' arrays and output functions live beside the hash: they
	 * go with it (a decoded catalog change resets the leaves, and that
	 * happens as often as DDL or ANALYZE commits).
	 */
	leaves = NULL;
	MemoryContextReset(leaves_cxt);
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(Oid);
	info.entrysize = sizeof(LeafEntry);
	info.hcxt = leaves_cxt;
	leaves = hash_create("flusso capture leaves", 64, &info,
						 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

void
flusso_capture_set_watches(List *rels, Oid definitions, Oid requests)
{
	ensure_contexts();
	watched = rels;
	definitions_relid = definitions;
	requests_relid = requests;
	reset_leaves();
}

CaptureRel *
flusso_capture_rel(Oid relid)
{
	ListCell   *lc;

	foreach(lc, watched)
		if (((CaptureRel *) lfirst(lc))->relid == relid)
			return lfirst(lc);
	return NULL;
}

List *
flusso_capture_rels(void)
{
	return watched;
}

/* The watched relation a decoded one belongs to (itself, or a partition's root). */
static CaptureRel *
watched_rel_of(Relation rel)
{
	CaptureRel *cr = flusso_capture_rel(RelationGetRelid(rel));
	ListCell   *lc;

	if (cr || !rel->rd_rel->relispartition)
		return cr;
	foreach(lc, get_partition_ancestors(RelationGetRelid(rel)))
	{
		cr = flusso_capture_rel(lfirst_oid(lc));
		if (cr)
			return cr;
	}
	return NULL;
}

static LeafEntry *
leaf_for(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	bool		found;
	LeafEntry  *leaf = hash_search(leaves, &relid, HASH_ENTER, &found);
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	if (found)
		return leaf;
	leaf->rel = watched_rel_of(rel);
	if (leaf->rel == NULL)
		return leaf;
	leaf->attnums = MemoryContextAllocZero(leaves_cxt, sizeof(AttrNumber) * leaf->rel->ncols);
	leaf->output = MemoryContextAllocZero(leaves_cxt, sizeof(FmgrInfo) * leaf->rel->ncols);
	leaf->varlena = MemoryContextAllocZero(leaves_cxt, sizeof(bool) * leaf->rel->ncols);
	for (i = 0; i < leaf->rel->ncols; i++)
	{
		int			a;

		for (a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);
			Oid			typoutput;

			if (att->attisdropped || strcmp(NameStr(att->attname), leaf->rel->columns[i]) != 0)
				continue;
			leaf->attnums[i] = att->attnum;
			getTypeOutputInfo(att->atttypid, &typoutput, &leaf->varlena[i]);
			fmgr_info_cxt(typoutput, &leaf->output[i], leaves_cxt);
		}
	}
	return leaf;
}

/* ---- the round ---- */

static void
reset_images(void)
{
	ListCell   *lc;

	MemoryContextReset(images_cxt);
	images = flusso_strset_create(images_cxt, 1024);
	foreach(lc, watched)
		((CaptureRel *) lfirst(lc))->images = NIL;
	round.nimages = 0;
	images_since_check = 0;
}

void
flusso_capture_reset_round(void)
{
	XLogRecPtr	end = round.end_lsn;

	MemoryContextResetOnly(round_cxt);	/* keeps the images context */
	memset(&round, 0, sizeof(round));
	round.start_lsn = round.end_lsn = end;
	reset_images();
}

CaptureRound *
flusso_capture_round(void)
{
	return &round;
}

static void
note_xid(TransactionId xid)
{
	if (round.nxids > 0 && round.xids[round.nxids - 1] == xid)
		return;
	if (round.nxids == round.maxxids)
	{
		round.maxxids = Max(16, round.maxxids * 2);
		round.xids = round.xids ?
			repalloc(round.xids, sizeof(TransactionId) * round.maxxids) :
			MemoryContextAlloc(round_cxt, sizeof(TransactionId) * round.maxxids);
	}
	round.xids[round.nxids++] = xid;
}

static void
add_rebuild(Oid relid, const char *reason)
{
	MemoryContext old = MemoryContextSwitchTo(round_cxt);

	if (!list_member_oid(round.rebuild_relids, relid))
		round.rebuild_relids = lappend_oid(round.rebuild_relids, relid);
	if (round.rebuild_reason == NULL)
		round.rebuild_reason = pstrdup(reason);
	MemoryContextSwitchTo(old);
}

/*
 * The round no longer fits flusso.capture_memory: drop its images and
 * rebuild every index that reads the tables they came from.
 */
static void
overflow(ReorderBufferTXN *txn, CaptureRel *cr)
{
	List	   *relids = NIL;
	ListCell   *lc;
	char	   *reason = psprintf("a transaction changed more rows of %s than flusso.capture_memory (%d kB) holds",
								  get_rel_name(cr->relid), flusso_capture_memory);

	foreach(lc, watched)
		if (((CaptureRel *) lfirst(lc))->images != NIL)
			relids = lappend_oid(relids, ((CaptureRel *) lfirst(lc))->relid);
	relids = list_append_unique_oid(relids, cr->relid);
	reset_images();
	foreach(lc, relids)
		add_rebuild(lfirst_oid(lc), reason);
	overflow_xid = txn->xid;
}

static char *
value_text(LeafEntry *leaf, int i, HeapTuple tuple, TupleDesc desc)
{
	bool		isnull;
	Datum		d;

	if (leaf->attnums[i] == 0)
		return NULL;
	d = heap_getattr(tuple, leaf->attnums[i], desc, &isnull);
	if (isnull)
		return NULL;
	if (leaf->varlena[i] && VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(d)))
		return NULL;			/* unchanged TOAST value: not in the WAL */
	return OutputFunctionCall(&leaf->output[i], d);
}

/*
 * Keep an image of a changed row, unless an equal one is kept already.  The
 * values are computed in scratch memory; only a new image is copied into
 * the round, so a million changes to the same few keys cost a few images.
 */
static void
add_image(LeafEntry *leaf, Relation rel, HeapTuple tuple)
{
	CaptureRel *cr = leaf->rel;
	MemoryContext old = MemoryContextSwitchTo(scratch_cxt);
	char	  **values = palloc(sizeof(char *) * cr->ncols);
	StringInfoData key;
	bool		any = false;
	int			i;

	initStringInfo(&key);
	appendStringInfo(&key, "%u", cr->relid);
	for (i = 0; i < cr->ncols; i++)
	{
		values[i] = value_text(leaf, i, tuple, RelationGetDescr(rel));
		any |= values[i] != NULL;
		appendStringInfoChar(&key, values[i] ? '\x1f' : '\x1e');
		if (values[i])
			appendStringInfoString(&key, values[i]);
	}
	if (any && flusso_strset_add(images, key.data) != NULL)
	{
		char	  **kept;

		MemoryContextSwitchTo(images_cxt);
		kept = palloc(sizeof(char *) * cr->ncols);
		for (i = 0; i < cr->ncols; i++)
			kept[i] = values[i] ? pstrdup(values[i]) : NULL;
		cr->images = lappend(cr->images, kept);
		round.nimages++;
		images_since_check++;
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(scratch_cxt);
}

static bool
over_budget(void)
{
	if (images_since_check < 1024)
		return false;
	images_since_check = 0;
	return MemoryContextMemAllocated(images_cxt, true) > (Size) flusso_capture_memory * 1024;
}

void
flusso_capture_change(ReorderBufferTXN *txn, Relation rel, ReorderBufferChange *change)
{
	LeafEntry  *leaf;
	HeapTuple	oldtup = NULL;
	HeapTuple	newtup = NULL;

	if (RelationGetRelid(rel) == definitions_relid ||
		(RelationGetRelid(rel) == requests_relid &&
		 change->action == REORDER_BUFFER_CHANGE_INSERT))
	{
		round.control_changed = true;
		return;
	}
	leaf = leaf_for(rel);
	if (leaf->rel == NULL)
		return;
	round.nchanges++;
	txn_had_changes = true;
	if (TransactionIdIsValid(overflow_xid) && txn->xid == overflow_xid)
	{
		add_rebuild(leaf->rel->relid, round.rebuild_reason);
		return;
	}
	note_xid(txn->xid);
	if (change->data.tp.oldtuple)
		oldtup = compat_change_tuple(change->data.tp.oldtuple);
	if (change->data.tp.newtuple && change->action != REORDER_BUFFER_CHANGE_DELETE)
		newtup = compat_change_tuple(change->data.tp.newtuple);
	if (oldtup)
		add_image(leaf, rel, oldtup);
	if (newtup)
		add_image(leaf, rel, newtup);
	if (over_budget())
		overflow(txn, leaf->rel);
}

void
flusso_capture_truncate(ReorderBufferTXN *txn, int nrelations, Relation relations[])
{
	int			i;

	for (i = 0; i < nrelations; i++)
	{
		LeafEntry  *leaf = leaf_for(relations[i]);

		if (leaf->rel == NULL)
			continue;
		round.nchanges++;
		txn_had_changes = true;
		note_xid(txn->xid);
		add_rebuild(leaf->rel->relid, psprintf("TRUNCATE of %s", get_rel_name(leaf->rel->relid)));
	}
}

void
flusso_capture_commit(ReorderBufferTXN *txn, XLogRecPtr commit_lsn)
{
	if (txn_had_changes &&
		(round.oldest_commit == 0 || txn->xact_time.commit_time < round.oldest_commit))
		round.oldest_commit = txn->xact_time.commit_time;
	txn_had_changes = false;
	if (rbtxn_has_catalog_changes(txn))
	{
		round.catalog_changed = true;
		reset_leaves();
	}
	if (TransactionIdIsValid(overflow_xid) && txn->xid == overflow_xid)
		overflow_xid = InvalidTransactionId;
}

bool
flusso_capture_active(void)
{
	return capturing;
}

/* ---- the slot ---- */

const char *
flusso_capture_slot_name(void)
{
	List	   *dbs;
	ReplicationSlot *s;
	bool		first;

	if (slot_name[0])
		return slot_name;
	dbs = flusso_split_list(flusso_database);
	first = dbs != NIL && MyBgworkerEntry != NULL &&
		strcmp(linitial(dbs), MyBgworkerEntry->bgw_extra) == 0;
	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	s = SearchNamedReplicationSlot(flusso_slot_name, false);
	if ((s && s->data.database == MyDatabaseId) || (s == NULL && first))
		strlcpy(slot_name, flusso_slot_name, NAMEDATALEN);
	else
		snprintf(slot_name, NAMEDATALEN, "%s_%u", flusso_slot_name, MyDatabaseId);
	LWLockRelease(ReplicationSlotControlLock);
	return slot_name;
}

SlotState
flusso_capture_slot_state(void)
{
	ReplicationSlot *s;
	SlotState	state = SLOT_MISSING;

	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	s = SearchNamedReplicationSlot(flusso_capture_slot_name(), false);
	if (s)
	{
		SpinLockAcquire(&s->mutex);
		state = compat_slot_invalidated(s) ? SLOT_INVALIDATED : SLOT_OK;
		SpinLockRelease(&s->mutex);
	}
	LWLockRelease(ReplicationSlotControlLock);
	return state;
}

void
flusso_capture_drop_slot(void)
{
	ReplicationSlotDrop(flusso_capture_slot_name(), true);
}

/* Names of this database's slots decoded by flusso's plugin, but ours (name) when not NULL. */
static List *
plugin_slots(const char *but)
{
	List	   *names = NIL;
	int			i;

	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	for (i = 0; i < max_replication_slots; i++)
	{
		ReplicationSlot *slot = &ReplicationSlotCtl->replication_slots[i];

		if (slot->in_use && slot->data.database == MyDatabaseId &&
			strcmp(NameStr(slot->data.plugin), FLUSSO_LIBRARY) == 0 &&
			(but == NULL || strcmp(NameStr(slot->data.name), but) != 0))
			names = lappend(names, pstrdup(NameStr(slot->data.name)));
	}
	LWLockRelease(ReplicationSlotControlLock);
	return names;
}

/*
 * A slot nobody reads holds WAL until the disk fills: drop flusso's slots
 * of this database that are not the current one (the extension was
 * dropped, or flusso.slot_name changed), saying so; one in use by another
 * process is left, with the command that drops it.  Outside a transaction.
 */
static void
drop_slot_or_warn(const char *name, const char *why)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		ReplicationSlotDrop(name, true);
		ereport(LOG, (errmsg("flusso dropped replication slot \"%s\": %s", name, why)));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		if (MyReplicationSlot != NULL)
			ReplicationSlotRelease();
		ereport(WARNING,
				(errmsg("flusso's replication slot \"%s\" is left and holds WAL: %s", name, edata->message),
				 errdetail("It is not used any more: %s.", why),
				 errhint("Drop it: SELECT pg_drop_replication_slot('%s');", name)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

void
flusso_capture_drop_stale_slots(bool all, const char *why)
{
	ListCell   *lc;

	foreach(lc, plugin_slots(all ? NULL : flusso_capture_slot_name()))
		drop_slot_or_warn(lfirst(lc), why);
}

static void
no_write(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid, bool last)
{
}

/* Create the slot; returns its consistent point. */
XLogRecPtr
flusso_capture_create_slot(void)
{
	LogicalDecodingContext *ctx;
	XLogRecPtr	start;

	CheckLogicalDecodingRequirements();
	compat_ReplicationSlotCreate(flusso_capture_slot_name(), true, RS_EPHEMERAL, false,
								 flusso_failover_slots_wanted());
	ctx = CreateInitDecodingContext(FLUSSO_LIBRARY, NIL, false, InvalidXLogRecPtr,
									XL_ROUTINE(.page_read = read_local_xlog_page,
											   .segment_open = wal_segment_open,
											   .segment_close = wal_segment_close),
									no_write, no_write, NULL);
	DecodingContextFindStartpoint(ctx);
	start = MyReplicationSlot->data.confirmed_flush;
	FreeDecodingContext(ctx);
	ReplicationSlotPersist();
	ReplicationSlotRelease();
	ereport(LOG,
			(errmsg("flusso created replication slot \"%s\" at %X/%X%s",
					flusso_capture_slot_name(), LSN_FORMAT_ARGS(start),
					flusso_failover_slots_wanted() ? " (a failover slot)" : "")));
	return start;
}

/*
 * Make the slot this process holds a failover slot (17 and later), or an
 * ordinary one, as flusso.failover_slots says; the setting may have
 * changed since the slot was created, and a slot synchronized to a
 * promoted standby keeps the old primary's choice.  As
 * ReplicationSlotAlter() does it, for a slot already held.
 */
void
flusso_capture_apply_failover(void)
{
	bool		want = flusso_failover_slots_wanted();

	if (MyReplicationSlot == NULL || compat_slot_failover(MyReplicationSlot) == want)
		return;
	compat_slot_set_failover(MyReplicationSlot, want);
	ReplicationSlotMarkDirty();
	ReplicationSlotSave();
	ereport(LOG,
			(errmsg("flusso's replication slot \"%s\" is %s failover slot now",
					NameStr(MyReplicationSlot->data.name), want ? "a" : "no"),
			 errdetail("flusso.failover_slots is \"%s\".", flusso_failover_slots_name())));
}

/* What flusso.status says while documents wait for the standbys. */
static void
say_waiting_for_standbys(XLogRecPtr lsn)
{
	flusso_observer->on_activity(psprintf("waiting for the standbys in synchronized_standby_slots to confirm WAL up to %X/%X",
										  LSN_FORMAT_ARGS(lsn)));
}

/*
 * Before documents go out: with a failover slot, wait until every physical
 * slot named in synchronized_standby_slots has confirmed the WAL flushed
 * so far (17 and later; see compat.h), the same wait a logical walsender
 * makes before it sends a change.  Documents are built from the rows as
 * committed now, not only from the WAL decoded, so the wait covers the
 * WAL flushed when they are sent, not only the decoded position: a
 * document never holds a row a standby that may be promoted has not
 * received, and after a failover the index holds nothing the new primary
 * lacks.  (A commit made with synchronous_commit = off is visible before
 * it is flushed, and can be in a document before any standby has it, as
 * it can be lost by a crash of a server without standbys.)
 *
 * The wait blocks the step, as the walsender's does; a standby that stays
 * away holds the sync until it is back or taken out of
 * synchronized_standby_slots (a reload is read while waiting).  The
 * problems StandbySlotsHaveCaughtup() reports (a slot missing, logical,
 * invalidated, inactive) are WARNINGs once a minute.
 */
void
flusso_capture_wait_for_standbys(void)
{
	static TimestampTz warned_at = 0;
	XLogRecPtr	lsn;
	ConditionVariable *cv = compat_standby_confirm_cv();
	bool		reloaded = false;
	bool		said = false;

	if (MyReplicationSlot == NULL || !compat_slot_failover(MyReplicationSlot))
		return;
	lsn = GetFlushRecPtr(NULL);
	if (compat_standby_slots_caught_up(lsn, DEBUG1))
		return;
	ConditionVariablePrepareToSleep(cv);
	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		bool		warn = TimestampDifferenceExceeds(warned_at, now, 60000);

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			/* synchronized_standby_slots may have changed */
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			reloaded = true;
		}
		if (compat_standby_slots_caught_up(lsn, warn ? WARNING : DEBUG1))
			break;
		if (warn)
			warned_at = now;
		if (!said)
			say_waiting_for_standbys(lsn);
		said = true;
		(void) ConditionVariableTimedSleep(cv, 1000, COMPAT_WAIT_EVENT_STANDBY_CONFIRMATION);
	}
	ConditionVariableCancelSleep();
	/* the worker still applies the rest of a reload after this step */
	if (reloaded)
		ConfigReloadPending = true;
}

/*
 * CreateDecodingContext(), called outside a transaction, marks this process
 * as a logical decoding backend, and the xmin horizon ignores the snapshots
 * of such a process (a walsender's needs are kept by its slot).  This
 * process also builds documents from the tables with ordinary snapshots,
 * and the row versions those snapshots see must not be pruned under them
 * (concurrent updates made rows vanish from backfill chunks and live
 * builds): the mark comes off, and the process's snapshots count again.
 */
static void
count_our_snapshots(void)
{
	LWLockAcquire(ProcArrayLock, LW_EXCLUSIVE);
	MyProc->statusFlags &= ~PROC_IN_LOGICAL_DECODING;
	ProcGlobal->statusFlags[MyProc->pgxactoff] = MyProc->statusFlags;
	LWLockRelease(ProcArrayLock);
}

bool
flusso_capture_is_open(void)
{
	return decoding != NULL;
}

void
flusso_capture_open(void)
{
	MemoryContext old;

	ensure_contexts();
	if (decoding)
		return;
	CheckLogicalDecodingRequirements();
	compat_ReplicationSlotAcquire(flusso_capture_slot_name(), true);
	old = MemoryContextSwitchTo(capture_cxt);
	decoding = CreateDecodingContext(InvalidXLogRecPtr, NIL, false,
									 XL_ROUTINE(.page_read = read_local_xlog_page,
												.segment_open = wal_segment_open,
												.segment_close = wal_segment_close),
									 no_write, no_write, NULL);
	MemoryContextSwitchTo(old);
	count_our_snapshots();
	flusso_capture_apply_failover();
	XLogBeginRead(decoding->reader, MyReplicationSlot->data.restart_lsn);
	round.end_lsn = round.start_lsn = MyReplicationSlot->data.confirmed_flush;
	InvalidateSystemCaches();
	reset_leaves();
}

/* Free the decoding context and release the slot (also after an error). */
void
flusso_capture_close(void)
{
	capturing = false;
	overflow_xid = InvalidTransactionId;
	if (decoding)
	{
		LogicalDecodingContext *ctx = decoding;

		decoding = NULL;
		FreeDecodingContext(ctx);
	}
	if (MyReplicationSlot != NULL)
		ReplicationSlotRelease();
	if (round_cxt)
	{
		round.end_lsn = InvalidXLogRecPtr;
		flusso_capture_reset_round();
	}
	InvalidateSystemCaches();
}

/*
 * A record larger than the reader's decode buffer is palloc'd in the
 * current context and freed by the next read: it must outlive the step.
 */
static XLogRecord *
read_record(XLogReaderState *reader, char **errm)
{
	MemoryContext old = MemoryContextSwitchTo(capture_cxt);
	XLogRecord *record = XLogReadRecord(reader, errm);

	MemoryContextSwitchTo(old);
	return record;
}

void
flusso_capture_decode(int max_images)
{
	XLogReaderState *reader = decoding->reader;
	MemoryContext caller = CurrentMemoryContext;
	XLogRecPtr	end_of_wal = GetFlushRecPtr(NULL);
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 200);
	int			n = 0;

	capturing = true;
	PG_TRY();
	{
		while (reader->EndRecPtr < end_of_wal)
		{
			char	   *errm = NULL;
			XLogRecord *record = read_record(reader, &errm);

			if (errm)
				elog(ERROR, "could not read WAL for logical decoding: %s", errm);
			if (record != NULL)
			{
				LogicalDecodingProcessRecord(decoding, reader);

				/*
				 * Replaying a transaction starts one and aborts it, and
				 * the abort leaves TopMemoryContext current.
				 */
				MemoryContextSwitchTo(caller);
			}
			CHECK_FOR_INTERRUPTS();
			if (round.control_changed || round.rebuild_relids != NIL ||
				round.nimages >= max_images)
				break;
			if (++n % 256 == 0 && GetCurrentTimestamp() > deadline)
				break;
		}
	}
	PG_FINALLY();
	{
		capturing = false;
	}
	PG_END_TRY();
	round.reached_end = reader->EndRecPtr >= end_of_wal;
	if (reader->EndRecPtr > round.end_lsn)
		round.end_lsn = reader->EndRecPtr;
	if (round.catalog_changed)
	{
		InvalidateSystemCaches();
		reset_leaves();
	}
}

/* ---- confirmation and lag ---- */

XLogRecPtr
flusso_capture_confirmed(void)
{
	XLogRecPtr	lsn;

	if (MyReplicationSlot == NULL)
		return InvalidXLogRecPtr;
	SpinLockAcquire(&MyReplicationSlot->mutex);
	lsn = MyReplicationSlot->data.confirmed_flush;
	SpinLockRelease(&MyReplicationSlot->mutex);
	return lsn;
}

void
flusso_capture_confirm(XLogRecPtr lsn)
{
	if (decoding == NULL || lsn <= flusso_capture_confirmed())
		return;
	LogicalConfirmReceivedLocation(lsn);
	ReplicationSlotMarkDirty();
}

int64
flusso_capture_lag_bytes(void)
{
	XLogRecPtr	confirmed = flusso_capture_confirmed();
	XLogRecPtr	now = GetXLogInsertRecPtr();

	if (confirmed == InvalidXLogRecPtr)
		return -1;
	return now > confirmed ? (int64) (now - confirmed) : 0;
}
