/*-------------------------------------------------------------------------
 *
 * status.c
 *	  Shared-memory status, the status observer, and the status functions.
 *
 * This file owns flusso's shared memory: one FlussoDbSlot per database a
 * worker syncs (max_worker_processes of them) and one FlussoIndexSlot per
 * index (flusso.max_indexes of them).  Slots are keyed by database OID and
 * index name and live as long as the postmaster, so counters survive a
 * worker restart.  Shared memory holds only pids, process numbers, LSNs,
 * counters and fixed-size strings: never a pointer into process memory.
 *
 * Locking rules:
 *	- FlussoShared->lock (LW_EXCLUSIVE) guards allocating and freeing slots
 *	  and every non-atomic field: phase, strings, timestamps, pids.
 *	  Readers copy those fields out under LW_SHARED.
 *	- The pg_atomic_* counters are updated and read without the lock.
 *	- procno_plus1 is read without the lock by committing backends to wake
 *	  a worker; a stale value at worst sets an unrelated latch.
 *
 * The worker reports through flusso_status_observer, which is the only code
 * that writes a worker's slot after it has been attached.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "base/compat.h"
#include "base/connection.h"
#include "base/redact.h"
#include "base/settings.h"
#include "status/status.h"

FlussoShared *flusso_shared = NULL;
const double flusso_latency_bounds_ms[FLUSSO_LATENCY_BUCKETS - 1] = {
	5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};
const FlussoObserver *flusso_observer = &flusso_status_observer;

/* The slot of the worker running in this process, if any. */
static FlussoDbSlot *my_db_slot = NULL;

static Size
status_shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(FlussoShared));

	size = add_size(size, mul_size(max_worker_processes, sizeof(FlussoDbSlot)));
	size = add_size(size, mul_size(flusso_max_indexes, sizeof(FlussoIndexSlot)));
	return size;
}

void
flusso_status_shmem_request(void)
{
	RequestAddinShmemSpace(status_shmem_size());
	RequestNamedLWLockTranche("flusso", 1);
}

static void
init_db_slot(FlussoDbSlot *slot)
{
	memset(slot, 0, sizeof(*slot));
	pg_atomic_init_u32(&slot->procno_plus1, 0);
	pg_atomic_init_u64(&slot->changes_captured, 0);
	pg_atomic_init_u64(&slot->changes_committed, 0);
	pg_atomic_init_u64(&slot->documents_built, 0);
	pg_atomic_init_u64(&slot->batches, 0);
	pg_atomic_init_u64(&slot->errors, 0);
	pg_atomic_init_u64(&slot->slot_lag_bytes, PG_UINT64_MAX);
	pg_atomic_init_u64(&slot->synced_lsn, 0);
	pg_atomic_init_u64(&slot->flush_count, 0);
	pg_atomic_init_u64(&slot->flush_us_total, 0);
	for (int b = 0; b < FLUSSO_LATENCY_BUCKETS; b++)
		pg_atomic_init_u64(&slot->latency_buckets[b], 0);
}

static void
init_index_slot(FlussoIndexSlot *slot)
{
	memset(slot, 0, sizeof(*slot));
	pg_atomic_init_u64(&slot->upserted, 0);
	pg_atomic_init_u64(&slot->deleted, 0);
	pg_atomic_init_u64(&slot->errors, 0);
}

