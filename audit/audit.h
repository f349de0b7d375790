/*
 * audit — what happened, as one JSON record per event for the security team.
 *
 * The gateway fills a struct audit_event as a connection goes (a value struct
 * owned by the connection) and hands it to audit_emit() exactly once, when the
 * tunnel or request ends.  audit/ knows nothing of connections, credentials or
 * policy internals: it encodes what it is told.  Every contract field is always
 * present; a NULL string or a negative number is written as JSON null.
 *
 * Records go to the local syslog socket as RFC 3164 datagrams (syslog.c), or
 * over RELP to rsyslog's imrelp (relp.c), never blocking the caller: while
 * the receiver is missing or full they wait in a bounded queue, what
 * overflows is counted and reported by an "audit_loss" record once delivery
 * resumes.  Over RELP a record leaves the queue only once acknowledged;
 * over the datagram socket, records the reader had not read when it went
 * away are counted in the next audit_loss record as possibly lost.  Each record fits one syslog message of
 * rsyslog's default 8 KiB limit (see AUDIT_RECORD_MAX).
 */
#ifndef EGRESSD_AUDIT_AUDIT_H
#define EGRESSD_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A boolean field that may be null; zero (a memset event) is null. */
enum audit_bool {
	AUDIT_BOOL_NULL = 0,
	AUDIT_BOOL_FALSE,
	AUDIT_BOOL_TRUE,
};

/* One record.  Strings are borrowed for the duration of audit_emit(). */
struct audit_event {
	const char *event;              /* "tunnel", "request", "reload", "start", "stop", "audit_loss" */
	const char *id;                 /* unique per record within a run */
	const char *client_ip;          /* client address text, NULL if none */
	int client_port;                /* -1 = null */
	const char *user;               /* authenticated (or, on failure, given) user name */
	const char *method;             /* request method */
	const char *host;               /* normalized host */
	int port;                       /* destination port, -1 = null */
	const char *url;                /* absolute-form URL without userinfo */
	const char *dst_ip;             /* address connected to or refused */
	const char *sni;                /* ClientHello server name, normalized */
	const char *decision;           /* "allow" or "deny" */
	const char *reason;             /* contract reason, or "ok" */
	const char *rule;               /* "FILE:LINE" or NULL */
	int status;                     /* HTTP status sent, 0 if none */
	int64_t bytes_up;               /* client -> destination payload bytes, -1 = null */
	int64_t bytes_down;             /* destination -> client payload bytes, -1 = null */
	int64_t duration_ms;            /* first request byte to end, -1 = null */
	const char *close;              /* "client", "server", "idle_timeout", ... */
	const char *target;             /* bad_request: the request-target as sent (raw bytes) */
	size_t target_len;              /* its length; at most AUDIT_TARGET_MAX bytes are kept */
	const char *report;             /* FILE:LINE of the first mode=report rule that matched */
	enum audit_bool client_tls;     /* the client's connection was TLS; null: no connection */
	int64_t lost;                   /* audit_loss: records lost, -1 = absent */
	const char *message;            /* reload/start/stop: free text (errors), NULL = absent */
	int64_t end_ms;                 /* end time, ms since the epoch; 0 = now */
};

/*
 * Bounds.  A string value is cut at AUDIT_VALUE_MAX bytes of its JSON form
 * (escapes counted) and marked "...[truncated]"; if the record is still over
 * AUDIT_RECORD_MAX, every value is cut shorter until it fits.  The syslog
 * header (at most 64 bytes with a 32-byte tag) plus AUDIT_RECORD_MAX stays
 * under 8000 bytes, below rsyslog's default maxMessageSize of 8 KiB.
 */
#define AUDIT_VALUE_MAX         1024
#define AUDIT_RECORD_MAX        7900
#define AUDIT_TRUNCATED_MARK    "...[truncated]"
#define AUDIT_TARGET_MAX        256     /* bytes of a refused request-target kept */

/*
 * The queue holds what syslog could not take yet: 10,000 records is several
 * seconds of a busy gateway and many minutes of a quiet one while rsyslog
 * restarts; 16 MiB bounds the memory whatever the record sizes (records are
 * under 8 KiB, so the count bound usually comes first).  What overflows is
 * counted and reported by the next audit_loss record.
 */
