/*
 * compat.h — what differs between the PostgreSQL server versions flusso
 * builds against (15, 17, 18).  Each concern is one block, with the version
 * that changed it and how; the code calls the names defined here.  Include
 * it after postgres.h and the headers that declare the functions it wraps
 * (the macros expand at the call sites).
 *
 * Only macros, and on 16 and later the headers they need (varatt.h, and
 * the catalogs whose OIDs the ACL checks take).
 *
 * Everything of flusso that depends on the server's version, in one list:
 * the blocks below are the API differences; the rest are differences of
 * behaviour, handled where they happen, each for the reason given.
 *
 *	version		what								where, and why
 *	16			varlena macros in varatt.h			below
 *	16			object_ownercheck/object_aclcheck	below
 *	16			GUC memory (guc_strdup/guc_malloc/	below; the check hooks of
 *				guc_free)							base/settings.c (the URL,
 *													max_lag_bytes)
 *	16			stringToQualifiedNameList escontext	below
 *	16			get_guc_variables(int *)			below
 *	16			slot invalidation cause				below; pipeline/loader.c
 *													treats every cause as
 *													"invalidated"
 *	17			ReplicationSlotCreate failover		below; flusso.failover_slots
 *				(failover slots, slot sync)			(base/settings.c: "on" is
 *													refused before 17, naming the
 *													version) picks it;
 *													capture/capture.c creates and
 *													alters the slot
 *	17			synchronized_standby_slots			below; capture/capture.c waits
 *													for the standbys before
 *													pipeline/ship.c sends
 *													documents, as a logical
 *													walsender waits before it
 *													sends a change
 *	17			ReorderBufferTupleBuf removed		below
 *	17			PGPROC.pgprocno removed				below
 *	17			CreateWaitEventSet(ResourceOwner)	below
 *	17			pg_upgrade carries logical slots	process/launcher.c: no launcher
 *													under -b (IsBinaryUpgrade,
 *													every version), or the old
 *													server's worker holds the slot
 *													pg_upgrade checks; from 15
 *													there is no slot after
 *													pg_upgrade and the worker
 *													rebuilds (pipeline/loader.c)
 *	18			ReplicationSlotAcquire error_if_invalid	below
 *	18			RelationGetPrimaryKeyIndex deferrable_ok	below
 *	15.19, 17.11, 18.6	output_plugin_libraries		process/worker.c
 *													(allow_own_plugin): the worker
 *													adds flusso for its own
 *													session; a minor release
 *													without the setting is left
 *													as is
 *	every		PROC_IN_LOGICAL_DECODING			capture/capture.c
 *													(count_our_snapshots):
 *													CreateDecodingContext() marks
 *													the worker a decoding backend,
 *													whose snapshots the xmin
 *													horizon ignores; flusso clears
 *													the mark (same flag and same
 *													code on 15, 17 and 18)
 *	every		hot standby							process/worker.c: on a standby
 *													the worker waits (phase
 *													"standby"), and syncs once
 *													promoted; on 17 and later the
 *													slot it finds then is the one
 *													synchronized from the old
 *													primary
 *	none		pg_stat_* views						flusso reads none; it reports
 *													through pgstat_report_activity()
 *													and pgstat_report_stat(), the
 *													same on 15, 17 and 18
 */
#ifndef FLUSSO_COMPAT_H
#define FLUSSO_COMPAT_H

/*
 * 16 moved the varlena macros (VARDATA_ANY, VARSIZE_ANY_EXHDR, SET_VARSIZE
 * ...) out of postgres.h into varatt.h, which postgres.h no longer includes.
 */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/*
 * 16 replaced the per-class ACL checks (pg_database_ownercheck(),
 * pg_namespace_aclcheck() ...) with object_ownercheck() and
 * object_aclcheck() taking the catalog's OID; the 15 names map onto them.
 * (pg_class_aclcheck() was kept.)
 */