void
flusso_status_shmem_startup(void)
{
	bool		found;
	int			i;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	flusso_shared = ShmemInitStruct("flusso", status_shmem_size(), &found);
	if (!found)
	{
		char	   *base = (char *) flusso_shared;

		memset(flusso_shared, 0, sizeof(FlussoShared));
		flusso_shared->lock = &(GetNamedLWLockTranche("flusso"))->lock;
		pg_atomic_init_u32(&flusso_shared->launcher_procno_plus1, 0);
		flusso_shared->ndbs = max_worker_processes;
		flusso_shared->nindexes = flusso_max_indexes;
		flusso_shared->dbs = (FlussoDbSlot *) (base + MAXALIGN(sizeof(FlussoShared)));
		flusso_shared->indexes = (FlussoIndexSlot *)
			(flusso_shared->dbs + flusso_shared->ndbs);
		for (i = 0; i < flusso_shared->ndbs; i++)
			init_db_slot(&flusso_shared->dbs[i]);
		for (i = 0; i < flusso_shared->nindexes; i++)
			init_index_slot(&flusso_shared->indexes[i]);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Error out clearly when the library was loaded without being preloaded. */
void
flusso_status_require_preload(void)
{
	if (flusso_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("flusso is not loaded"),
				 errdetail("The flusso library must be loaded at server start to keep its shared state."),
				 errhint("Add flusso to shared_preload_libraries in postgresql.conf and restart the server.")));
}

static FlussoDbSlot *
find_db_slot(Oid dboid)
{
	int			i;

	for (i = 0; i < flusso_shared->ndbs; i++)
	{
		FlussoDbSlot *slot = &flusso_shared->dbs[i];

		if (slot->in_use && slot->dboid == dboid)
			return slot;
	}
	return NULL;
}

FlussoDbSlot *
flusso_status_db(Oid dboid)
{
	if (flusso_shared == NULL)
		return NULL;
	return find_db_slot(dboid);
}

static void
detach_worker(int code, Datum arg)
{
	if (my_db_slot == NULL)
		return;
	pg_atomic_write_u32(&my_db_slot->procno_plus1, 0);
	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	my_db_slot->pid = 0;
	my_db_slot->phase = FLUSSO_PHASE_STOPPED;
	strlcpy(my_db_slot->activity, "not running", FLUSSO_ACTIVITY_LEN);
	LWLockRelease(flusso_shared->lock);
	my_db_slot = NULL;
}

/*
 * Claim (or re-claim, after a restart) the status slot of a database for
 * the worker running in this process.
 */
FlussoDbSlot *
flusso_status_attach_worker(Oid dboid, const char *dbname)
{
	FlussoDbSlot *slot;
	int			i;

	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	slot = find_db_slot(dboid);
	for (i = 0; slot == NULL && i < flusso_shared->ndbs; i++)
	{
		if (!flusso_shared->dbs[i].in_use)
		{
			slot = &flusso_shared->dbs[i];
			init_db_slot(slot);
			slot->in_use = true;
			slot->dboid = dboid;
		}
	}
	if (slot == NULL)
	{
		LWLockRelease(flusso_shared->lock);
		elog(ERROR, "no free flusso status slot for database \"%s\"", dbname);
	}
	strlcpy(slot->dbname, dbname, NAMEDATALEN);
	slot->pid = MyProcPid;
	slot->serving_extension = InvalidOid;	/* until the engine starts */
	slot->phase = FLUSSO_PHASE_STARTING;
	slot->started_at = GetCurrentTimestamp();
	strlcpy(slot->activity, "starting", FLUSSO_ACTIVITY_LEN);
	slot->search_state = FLUSSO_SEARCH_UNKNOWN;
	LWLockRelease(flusso_shared->lock);
	pg_atomic_write_u32(&slot->procno_plus1, compat_my_procno() + 1);

	my_db_slot = slot;
	before_shmem_exit(detach_worker, (Datum) 0);
	return slot;
}

/*
 * Which CREATE EXTENSION the worker syncs now (InvalidOid: none): callers
 * that wait on the worker wait until it serves the extension they see.
 */
void
flusso_status_set_serving(Oid extension)
{
	if (my_db_slot == NULL)
		return;
	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	my_db_slot->serving_extension = extension;
	LWLockRelease(flusso_shared->lock);
	/* what the worker acknowledged for another extension says nothing of this one */
	if (extension == InvalidOid)
		pg_atomic_write_u64(&my_db_slot->synced_lsn, 0);
}

void
flusso_status_set_launcher(void)
{
	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	flusso_shared->launcher_pid = MyProcPid;
	LWLockRelease(flusso_shared->lock);
	pg_atomic_write_u32(&flusso_shared->launcher_procno_plus1,
						compat_my_procno() + 1);
}

static void
wake_procno(uint32 procno_plus1)
{
	if (procno_plus1 > 0 && procno_plus1 <= ProcGlobal->allProcCount)
		SetLatch(&ProcGlobal->allProcs[procno_plus1 - 1].procLatch);
}

/* Set the latch of the sync worker of a database, if one runs. */
void
flusso_wake_worker(Oid dboid)
{
	int			i;

	if (flusso_shared == NULL)
		return;
	for (i = 0; i < flusso_shared->ndbs; i++)
	{
		FlussoDbSlot *slot = &flusso_shared->dbs[i];

		/* unlocked read: see the locking rules above */
		if (slot->dboid == dboid)
			wake_procno(pg_atomic_read_u32(&slot->procno_plus1));
	}
}

void
flusso_wake_launcher(void)
{
	if (flusso_shared != NULL)
		wake_procno(pg_atomic_read_u32(&flusso_shared->launcher_procno_plus1));
}

/* Should the launcher leave this database alone for now? */
bool
flusso_status_held(Oid dboid)
{
	bool		held;

	LWLockAcquire(flusso_shared->lock, LW_SHARED);
	held = flusso_shared->hold_dboid == dboid &&
		GetCurrentTimestamp() < flusso_shared->hold_until;
	LWLockRelease(flusso_shared->lock);
	return held;
}

/* Keep the launcher from starting the worker of dboid for ms (0: release). */
void
flusso_status_hold(Oid dboid, int ms)
{
	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	flusso_shared->hold_dboid = ms > 0 ? dboid : InvalidOid;
	flusso_shared->hold_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	LWLockRelease(flusso_shared->lock);
}

/* A database is gone: forget its worker's and its indexes' status. */
void
flusso_status_forget_db(Oid dboid)
{
	int			i;

	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < flusso_shared->ndbs; i++)
		if (flusso_shared->dbs[i].dboid == dboid && flusso_shared->dbs[i].pid == 0)
			flusso_shared->dbs[i].in_use = false;
	for (i = 0; i < flusso_shared->nindexes; i++)
		if (flusso_shared->indexes[i].dboid == dboid)
			flusso_shared->indexes[i].in_use = false;
	LWLockRelease(flusso_shared->lock);
}