#define AUDIT_QUEUE_RECORDS     10000
#define AUDIT_QUEUE_BYTES       (16u * 1024 * 1024)

struct audit_config {
	const char *socket_path;        /* syslog socket (AF_UNIX, datagram) */
	const char *relp_host;          /* RELP receiver (imrelp) instead of the socket; NULL = none */
	int relp_port;
	int facility;                   /* syslog facility number (0..23) */
	const char *tag;                /* APP-NAME, at most 32 bytes are used */
	bool deny_on_failure;           /* audit_on_failure deny */
	bool mirror_stderr;             /* also write "audit {JSON}" lines to stderr */
	/*
	 * Operational log: one line (no newline) when delivery stops and when it
	 * resumes (with what was lost and refused meanwhile), a reminder while it
	 * stays down, and what was still queued at exit.  Called from the
	 * delivery thread and from audit_close(); NULL: no lines.
	 */
	void (*log)(const char *line);
};

/* What the audit transport has done so far (for the admin socket, metrics). */
struct audit_stats {
	bool relp;                      /* the transport is RELP (else the datagram socket) */
	uint64_t sent;                  /* messages accepted by the socket, loss records included;
	                                 * RELP: frames sent, resent ones included */
	uint64_t acked;                 /* RELP: records the receiver acknowledged */
	uint64_t unacked;               /* RELP: sent, acknowledgement not seen yet (still queued) */
	uint64_t resent;                /* RELP: records sent again after a reconnect (possible duplicates) */
	uint64_t possibly_lost_total;   /* datagram: sent but unread when the reader went away
	                                 * (included in lost_total) */
	uint64_t unproven;              /* datagram: sent, not yet proven read by the reader */
	uint64_t queued;                /* records waiting in the queue now */
	uint64_t queued_bytes;          /* bytes of those records */
	uint64_t queued_total;          /* records that ever had to wait in the queue */
	uint64_t lost;                  /* lost since the last audit_loss record was sent */
	uint64_t lost_total;            /* lost since audit_open() */
	uint64_t loss_records;          /* audit_loss records sent */
	uint64_t reconnects;            /* successful (re)connections of the socket */
	bool connected;                 /* the socket is connected now */
	bool available;                 /* what audit_available() answers */
	int last_error;                 /* errno of the last failed connect or send, 0 if none */
};

/*
 * Start the transport: connect to cfg->socket_path (a missing socket is not
 * an error: records queue until it appears) and start the delivery thread.
 * Returns 0, or -1 (path too long, no thread).  cfg's strings are copied.
 */
int audit_open(const struct audit_config *cfg);

/* Deliver what can be delivered within a second, then stop the thread. */
void audit_close(void);

/* Encode, frame and send or queue one record; never blocks.  Thread-safe. */
void audit_emit(const struct audit_event *);

/*
 * Batching, for a thread that runs an event loop.  After audit_batch_start(),
 * the records this thread emits wait in the thread (at most AUDIT_BATCH_MAX)
 * until audit_batch_flush() hands them on together; wake(arg) is called, in
 * this thread, when the first record of a batch waits, so that the loop runs
 * the flush at the end of its turn.  A full batch is flushed at once.
 * audit_batch_stop() flushes and ends batching.  Other threads are unaffected.
 */
#define AUDIT_BATCH_MAX 32
void audit_batch_start(void (*wake)(void *), void *arg);
void audit_batch_flush(void);
void audit_batch_stop(void);

/* false while records cannot be delivered (for audit_on_failure deny). */
bool audit_available(void);

/* A tunnel or request was refused because audit_available() was false
 * (audit_on_failure deny): counted for the outage's log lines.  Thread-safe. */
void audit_note_refused(void);

/* A consistent snapshot of the counters. */
void audit_stats(struct audit_stats *);

/*
 * Encode ev as one JSON object into a malloc'd NUL-terminated string of at
 * most AUDIT_RECORD_MAX bytes (pure; NULL only when out of memory).
 */
char *audit_encode(const struct audit_event *ev);

/* One encoding with string values cut at value_max JSON bytes (no size check). */
char *audit_encode_limit(const struct audit_event *ev, size_t value_max);

#endif