#if PG_VERSION_NUM >= 160000
#include "catalog/pg_database.h"
#include "catalog/pg_namespace.h"
#define pg_database_ownercheck(dboid, roleid) \
	object_ownercheck(DatabaseRelationId, (dboid), (roleid))
#define pg_namespace_aclcheck(nspoid, roleid, mode) \
	object_aclcheck(NamespaceRelationId, (nspoid), (roleid), (mode))
#endif

/*
 * 16 keeps GUC values and extras in a memory context of their own: a check
 * hook allocates them with guc_strdup()/guc_malloc() and frees with
 * guc_free() (15: strdup/malloc and free; on 16 a strdup'd value or a
 * malloc'd extra is pfree'd when replaced, and the process stops with
 * "pfree called with invalid pointer").  LOG: NULL when out of memory, as
 * strdup and malloc.
 */
#if PG_VERSION_NUM >= 160000
#define compat_guc_strdup(str) guc_strdup(LOG, (str))
#define compat_guc_malloc(size) guc_malloc(LOG, (size))
#define compat_guc_free(ptr) guc_free(ptr)
#else
#define compat_guc_strdup(str) strdup(str)
#define compat_guc_malloc(size) malloc(size)
#define compat_guc_free(ptr) free(ptr)
#endif

/*
 * 16 gave get_guc_variables() an out argument for the number of variables
 * and removed GetNumConfigOptions() (utils/guc_tables.h).
 */
#if PG_VERSION_NUM >= 160000
#define compat_get_guc_variables(n) get_guc_variables(n)
#else
#define compat_get_guc_variables(n) (*(n) = GetNumConfigOptions(), get_guc_variables())
#endif

/*
 * 16 gave stringToQualifiedNameList() a soft-error context; NULL keeps
 * 15's behaviour (a malformed name throws).
 */
#if PG_VERSION_NUM >= 160000
#define compat_stringToQualifiedNameList(str) stringToQualifiedNameList((str), NULL)
#else
#define compat_stringToQualifiedNameList(str) stringToQualifiedNameList(str)
#endif

/*
 * 16 replaced a slot's invalidated_at (the restart_lsn it had when
 * invalidated; 15 clears restart_lsn too) by the cause of the invalidation,
 * data.invalidated, RS_INVAL_NONE while the slot is usable.  Read under the
 * slot's mutex.
 */
#if PG_VERSION_NUM >= 160000
#define compat_slot_invalidated(s) ((s)->data.invalidated != RS_INVAL_NONE)
#else
#define compat_slot_invalidated(s) \
	((s)->data.restart_lsn == InvalidXLogRecPtr && \
	 (s)->data.invalidated_at != InvalidXLogRecPtr)
#endif

/*
 * 17 added failover slots: ReplicationSlotCreate() takes failover (the
 * slot is synchronized to standbys with sync_replication_slots = on) and
 * synced (made by the slot sync worker; flusso's never is), and a slot
 * keeps data.failover, which ReplicationSlotAlter() changes (its signature
 * differs between 17 and 18; flusso sets the field of the slot it holds
 * the way both do it).  15 has none of it: a slot never survives a
 * failover, flusso.failover_slots = on is refused there, and the field
 * reads as false.
 */
#if PG_VERSION_NUM >= 170000
#define FLUSSO_HAVE_FAILOVER_SLOTS true
#define compat_ReplicationSlotCreate(name, db_specific, persistency, two_phase, failover) \
	ReplicationSlotCreate((name), (db_specific), (persistency), (two_phase), (failover), false)
#define compat_slot_failover(s) ((s)->data.failover)
#define compat_slot_set_failover(s, value) \
	do { \
		SpinLockAcquire(&(s)->mutex); \
		(s)->data.failover = (value); \
		SpinLockRelease(&(s)->mutex); \
	} while (0)
#else
#define FLUSSO_HAVE_FAILOVER_SLOTS false
#define compat_ReplicationSlotCreate(name, db_specific, persistency, two_phase, failover) \
	((void) (failover), ReplicationSlotCreate((name), (db_specific), (persistency), (two_phase)))