/* ---- index slots ---- */

FlussoIndexSlot *
flusso_status_find_index(Oid dboid, const char *name)
{
	int			i;

	Assert(LWLockHeldByMe(flusso_shared->lock));
	for (i = 0; i < flusso_shared->nindexes; i++)
	{
		FlussoIndexSlot *slot = &flusso_shared->indexes[i];

		if (slot->in_use && slot->dboid == dboid &&
			strcmp(slot->name, name) == 0)
			return slot;
	}
	return NULL;
}

static FlussoIndexSlot *
claim_index_slot(Oid dboid, const char *name)
{
	FlussoIndexSlot *slot = flusso_status_find_index(dboid, name);
	int			i;

	Assert(LWLockHeldByMeInMode(flusso_shared->lock, LW_EXCLUSIVE));
	for (i = 0; slot == NULL && i < flusso_shared->nindexes; i++)
	{
		if (!flusso_shared->indexes[i].in_use)
		{
			slot = &flusso_shared->indexes[i];
			init_index_slot(slot);
			slot->in_use = true;
			slot->dboid = dboid;
			strlcpy(slot->name, name, NAMEDATALEN);
			slot->phase = FLUSSO_INDEX_PENDING;
		}
	}
	if (slot == NULL)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("no status slot left for index \"%s\"", name),
				 errhint("Raise flusso.max_indexes and restart the server.")));
	return slot;
}

void
flusso_status_forget_index(Oid dboid, const char *name)
{
	FlussoIndexSlot *slot;

	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	slot = flusso_status_find_index(dboid, name);
	if (slot)
		slot->in_use = false;
	LWLockRelease(flusso_shared->lock);
}

