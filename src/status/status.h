/*-------------------------------------------------------------------------
 *
 * status.h
 *	  Shared-memory status of the launcher, the sync workers and the indexes.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_STATUS_H
#define FLUSSO_STATUS_H

#include "port/atomics.h"
#include "storage/lwlock.h"

#include "status/observer.h"

#define FLUSSO_ERROR_LEN		1024
#define FLUSSO_ACTIVITY_LEN		128
#define FLUSSO_VERSION_LEN		32
#define FLUSSO_LATENCY_BUCKETS	12	/* upper bounds below, then +Inf */
#define FLUSSO_MAX_REQUESTS		32

extern const double flusso_latency_bounds_ms[FLUSSO_LATENCY_BUCKETS - 1];

/* Status of one database's sync worker; kept across worker restarts. */
typedef struct FlussoDbSlot
{
	/* under FlussoShared->lock */
	bool		in_use;
	Oid			dboid;
	char		dbname[NAMEDATALEN];
	int			pid;			/* 0 when no worker runs */
	Oid			serving_extension;	/* the pg_extension row synced; InvalidOid: none */
	FlussoPhase phase;
	TimestampTz started_at;
	char		activity[FLUSSO_ACTIVITY_LEN];
	char		last_error[FLUSSO_ERROR_LEN];
	char		last_error_public[FLUSSO_ERROR_LEN];	/* without row values */
	TimestampTz last_error_at;
	TimestampTz oldest_unacked; /* commit time of the oldest change waiting */
	bool		lag_warning;	/* slot lag is past flusso.max_lag_bytes */
	FlussoReachability search_state;
	char		search_version[FLUSSO_VERSION_LEN];
	char		search_error[FLUSSO_ERROR_LEN];
	TimestampTz search_checked_at;
	bool		tls_verify;

	/* lock-free */
	pg_atomic_uint32 procno_plus1;	/* the worker's latch, for wakeups */
	pg_atomic_uint64 changes_captured;
	pg_atomic_uint64 changes_committed;
	pg_atomic_uint64 documents_built;
	pg_atomic_uint64 batches;
	pg_atomic_uint64 errors;
	pg_atomic_uint64 slot_lag_bytes;	/* PG_UINT64_MAX: not sampled yet */
	pg_atomic_uint64 synced_lsn;	/* everything before is acknowledged */
	pg_atomic_uint64 flush_count;	/* acknowledged bulk requests */
	pg_atomic_uint64 flush_us_total;	/* their summed latency */
	pg_atomic_uint64 latency_buckets[FLUSSO_LATENCY_BUCKETS];	/* not cumulative */
} FlussoDbSlot;

/* Status of one index of one database. */
typedef struct FlussoIndexSlot
{
	/* under FlussoShared->lock */
	bool		in_use;
	Oid			dboid;
	char		name[NAMEDATALEN];
	FlussoIndexPhase phase;
	int			live_generation;
	int			build_generation;	/* 0 unless a build is running */
	int64		backfill_done;
	int64		backfill_total;
	TimestampTz build_started_at;
	TimestampTz oldest_unacked;
	char		last_error[FLUSSO_ERROR_LEN];
	char		last_error_public[FLUSSO_ERROR_LEN];	/* without row values */
	TimestampTz last_error_at;
	Oid			owner;			/* who may see last_error */
	TimestampTz last_ok_at;		/* documents last acknowledged (errors before it are past) */
	char		waiting_for[FLUSSO_ACTIVITY_LEN];
	TimestampTz waiting_since;

	/* lock-free */
	pg_atomic_uint64 upserted;
	pg_atomic_uint64 deleted;
	pg_atomic_uint64 errors;
} FlussoIndexSlot;

/* A request a backend made to a worker and may wait on (reindex). */
typedef struct FlussoRequestSlot
{
	bool		in_use;
	bool		taken;			/* the worker has it */
	bool		waited;			/* the caller waits for the outcome */
	bool		handled;
	Oid			dboid;
	char		name[NAMEDATALEN];
	uint32		id;
	int			generation;		/* the generation it started */
	char		error[256];
} FlussoRequestSlot;

typedef struct FlussoShared
{
	LWLock	   *lock;
	int			launcher_pid;
	Oid			hold_dboid;		/* a DROP DATABASE is stopping its worker */
	TimestampTz hold_until;
	pg_atomic_uint32 launcher_procno_plus1;
	int			ndbs;
	int			nindexes;
	FlussoDbSlot *dbs;			/* ndbs entries, in this segment */
	FlussoIndexSlot *indexes;	/* nindexes entries, in this segment */
	uint32		next_request_id;
	FlussoRequestSlot requests[FLUSSO_MAX_REQUESTS];
} FlussoShared;

extern FlussoShared *flusso_shared;

extern void flusso_status_shmem_request(void);
extern void flusso_status_shmem_startup(void);
extern void flusso_status_require_preload(void);

extern FlussoDbSlot *flusso_status_attach_worker(Oid dboid, const char *dbname);
extern FlussoDbSlot *flusso_status_db(Oid dboid);
extern FlussoIndexSlot *flusso_status_find_index(Oid dboid, const char *name);
extern void flusso_status_set_launcher(void);
extern void flusso_wake_worker(Oid dboid);
extern void flusso_wake_launcher(void);
extern void flusso_status_forget_index(Oid dboid, const char *name);
extern void flusso_status_sync_indexes(Oid dboid, List *names);
extern bool flusso_status_held(Oid dboid);
extern void flusso_status_hold(Oid dboid, int ms);
extern void flusso_status_forget_db(Oid dboid);
extern void flusso_status_set_serving(Oid extension);

/* requests (reindex) from backends to a worker */
extern uint32 flusso_status_post_request(Oid dboid, const char *name, bool wait);
extern List *flusso_status_take_requests(Oid dboid);
extern void flusso_status_finish_request(uint32 id, int generation, const char *error);
extern bool flusso_status_request_result(uint32 id, int *generation, char **error);
extern void flusso_status_abandon_request(uint32 id);

extern const FlussoObserver flusso_status_observer;

#endif							/* FLUSSO_STATUS_H */
