/*-------------------------------------------------------------------------
 *
 * capture.h
 *	  The replication slot, in-process decoding, and the captured changes.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_CAPTURE_H
#define FLUSSO_CAPTURE_H

#include "access/xlogdefs.h"
#include "replication/reorderbuffer.h"
#include "utils/relcache.h"

#include "definition/sqlgen.h"

/* A table some index reads, and the columns changes must carry. */
typedef struct CaptureRel
{
	Oid			relid;
	int			ncols;
	char	  **columns;		/* union of the watched columns, by name */
	List	   *watches;		/* of CaptureUse */
	List	   *images;			/* of char *[ncols], this round (round memory) */
} CaptureRel;

/* One watch of one index on a CaptureRel: which union columns it takes. */
typedef struct CaptureUse
{
	int			index;			/* the engine's index number */
	FlussoWatch *watch;
	int		   *pos;			/* watch column i = union column pos[i] */
} CaptureUse;

/*
 * What one round of decoding captured.  A round ends at a record boundary:
 * every transaction that committed before end_lsn has been delivered whole.
 */
typedef struct CaptureRound
{
	XLogRecPtr	start_lsn;
	XLogRecPtr	end_lsn;		/* confirm here once this round is acknowledged */
	int64		nchanges;		/* row changes of watched tables */
	int64		nimages;		/* distinct images kept */
	TransactionId *xids;		/* top-level transactions that wrote them */
	int			nxids;
	int			maxxids;
	bool		control_changed;	/* flusso.definitions or flusso.requests */
	bool		catalog_changed;	/* some decoded transaction did DDL */
	List	   *rebuild_relids; /* truncated, or too many changes: rebuild */
	char	   *rebuild_reason;
	bool		reached_end;	/* decoded everything flushed so far */
	TimestampTz oldest_commit;	/* commit time of its oldest change, or 0 */
} CaptureRound;

typedef enum SlotState
{
	SLOT_MISSING,
	SLOT_OK,
	SLOT_INVALIDATED			/* its WAL was removed (max_slot_wal_keep_size) */
} SlotState;

/* The relations to watch; relids of flusso's own control tables. */
extern void flusso_capture_set_watches(List *rels, Oid definitions_relid,
									   Oid requests_relid);
extern CaptureRel *flusso_capture_rel(Oid relid);
extern List *flusso_capture_rels(void);

extern SlotState flusso_capture_slot_state(void);
extern void flusso_capture_drop_slot(void);
extern void flusso_capture_drop_stale_slots(bool all, const char *why);
extern XLogRecPtr flusso_capture_create_slot(void);
extern void flusso_capture_apply_failover(void);
extern void flusso_capture_wait_for_standbys(void);
extern const char *flusso_capture_slot_name(void);
extern bool flusso_capture_is_open(void);
extern void flusso_capture_open(void);
extern void flusso_capture_close(void);

/*
 * Decode into the current round until the WAL flushed so far is decoded,
 * or the round holds max_images images (or a control change), at a record
 * boundary.
 */
extern void flusso_capture_decode(int max_images);
extern CaptureRound *flusso_capture_round(void);
extern void flusso_capture_reset_round(void);

extern void flusso_capture_confirm(XLogRecPtr lsn);
extern XLogRecPtr flusso_capture_confirmed(void);
extern int64 flusso_capture_lag_bytes(void);

/* plugin.c: called by the output plugin's callbacks */
extern bool flusso_capture_active(void);
extern void flusso_capture_change(ReorderBufferTXN *txn, Relation rel,
								  ReorderBufferChange *change);
extern void flusso_capture_truncate(ReorderBufferTXN *txn, int nrelations,
									Relation relations[]);
extern void flusso_capture_commit(ReorderBufferTXN *txn, XLogRecPtr commit_lsn);

#endif							/* FLUSSO_CAPTURE_H */