/*
 * Make the index slots of a database match the given names: claim the
 * missing ones, free those of indexes that no longer exist.
 */
void
flusso_status_sync_indexes(Oid dboid, List *names)
{
	int			i;
	ListCell   *lc;

	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < flusso_shared->nindexes; i++)
	{
		FlussoIndexSlot *slot = &flusso_shared->indexes[i];
		bool		listed = false;

		if (!slot->in_use || slot->dboid != dboid)
			continue;
		foreach(lc, names)
			listed |= strcmp(slot->name, lfirst(lc)) == 0;
		if (!listed)
			slot->in_use = false;
	}
	foreach(lc, names)
		(void) claim_index_slot(dboid, lfirst(lc));
	LWLockRelease(flusso_shared->lock);
}

/* ---- the status observer ---- */

/*
 * The slot of one of this worker's indexes, with FlussoShared->lock taken
 * exclusively (the caller releases it): claimed if it has none and claim,
 * else NULL when it has none.
 */
static FlussoIndexSlot *
lock_index_slot(const char *index, bool claim)
{
	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	return claim ? claim_index_slot(MyDatabaseId, index) :
		flusso_status_find_index(MyDatabaseId, index);
}

static void
obs_phase(FlussoPhase phase)
{
	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	my_db_slot->phase = phase;
	LWLockRelease(flusso_shared->lock);
}

static void
obs_activity(const char *what)
{
	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	strlcpy(my_db_slot->activity, what, FLUSSO_ACTIVITY_LEN);
	LWLockRelease(flusso_shared->lock);
}

static void
obs_changes_captured(uint64 n)
{
	pg_atomic_fetch_add_u64(&my_db_slot->changes_captured, n);
}

static void
obs_batch_committed(const FlussoBatchStats *stats)
{
	int			i;

	pg_atomic_fetch_add_u64(&my_db_slot->changes_committed, stats->changes);
	pg_atomic_fetch_add_u64(&my_db_slot->documents_built, stats->documents);
	pg_atomic_fetch_add_u64(&my_db_slot->batches, 1);
	if (stats->acked_lsn > pg_atomic_read_u64(&my_db_slot->synced_lsn))
		pg_atomic_write_u64(&my_db_slot->synced_lsn, stats->acked_lsn);

	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < stats->nindexes; i++)
	{
		const FlussoIndexBatchStats *is = &stats->indexes[i];
		FlussoIndexSlot *slot = flusso_status_find_index(MyDatabaseId, is->index);

		if (slot == NULL)
			continue;
		slot->last_ok_at = GetCurrentTimestamp();
		pg_atomic_fetch_add_u64(&slot->upserted, is->upserted);
		pg_atomic_fetch_add_u64(&slot->deleted, is->deleted);
		pg_atomic_fetch_add_u64(&slot->errors, is->failed);
	}
	LWLockRelease(flusso_shared->lock);
}

static void
obs_caught_up(XLogRecPtr lsn)
{
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	if (lsn > pg_atomic_read_u64(&my_db_slot->synced_lsn))
		pg_atomic_write_u64(&my_db_slot->synced_lsn, lsn);
	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < flusso_shared->nindexes; i++)
	{
		if (flusso_shared->indexes[i].in_use && flusso_shared->indexes[i].dboid == MyDatabaseId)
			flusso_shared->indexes[i].last_ok_at = now;
	}
	LWLockRelease(flusso_shared->lock);
}

static void
obs_index_phase(const char *index, FlussoIndexPhase phase)
{
	FlussoIndexSlot *slot = lock_index_slot(index, true);

	if (slot)
		slot->phase = phase;
	LWLockRelease(flusso_shared->lock);
}

static void
obs_backfill_progress(const char *index, int64 done, int64 total)
{
	FlussoIndexSlot *slot = lock_index_slot(index, true);

	if (slot)
	{
		slot->backfill_done = done;
		slot->backfill_total = total;
		slot->last_ok_at = GetCurrentTimestamp();
	}
	LWLockRelease(flusso_shared->lock);
}