#define compat_slot_failover(s) ((void) (s), false)
#define compat_slot_set_failover(s, value) ((void) (s), (void) (value))
#endif

/*
 * 17: a logical walsender (and pg_logical_slot_get_changes()) decoding a
 * failover slot sends nothing until the physical slots named in
 * synchronized_standby_slots have confirmed the WAL it came from
 * (StandbySlotsHaveCaughtup(), true when the setting is empty; it waits
 * on WalSndCtl->wal_confirm_rcv_cv, broadcast when a physical slot
 * advances).  flusso waits the same way before it sends documents
 * (capture.c).  15 has no such setting: nothing to wait for.
 */
#if PG_VERSION_NUM >= 170000
#include "replication/walsender_private.h"
#define compat_standby_slots_caught_up(lsn, elevel) StandbySlotsHaveCaughtup((lsn), (elevel))
#define compat_standby_confirm_cv() (&WalSndCtl->wal_confirm_rcv_cv)
#define COMPAT_WAIT_EVENT_STANDBY_CONFIRMATION WAIT_EVENT_WAIT_FOR_STANDBY_CONFIRMATION
#else
#define compat_standby_slots_caught_up(lsn, elevel) ((void) (lsn), (void) (elevel), true)
#define compat_standby_confirm_cv() ((ConditionVariable *) NULL)
#define COMPAT_WAIT_EVENT_STANDBY_CONFIRMATION PG_WAIT_EXTENSION
#endif

/*
 * 18 added ReplicationSlotAcquire()'s error_if_invalid: with it, acquiring
 * an invalidated slot throws, as every core caller that decodes asks for
 * (18's CreateDecodingContext() only asserts the slot is valid; 15's and
 * 17's read from it and fail on the missing WAL).  flusso looks at the slot's
 * state before it opens it, so this only closes the race in between.
 */
#if PG_VERSION_NUM >= 180000
#define compat_ReplicationSlotAcquire(name, nowait) \
	ReplicationSlotAcquire((name), (nowait), true)
#else
#define compat_ReplicationSlotAcquire(name, nowait) \
	ReplicationSlotAcquire((name), (nowait))
#endif

/*
 * 17 removed ReorderBufferTupleBuf: a change's oldtuple and newtuple are
 * HeapTuples themselves (15: a buffer whose .tuple is the HeapTupleData).
 */
#if PG_VERSION_NUM >= 170000
#define compat_change_tuple(buf) (buf)
#else
#define compat_change_tuple(buf) (&(buf)->tuple)
#endif

/*
 * 17 removed PGPROC.pgprocno (procs are numbered by their place in
 * ProcGlobal->allProcs: GetNumberFromPGProc(), MyProcNumber).
 */
#if PG_VERSION_NUM >= 170000
#define compat_my_procno() GetNumberFromPGProc(MyProc)
#else
#define compat_my_procno() (MyProc->pgprocno)
#endif

/*
 * 17 made CreateWaitEventSet() take a ResourceOwner instead of a memory
 * context (the set always lives in TopMemoryContext).  NULL: no owner
 * releases it; flusso frees its long-lived set itself, as on 15, where it
 * was allocated in TopMemoryContext.
 */
#if PG_VERSION_NUM >= 170000
#define compat_CreateWaitEventSet_top(nevents) CreateWaitEventSet(NULL, (nevents))
#else
#define compat_CreateWaitEventSet_top(nevents) CreateWaitEventSet(TopMemoryContext, (nevents))
#endif

/*
 * 18 added RelationGetPrimaryKeyIndex()'s deferrable_ok: false keeps 15's
 * and 17's answer, where a deferrable primary key is no key (rd_pkindex
 * only held immediate ones).
 */
#if PG_VERSION_NUM >= 180000
#define compat_RelationGetPrimaryKeyIndex(rel) RelationGetPrimaryKeyIndex((rel), false)
#else
#define compat_RelationGetPrimaryKeyIndex(rel) RelationGetPrimaryKeyIndex(rel)
#endif

#endif							/* FLUSSO_COMPAT_H */
