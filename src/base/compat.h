/*
 * compat.h — what differs between the PostgreSQL server versions flusso
 * builds against (15, 17, 18).  Each concern is one block, with the version
 * that changed it and how; the code calls the names defined here.  Include
 * it after postgres.h and the headers that declare the functions it wraps
 * (the macros expand at the call sites).
 *
 * Only macros, and on 16 and later the headers they need (varatt.h, and
 * the catalogs whose OIDs the ACL checks take).
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
 * hook allocates them with guc_strdup() and frees with guc_free() (15:
 * malloc and free; on 16 a strdup'd value is pfree'd and the server stops
 * with "pfree called with invalid pointer").  LOG: NULL when out of memory,
 * as strdup.
 */
#if PG_VERSION_NUM >= 160000
#define compat_guc_strdup(str) guc_strdup(LOG, (str))
#define compat_guc_free(ptr) guc_free(ptr)
#else
#define compat_guc_strdup(str) strdup(str)
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
 * 17 added ReplicationSlotCreate()'s failover (the slot is synchronized to
 * standbys) and synced (made by the slot sync worker) arguments; flusso's
 * slot is neither.
 */
#if PG_VERSION_NUM >= 170000
#define compat_ReplicationSlotCreate(name, db_specific, persistency, two_phase) \
	ReplicationSlotCreate((name), (db_specific), (persistency), (two_phase), false, false)
#else
#define compat_ReplicationSlotCreate(name, db_specific, persistency, two_phase) \
	ReplicationSlotCreate((name), (db_specific), (persistency), (two_phase))
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