static void
obs_generations(const char *index, int live, int building)
{
	FlussoIndexSlot *slot = lock_index_slot(index, true);

	if (slot)
	{
		if (building != 0 && building != slot->build_generation)
			slot->build_started_at = GetCurrentTimestamp();
		slot->live_generation = live;
		slot->build_generation = building;
	}
	LWLockRelease(flusso_shared->lock);
}

static void
obs_lag_warning(bool over)
{
	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	my_db_slot->lag_warning = over;
	LWLockRelease(flusso_shared->lock);
}

static void
obs_lag(TimestampTz oldest)
{
	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	my_db_slot->oldest_unacked = oldest;
	LWLockRelease(flusso_shared->lock);
}

static void
obs_index_lag(const char *index, TimestampTz oldest)
{
	FlussoIndexSlot *slot = lock_index_slot(index, false);

	if (slot)
		slot->oldest_unacked = oldest;
	LWLockRelease(flusso_shared->lock);
}

static void
obs_bulk_latency(double ms)
{
	int			b = 0;

	while (b < FLUSSO_LATENCY_BUCKETS - 1 && ms > flusso_latency_bounds_ms[b])
		b++;
	pg_atomic_fetch_add_u64(&my_db_slot->latency_buckets[b], 1);
	pg_atomic_fetch_add_u64(&my_db_slot->flush_count, 1);
	pg_atomic_fetch_add_u64(&my_db_slot->flush_us_total, (uint64) (ms * 1000.0));
}

static void
obs_error(const char *index, const char *message, const char *public_message)
{
	TimestampTz now = GetCurrentTimestamp();
	char	   *shown = flusso_redact(message);
	char	   *shown_public = flusso_redact(public_message ? public_message :
											 flusso_strip_values(message));

	pg_atomic_fetch_add_u64(&my_db_slot->errors, 1);
	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	strlcpy(my_db_slot->last_error, shown, FLUSSO_ERROR_LEN);
	strlcpy(my_db_slot->last_error_public, shown_public, FLUSSO_ERROR_LEN);
	my_db_slot->last_error_at = now;
	if (index != NULL)
	{
		FlussoIndexSlot *slot = claim_index_slot(MyDatabaseId, index);

		if (slot)
		{
			pg_atomic_fetch_add_u64(&slot->errors, 1);
			strlcpy(slot->last_error, shown, FLUSSO_ERROR_LEN);
			strlcpy(slot->last_error_public, shown_public, FLUSSO_ERROR_LEN);
			slot->last_error_at = now;
		}
	}
	LWLockRelease(flusso_shared->lock);
}

static void
obs_index_owner(const char *index, Oid owner)
{
	FlussoIndexSlot *slot = lock_index_slot(index, true);

	if (slot)
		slot->owner = owner;
	LWLockRelease(flusso_shared->lock);
}

static void
obs_index_waiting(const char *index, const char *what, TimestampTz since)
{
	FlussoIndexSlot *slot = lock_index_slot(index, false);

	if (slot)
	{
		strlcpy(slot->waiting_for, what ? what : "", FLUSSO_ACTIVITY_LEN);
		slot->waiting_since = what ? since : 0;
	}
	LWLockRelease(flusso_shared->lock);
}

static void
obs_slot_lag(int64 bytes)
{
	pg_atomic_write_u64(&my_db_slot->slot_lag_bytes,
						bytes < 0 ? PG_UINT64_MAX : (uint64) bytes);
}

static void
obs_reachability(FlussoReachability state, const char *engine, const char *version,
				 const char *error)
{
	char	   *shown = error ? flusso_redact(error) : NULL;

	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	my_db_slot->search_state = state;
	strlcpy(my_db_slot->search_engine, engine ? engine : "", FLUSSO_VERSION_LEN);
	strlcpy(my_db_slot->search_version, version ? version : "", FLUSSO_VERSION_LEN);
	strlcpy(my_db_slot->search_error, shown ? shown : "", FLUSSO_ERROR_LEN);
	my_db_slot->search_checked_at = GetCurrentTimestamp();
	my_db_slot->tls_verify = flusso_connection_tls_verify();
	LWLockRelease(flusso_shared->lock);
}

const FlussoObserver flusso_status_observer = {
	.on_phase = obs_phase,
	.on_activity = obs_activity,
	.on_changes_captured = obs_changes_captured,
	.on_batch_committed = obs_batch_committed,
	.on_caught_up = obs_caught_up,
	.on_index_phase = obs_index_phase,
	.on_backfill_progress = obs_backfill_progress,
	.on_generations = obs_generations,
	.on_error = obs_error,
	.on_index_owner = obs_index_owner,
	.on_index_waiting = obs_index_waiting,
	.on_slot_lag = obs_slot_lag,
	.on_lag_warning = obs_lag_warning,
	.on_lag = obs_lag,
	.on_index_lag = obs_index_lag,
	.on_bulk_latency = obs_bulk_latency,
	.on_reachability = obs_reachability,
};


/* ---- requests from backends to a worker ---- */

uint32
flusso_status_post_request(Oid dboid, const char *name, bool wait)
{
	uint32		id = 0;
	int			i;

	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < FLUSSO_MAX_REQUESTS; i++)
	{
		FlussoRequestSlot *r = &flusso_shared->requests[i];

		if (r->in_use)
			continue;
		memset(r, 0, sizeof(*r));
		r->in_use = true;
		r->waited = wait;
		r->dboid = dboid;
		strlcpy(r->name, name, NAMEDATALEN);
		r->id = id = ++flusso_shared->next_request_id;
		break;
	}
	LWLockRelease(flusso_shared->lock);
	if (id == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many flusso requests are waiting"),
				 errhint("Try again once the sync worker has handled them.")));
	return id;
}

/* The worker takes its database's new requests: a list of "id name" strings. */
List *
flusso_status_take_requests(Oid dboid)
{
	List	   *taken = NIL;
	int			i;

	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < FLUSSO_MAX_REQUESTS; i++)
	{
		FlussoRequestSlot *r = &flusso_shared->requests[i];

		if (r->in_use && !r->taken && r->dboid == dboid)
		{
			r->taken = true;
			taken = lappend(taken, psprintf("%u %s", r->id, r->name));
		}
	}
	LWLockRelease(flusso_shared->lock);
	return taken;
}

void
flusso_status_finish_request(uint32 id, int generation, const char *error)
{
	int			i;

	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < FLUSSO_MAX_REQUESTS; i++)
	{
		FlussoRequestSlot *r = &flusso_shared->requests[i];

		if (r->in_use && r->id == id)
		{
			r->in_use = r->waited;	/* nobody waits: free it now */
			r->handled = true;
			r->generation = generation;
			strlcpy(r->error, error ? error : "", sizeof(r->error));
		}
	}
	LWLockRelease(flusso_shared->lock);
}

/* The caller no longer waits: the slot goes once the worker is done with it. */
void
flusso_status_abandon_request(uint32 id)
{
	int			i;

	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < FLUSSO_MAX_REQUESTS; i++)
	{
		FlussoRequestSlot *r = &flusso_shared->requests[i];

		if (r->in_use && r->id == id)
		{
			r->waited = false;
			r->in_use = !r->handled;
		}
	}
	LWLockRelease(flusso_shared->lock);
}

/* Has the request been handled?  If so, its outcome, and the slot is freed. */
bool
flusso_status_request_result(uint32 id, int *generation, char **error)
{
	bool		handled = false;
	int			i;

	LWLockAcquire(flusso_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < FLUSSO_MAX_REQUESTS; i++)
	{
		FlussoRequestSlot *r = &flusso_shared->requests[i];

		if (r->in_use && r->id == id && r->handled)
		{
			handled = true;
			*generation = r->generation;
			*error = r->error[0] ? pstrdup(r->error) : NULL;
			r->in_use = false;
		}
	}
	LWLockRelease(flusso_shared->lock);
	return handled;
}
