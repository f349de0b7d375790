/*
 * syslog — audit records to the local syslog socket, never blocking, never
 * lost silently.
 *
 * audit_emit() is called by every worker thread from its event loop.  It
 * encodes and frames the record in the caller's thread, then, if nothing is
 * waiting before it, hands it to the kernel with a non-blocking sendmmsg() on
 * a connected AF_UNIX datagram socket.  A worker batches (audit_batch_start):
 * its records wait in the thread until its loop turn ends and leave together
 * in one call, so a busy worker pays one system call, and the reader one
 * wake-up, for many records.  When the socket is missing (syslog not
 * started, restarted), refusing, or full (the reader is slower than we are:
 * a unix datagram receiver holds only net.unix.max_dgram_qlen messages), the
 * record goes to a bounded FIFO instead, and from then on every new record
 * queues behind it so the order holds.  One small delivery thread is the only
 * thing here that ever waits: it reconnects every AUDIT_RETRY_MS, waits for
 * the socket to become writable with poll(), and drains the queue in order.
 *
 * The difficulty is accounting and order.  What does not fit the queue is
 * counted, and when delivery resumes the first message is an "audit_loss"
 * record with the exact count since the previous one (under a sustained
 * overload, at most one every AUDIT_RETRY_MS), so the SIEM sees a gap as a
 * gap and the "lost" fields add up to every record that never arrived.  Only
 * the delivery thread removes from the queue or reconnects; a queued record
 * stays at the head while the thread sends it outside the lock, so a worker
 * never sees an empty queue and overtakes it.  A worker sends directly only
 * when the queue is empty and no loss is pending, under the lock, so two
 * workers' records and the thread's never interleave out of order either.
 *
 * The datagram socket cannot acknowledge anything: a record the kernel took
 * may still be in the reader's queue when the reader exits, and the kernel
 * frees it without a word.  unread.c keeps what was sent since the last
 * proof that the reader had taken it; when the reader goes away, those are
 * counted as possibly lost in the next audit_loss record (so sent - possibly
 * lost <= delivered <= sent).
 *
 * Over RELP (audit_relp) workers never send: every record is queued and the
 * thread sends it through librelp (relp.c).  A sent record stays at the head
 * of the queue until it is known acknowledged (librelp's window: all but the
 * newest RELP_WINDOW sent are); `cursor` marks the first one not sent yet.
 * When the session breaks, the cursor goes back to the head: the records not
 * known acknowledged are sent again on the next session (counted as resent:
 * the receiver may already have some, a consumer drops them by id).  The
 * queue bound counts them too, so memory stays bounded the same way.
 *
 * Framing is RFC 3164 as /dev/log readers (rsyslog imuxsock, journald)
 * expect: "<PRI>Mmm dd hh:mm:ss TAG[PID]: {json}", PRI = facility * 8 + 6
 * (info), local time, no trailing newline.  Over RELP the receiver parses a
 * network message, so the hostname goes before the tag.
 */
#include "audit/audit.h"
#include "audit/relp.h"
#include "audit/unread.h"
#include "lib/clock.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How often the thread retries a missing socket, and how long a full one may stay full
 * before audit_available() turns false. */
#define AUDIT_RETRY_MS          100
/* How long audit_close() keeps delivering what is queued. */
#define AUDIT_CLOSE_MS          1000
/* Longest message: header (<= 64 bytes) plus AUDIT_RECORD_MAX, below 8 KiB. */
#define AUDIT_MSG_MAX           8000
#define AUDIT_TAG_MAX           32
/* Outage lines: a new "stopped" line at most this often (a flapping socket
 * folds into the next line), and a reminder while it stays down. */
#define AUDIT_LOG_GAP_MS        10000
#define AUDIT_LOG_REMIND_MS     60000

#define SYSLOG_SEVERITY_INFO    6
/* How often the thread proves datagrams read while some are pending. */
#define AUDIT_UNREAD_MS         5

/* One framed message waiting for delivery. */
struct audit_msg {
	struct audit_msg *next;
	size_t len;
	char buf[];
};

/* The transport: one per process, like the syslog socket itself. */
static struct {
	unsigned generation;          /* audit_open()s so far: what a cached header was made for */
	pthread_mutex_t mtx;            /* everything below but the atomics */
	pthread_cond_t wake;            /* the thread: work queued, or stop */
	pthread_t thread;
	bool stopping;
	struct sockaddr_un sun;
	char dest[300];                 /* where records go, for the log */
	int facility;
	char tag[AUDIT_TAG_MAX + 1];
	char host[65];                  /* RELP: the hostname field */
	long pid;
	bool mirror_stderr;

	int fd;                         /* connected socket, or -1; only the thread changes it */
	bool broken;                    /* a send said the peer is gone: reconnect */
	struct audit_msg *head, *tail;
	size_t qlen, qbytes;

	/* datagram: what the reader may not have read yet (unread.c) */
	struct unread *ur;
	int64_t unread_sampled_ms;
	bool long_sleep;                /* the thread sleeps with nothing pending */
	uint64_t lost_unread;           /* of lost: possibly lost, not overflow */
	uint64_t possibly_lost_total;

	/* RELP */
	bool relp;
	struct relp_link *rl;
	bool relp_up;                   /* a session is open */
	char relp_err[200];
	struct audit_msg *cursor;       /* first record not sent yet, NULL = none */
	struct audit_msg *last_sent;    /* newest sent, not known acknowledged */
	size_t unacked;                 /* records from head up to last_sent */
	uint64_t acked, resent;

	uint64_t sent, queued_total, lost, lost_total, loss_records, reconnects;
	uint64_t loss_seq;
	int64_t loss_sent_ms;           /* when the last audit_loss record went out */
	int last_error;

	/* the outage being reported on the operational log (thread only) */
	void (*log)(const char *line);
	bool deny_on_failure;
	bool down;                      /* delivery is stopped now */
	bool down_logged;               /* ... and its start was logged */
	int64_t down_since_ms;
	int64_t last_log_ms;            /* last outage line, 0 = none yet */
	uint64_t down_lost_base;        /* lost_total when the outage began */
	uint64_t down_refused_base;     /* refused count when the outage began */
} a = {
	.mtx = PTHREAD_MUTEX_INITIALIZER,
	.fd = -1,
};

/* Read without the lock: audit_available() on every new request, and
 * audit_emit() (open is set after, and cleared before, the rest changes). */
static atomic_bool a_available;
static atomic_bool a_open;
static atomic_uint_fast64_t a_refused;  /* requests refused for audit_on_failure deny */

/* Serializes mirror lines so records from several workers never interleave. */
static pthread_mutex_t stderr_mtx = PTHREAD_MUTEX_INITIALIZER;

static void *audit_thread(void *);
static void audit_hostname(void);
static const char *audit_error_text(void);
static void audit_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Errors after which the socket must be reopened, not just retried. */
static bool
err_is_disconnect(int e)
{
	return e == ECONNREFUSED || e == ENOTCONN || e == ENOENT || e == EPIPE ||
	    e == EDESTADDRREQ || e == ECONNRESET || e == EBADF;
}

/* Write "audit {json}\n" to stderr in one write(2). */
static void
audit_mirror(const char *json, size_t len)
{
	char *line;

	if ((line = malloc(len + 8)) == NULL)
		return;
	memcpy(line, "audit ", 6);
	memcpy(line + 6, json, len);
	line[len + 6] = '\n';
	pthread_mutex_lock(&stderr_mtx);
	(void)!write(STDERR_FILENO, line, len + 7);
	pthread_mutex_unlock(&stderr_mtx);
	free(line);
}

/* The last header made, per thread (see audit_header). */
static __thread struct {
	time_t sec;
	unsigned generation;
	int len;
	char buf[160];
} hdr_cache = { -1, 0, 0, "" };

/* This thread's batch (audit_batch_start): framed records not yet handed on. */
static __thread struct {
	bool on;
	void (*wake)(void *);           /* called when the first record waits */
	void *arg;
	size_t n;
	struct audit_msg *m[AUDIT_BATCH_MAX];
} batch;

/*
 * The RFC 3164 header for now into buf: "<PRI>Mmm dd hh:mm:ss TAG[PID]: ".
 * The day is space-padded ("Jan  5") as the RFC and every reader expect; the
 * month is English whatever the locale.
 */
static int
audit_header(char *buf, size_t size)
{
	static const char months[12][4] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
	};
	struct tm tm;
	time_t now;

	now = time(NULL);
	/* The same for a whole second (and one audit_open): made once per
	 * second per thread, since localtime_r and snprintf cost more than the
	 * rest of framing a record. */
	if (now != hdr_cache.sec || hdr_cache.generation != a.generation) {
		localtime_r(&now, &tm);
		hdr_cache.len = snprintf(hdr_cache.buf, sizeof(hdr_cache.buf),
		    "<%d>%s %2d %02d:%02d:%02d %s%s%s[%ld]: ",
		    a.facility * 8 + SYSLOG_SEVERITY_INFO, months[tm.tm_mon], tm.tm_mday,
		    tm.tm_hour, tm.tm_min, tm.tm_sec, a.relp ? a.host : "", a.relp ? " " : "",
		    a.tag, a.pid);
		if (hdr_cache.len < 0 || (size_t)hdr_cache.len >= sizeof(hdr_cache.buf))
			return -1;
		hdr_cache.sec = now;
		hdr_cache.generation = a.generation;
	}
	if ((size_t)hdr_cache.len >= size)
		return -1;
	memcpy(buf, hdr_cache.buf, (size_t)hdr_cache.len + 1);
	return hdr_cache.len;
}

/* json framed as one syslog message; NULL when out of memory. */
static struct audit_msg *
audit_frame(const char *json, size_t len)
{
	struct audit_msg *m;
	char hdr[160];
	int hlen;

	hlen = audit_header(hdr, sizeof(hdr));
	if (hlen < 0 || (size_t)hlen >= sizeof(hdr))
		return NULL;
	if ((m = malloc(sizeof(*m) + (size_t)hlen + len)) == NULL)
		return NULL;
	m->next = NULL;
	m->len = (size_t)hlen + len;
	memcpy(m->buf, hdr, (size_t)hlen);
	memcpy(m->buf + hlen, json, len);
	return m;
}

/* Count one lost record; the thread will report it.  Called locked. */
static void
audit_lose_locked(uint64_t n)
{
	a.lost += n;
	a.lost_total += n;
	atomic_store(&a_available, false);
	pthread_cond_signal(&a.wake);
}

/* Append m to the queue, or count it lost when the queue is full.  Called locked. */
static void
audit_enqueue_locked(struct audit_msg *m)
{
	if (a.qlen >= AUDIT_QUEUE_RECORDS || a.qbytes + m->len > AUDIT_QUEUE_BYTES) {
		free(m);
		audit_lose_locked(1);
		return;
	}
	if (a.tail == NULL)
		a.head = m;
	else
		a.tail->next = m;
	a.tail = m;
	a.qlen++;
	a.qbytes += m->len;
	a.queued_total++;
	if (a.relp && a.cursor == NULL)
		a.cursor = m;
	pthread_cond_signal(&a.wake);
}

/* Records may go straight to the socket: nothing waits before them.  Called locked. */
static bool
audit_direct_locked(void)
{
	return !a.relp && a.head == NULL && a.lost == 0 && a.fd != -1 && !a.broken;
}

/* The kernel took a message of len bytes.  Called locked. */
static void
audit_count_sent_locked(size_t len)
{
	a.sent++;
	if (a.ur != NULL)
		unread_sent(a.ur, len);
}

/*
 * Hand m[0..n) on, in order: as many as the socket takes go straight to it
 * (one sendmmsg), the rest to the queue behind which every later record
 * waits.  Called locked; the queue owns what it took, the caller frees the
 * first of the returned count (sent, or lost and counted).
 */
static size_t
audit_deliver_locked(struct audit_msg **m, size_t n)
{
	struct mmsghdr mm[AUDIT_BATCH_MAX];
	struct iovec iov[AUDIT_BATCH_MAX];
	size_t done = 0, i;
	int r;

	memset(mm, 0, sizeof(mm[0]) * n);
	for (i = 0; i < n; i++) {
		iov[i].iov_base = m[i]->buf;
		iov[i].iov_len = m[i]->len;
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
	}
	while (done < n && audit_direct_locked()) {
		r = sendmmsg(a.fd, mm + done, (unsigned)(n - done), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r > 0) {
			for (i = done; i < done + (size_t)r; i++)
				audit_count_sent_locked(m[i]->len);
			done += (size_t)r;
			continue;
		}
		a.last_error = r == -1 ? errno : EMSGSIZE;
		if (err_is_disconnect(a.last_error)) {
			a.broken = true;
			atomic_store(&a_available, false);
		} else if (a.last_error == EMSGSIZE) {
			/* Cannot happen with AUDIT_MSG_MAX; never retry it forever. */
			audit_lose_locked(1);
			done++;
			continue;
		}
		/* EAGAIN, ENOBUFS and the rest: the thread retries in order. */
		break;
	}
	/* The thread proves soon that the reader read, not after its long sleep. */
	if (done > 0 && a.ur != NULL && a.long_sleep) {
		a.long_sleep = false;
		pthread_cond_signal(&a.wake);
	}
	for (i = done; i < n; i++)
		audit_enqueue_locked(m[i]);
	return done;
}

/* Deliver m[0..n) and free what the queue did not take. */
static void
audit_deliver(struct audit_msg **m, size_t n)
{
	size_t done, i;

	pthread_mutex_lock(&a.mtx);
	done = audit_deliver_locked(m, n);
	pthread_mutex_unlock(&a.mtx);
	for (i = 0; i < done; i++)
		free(m[i]);
}

/* A record could not be made (out of memory): count it lost, after what this
 * thread emitted before it. */
static void
audit_lose_one(void)
{
	audit_batch_flush();
	pthread_mutex_lock(&a.mtx);
	audit_lose_locked(1);
	pthread_mutex_unlock(&a.mtx);
}

void
audit_emit(const struct audit_event *ev)
{
	struct audit_msg *m;
	char *json;
	size_t len;

	if ((json = audit_encode(ev)) == NULL) {
		audit_lose_one();
		return;
	}
	len = strlen(json);
	/* Before audit_open() (or after audit_close()) stderr is the only place. */
	if (!atomic_load(&a_open)) {
		audit_mirror(json, len);
		free(json);
		return;
	}
	if (a.mirror_stderr)
		audit_mirror(json, len);
	m = audit_frame(json, len);
	free(json);

	if (m == NULL) {
		audit_lose_one();
		return;
	}
	if (!batch.on) {
		audit_deliver(&m, 1);
		return;
	}
	batch.m[batch.n++] = m;
	if (batch.n == 1)
		batch.wake(batch.arg);
	if (batch.n == AUDIT_BATCH_MAX)
		audit_batch_flush();
}

void
audit_batch_start(void (*wake)(void *), void *arg)
{
	batch.on = true;
	batch.wake = wake;
	batch.arg = arg;
	batch.n = 0;
}

void
audit_batch_flush(void)
{
	size_t n = batch.n;

	if (n == 0)
		return;
	batch.n = 0;
	audit_deliver(batch.m, n);
}

void
audit_batch_stop(void)
{
	audit_batch_flush();
	batch.on = false;
}

bool
audit_available(void)
{
	return atomic_load(&a_available);
}

void
audit_note_refused(void)
{
	atomic_fetch_add_explicit(&a_refused, 1, memory_order_relaxed);
}

void
audit_stats(struct audit_stats *st)
{
	pthread_mutex_lock(&a.mtx);
	st->relp = a.relp;
	st->sent = a.sent;
	st->acked = a.acked;
	st->unacked = a.unacked;
	st->resent = a.resent;
	st->possibly_lost_total = a.possibly_lost_total;
	st->unproven = a.ur != NULL ? unread_pending(a.ur) : 0;
	st->queued = a.qlen;
	st->queued_bytes = a.qbytes;
	st->queued_total = a.queued_total;
	st->lost = a.lost;
	st->lost_total = a.lost_total;
	st->loss_records = a.loss_records;
	st->reconnects = a.reconnects;
	st->connected = a.relp ? a.relp_up : a.fd != -1 && !a.broken;
	st->available = atomic_load(&a_available);
	st->last_error = a.last_error;
	pthread_mutex_unlock(&a.mtx);
}

/* A new non-blocking socket connected to the syslog socket, or -1 with errno. */
static int
audit_connect(void)
{
	int fd, e;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&a.sun, sizeof(a.sun)) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
audit_open(const struct audit_config *cfg)
{
	pthread_condattr_t ca;
	const char *tag;
	int fd;

	if (atomic_load(&a_open))
		return -1;
	a.generation++;                 /* cached headers (audit_header) are stale */
	a.relp = cfg->relp_host != NULL;
	if (!a.relp && (cfg->socket_path == NULL ||
	    strlen(cfg->socket_path) >= sizeof(a.sun.sun_path)))
		return -1;
	memset(&a.sun, 0, sizeof(a.sun));
	if (!a.relp) {
		a.sun.sun_family = AF_UNIX;
		memcpy(a.sun.sun_path, cfg->socket_path, strlen(cfg->socket_path));
		snprintf(a.dest, sizeof(a.dest), "%s", cfg->socket_path);
		if (a.ur == NULL)
			a.ur = unread_new();
	} else {
		snprintf(a.dest, sizeof(a.dest), strchr(cfg->relp_host, ':') != NULL ?
		    "RELP [%s]:%d" : "RELP %s:%d", cfg->relp_host, cfg->relp_port);
		audit_hostname();
		if ((a.rl = relp_link_new(cfg->relp_host, cfg->relp_port)) == NULL)
			return -1;
	}
	a.relp_up = false;
	a.relp_err[0] = '\0';
	a.cursor = a.last_sent = NULL;
	a.unacked = 0;
	a.acked = a.resent = 0;
	a.lost_unread = a.possibly_lost_total = 0;
	a.unread_sampled_ms = 0;
	a.facility = cfg->facility >= 0 && cfg->facility < 24 ? cfg->facility : 1;
	tag = cfg->tag != NULL && cfg->tag[0] != '\0' ? cfg->tag : "egressd";
	snprintf(a.tag, sizeof(a.tag), "%s", tag);
	a.pid = (long)getpid();
	a.mirror_stderr = cfg->mirror_stderr;
	a.log = cfg->log;
	a.deny_on_failure = cfg->deny_on_failure;
	a.down = a.down_logged = false;
	a.last_log_ms = 0;
	a.stopping = false;
	a.broken = false;
	a.sent = a.queued_total = a.lost = a.lost_total = a.loss_records = 0;
	a.reconnects = 0;
	a.loss_sent_ms = 0;
	a.last_error = 0;

	/* The thread's retry timer must not jump with the wall clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a.wake, &ca);
	pthread_condattr_destroy(&ca);

	/* Try once now so the "start" record goes straight out when syslog is up.
	 * (RELP connects in the thread: librelp may take seconds.) */
	if (a.relp) {
		fd = -1;
		atomic_store(&a_available, true);
	} else if ((fd = audit_connect()) == -1) {
		a.last_error = errno;
		atomic_store(&a_available, false);
	} else {
		a.reconnects++;
		atomic_store(&a_available, true);
		if (a.ur != NULL)
			unread_connected(a.ur, fd);
	}
	a.fd = fd;
	if (pthread_create(&a.thread, NULL, audit_thread, NULL) != 0) {
		if (a.fd != -1)
			close(a.fd);
		a.fd = -1;
		relp_link_free(a.rl);
		a.rl = NULL;
		pthread_cond_destroy(&a.wake);
		return -1;
	}
	atomic_store(&a_open, true);
	return 0;
}

void
audit_close(void)
{
	struct audit_msg *m;
	size_t left, unacked;

	if (!atomic_load(&a_open))
		return;
	/* Records emitted from now on go to stderr: nothing may queue behind the
	 * thread once it has gone. */
	atomic_store(&a_open, false);
	pthread_mutex_lock(&a.mtx);
	a.stopping = true;
	pthread_cond_signal(&a.wake);
	pthread_mutex_unlock(&a.mtx);
	pthread_join(a.thread, NULL);

	/* RELP: a polite close; librelp waits (bounded) for the last answers. */
	unacked = a.unacked;
	relp_link_free(a.rl);
	a.rl = NULL;
	a.relp_up = false;

	pthread_mutex_lock(&a.mtx);
	/* What could not be delivered in time is lost; say so in the counters
	 * and, since no audit_loss record can carry it any more, in the log.
	 * RELP records sent but not known acknowledged are not counted lost:
	 * the receiver had them in its window and answered the close. */
	left = a.qlen - unacked;
	while ((m = a.head) != NULL) {
		a.head = m->next;
		free(m);
	}
	a.lost_total += left;
	if (left > 0 || a.lost > 0)
		audit_log("audit: %zu records still queued at exit could not be delivered to %s, "
		    "and %llu lost records were never reported in an audit_loss record (%s)",
		    left, a.dest, (unsigned long long)a.lost, audit_error_text());
	if (unacked > 0)
		audit_log("audit: %zu records sent to %s at exit were not acknowledged yet "
		    "(the session was closed after them)", unacked, a.dest);
	a.cursor = a.last_sent = NULL;
	a.unacked = 0;
	a.tail = NULL;
	a.qlen = a.qbytes = 0;
	if (a.fd != -1)
		close(a.fd);
	a.fd = -1;
	atomic_store(&a_available, false);
	pthread_mutex_unlock(&a.mtx);
	pthread_cond_destroy(&a.wake);
	unread_free(a.ur);
	a.ur = NULL;
}

/* ---- the delivery thread --------------------------------------------- */

/* One operational line through the configured callback. */
static void
audit_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (a.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	a.log(line);
}

static const char *
audit_error_text(void)
{
	if (a.relp)
		return a.relp_err[0] != '\0' ? a.relp_err : "no RELP session yet";
	if (a.last_error == EAGAIN || a.last_error == EWOULDBLOCK || a.last_error == ENOBUFS)
		return "the reader takes nothing (socket full)";
	return a.last_error != 0 ? strerror(a.last_error) : "unknown error";
}

/*
 * Say on the operational log when delivery stops and when it resumes, with
 * what was lost (and refused, under audit_on_failure deny) meanwhile.  Called
 * locked by the thread on every turn; cheap when nothing changed.  A socket
 * that flaps gets one "stopped" line per AUDIT_LOG_GAP_MS: a short outage in
 * between is only reported if something was lost or refused in it.
 */
static void
audit_track_outage_locked(void)
{
	bool up = atomic_load(&a_available);
	int64_t now = clock_mono_ms();
	uint64_t lost, refused;

	if (!up && !a.down) {
		a.down = true;
		a.down_logged = false;
		a.down_since_ms = now;
		a.down_lost_base = a.lost_total;
		a.down_refused_base = atomic_load(&a_refused);
	}
	if (!a.down)
		return;
	lost = a.lost_total - a.down_lost_base;
	refused = atomic_load(&a_refused) - a.down_refused_base;
	if (!up && !a.down_logged && (a.last_log_ms == 0 ||
	    now - a.last_log_ms >= AUDIT_LOG_GAP_MS)) {
		audit_log("audit: records cannot be delivered to %s: %s; %s (%zu queued)",
		    a.dest, audit_error_text(), a.deny_on_failure ?
		    "audit_on_failure deny: new tunnels and requests are refused with 503" :
		    "queueing, still serving", a.qlen);
		a.down_logged = true;
		a.last_log_ms = now;
	} else if (!up && a.down_logged && now - a.last_log_ms >= AUDIT_LOG_REMIND_MS) {
		audit_log("audit: still cannot deliver to %s after %lld s: %s; %llu records lost, "
		    "%llu refused so far, %zu queued", a.dest,
		    (long long)((now - a.down_since_ms) / 1000), audit_error_text(),
		    (unsigned long long)lost, (unsigned long long)refused, a.qlen);
		a.last_log_ms = now;
	} else if (up) {
		if (a.down_logged || lost > 0 || refused > 0) {
			audit_log("audit: delivery to %s resumed after %.1f s; %llu records lost and "
			    "%llu tunnels/requests refused meanwhile", a.dest,
			    (double)(now - a.down_since_ms) / 1000.0, (unsigned long long)lost,
			    (unsigned long long)refused);
			a.last_log_ms = now;
		}
		a.down = false;
	}
}

/* Sleep on the condition variable for at most ms.  Called locked. */
static void
audit_wait_locked(int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)ms * 1000000;
	ts.tv_sec += ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_cond_timedwait(&a.wake, &a.mtx, &ts);
}
/* The audit_loss record for n lost records (unread of them possibly lost:
 * sent, but unread when the reader went away), framed; NULL when out of memory. */
static struct audit_msg *
audit_loss_msg(uint64_t n, uint64_t unread, uint64_t seq)
{
	struct audit_event ev;
	struct audit_msg *m;
	char id[48], msg[200], *json;

	memset(&ev, 0, sizeof(ev));
	snprintf(id, sizeof(id), "audit_loss-%ld-%llu", a.pid, (unsigned long long)seq);
	ev.event = "audit_loss";
	ev.id = id;
	ev.client_port = -1;
	ev.port = -1;
	ev.status = -1;
	ev.bytes_up = ev.bytes_down = ev.duration_ms = -1;
	ev.lost = (int64_t)n;
	if (unread > 0) {
		snprintf(msg, sizeof(msg), "%llu dropped (queue full), %llu possibly lost (sent, "
		    "but not yet read by the syslog daemon when it went away)",
		    (unsigned long long)(n - unread), (unsigned long long)unread);
		ev.message = msg;
	}
	if ((json = audit_encode(&ev)) == NULL)
		return NULL;
	m = audit_frame(json, strlen(json));
	free(json);
	return m;
}

/* The counts one audit_loss record carries, as they were when it was built. */
struct audit_loss {
	uint64_t n, unread;
};

/*
 * Whether a loss record goes next (next: the first record not sent yet).
 * The loss comes first when delivery resumes.  Under a sustained overload
 * (queue full, a slot frees, overflow again) one record per AUDIT_RETRY_MS
 * carries the sum, rather than one every few records.  Called locked.
 */
static bool
audit_loss_due_locked(const struct audit_msg *next)
{
	return a.lost > 0 && (next == NULL ||
	    clock_mono_ms() - a.loss_sent_ms >= AUDIT_RETRY_MS);
}

/*
 * The audit_loss record for what is lost so far, its counts in *l.  It is
 * built outside the lock, so workers may lose more meanwhile: the counts come
 * off only in audit_loss_done_locked(), once the record is on its way, and
 * what was lost since goes in the next one.  Called locked, returns locked;
 * NULL when out of memory, after waiting AUDIT_RETRY_MS.
 */
static struct audit_msg *
audit_loss_take_locked(struct audit_loss *l)
{
	struct audit_msg *m;
	uint64_t seq;

	l->n = a.lost;
	l->unread = a.lost_unread;
	seq = ++a.loss_seq;
	pthread_mutex_unlock(&a.mtx);
	m = audit_loss_msg(l->n, l->unread, seq);
	pthread_mutex_lock(&a.mtx);
	if (m == NULL)
		audit_wait_locked(AUDIT_RETRY_MS);
	return m;
}

/* The record for l was sent (datagram) or queued to be (RELP).  Called locked. */
static void
audit_loss_done_locked(const struct audit_loss *l)
{
	a.lost -= l->n;
	a.lost_unread -= l->unread;
	a.loss_records++;
	a.loss_sent_ms = clock_mono_ms();
}

/* The reader of the datagram socket went away: what it had not read is
 * possibly lost.  Called locked, before the socket is closed. */
static void
audit_reader_gone_locked(void)
{
	uint64_t n;

	if (a.ur == NULL || (n = unread_gone(a.ur)) == 0)
		return;
	a.lost_unread += n;
	a.possibly_lost_total += n;
	audit_lose_locked(n);
}

/*
 * Reopen the socket if it is down.  Called locked; returns with the socket
 * connected, or false after having waited AUDIT_RETRY_MS (or been woken).
 */
static bool
audit_reconnect_locked(void)
{
	int fd;

	if (a.fd != -1 && !a.broken)
		return true;
	if (a.fd != -1) {
		audit_reader_gone_locked();
		close(a.fd);
	}
	a.fd = -1;
	a.broken = false;
	if ((fd = audit_connect()) == -1) {
		a.last_error = errno;
		atomic_store(&a_available, false);
		audit_wait_locked(AUDIT_RETRY_MS);
		return false;
	}
	a.fd = fd;
	a.reconnects++;
	if (a.ur != NULL)
		unread_connected(a.ur, fd);
	return true;
}

/*
 * The socket said "full": wait until it is writable, for at most
 * AUDIT_RETRY_MS.  A reader that takes nothing for that long makes the
 * audit unavailable; one that drains, however slowly, does not.
 */
static void
audit_wait_writable_locked(int fd)
{
	struct pollfd pfd;
	int r;

	pfd.fd = fd;
	pfd.events = POLLOUT;
	pfd.revents = 0;
	pthread_mutex_unlock(&a.mtx);
	r = poll(&pfd, 1, AUDIT_RETRY_MS);
	pthread_mutex_lock(&a.mtx);
	if (r == 0)
		atomic_store(&a_available, false);
	else if (r == 1 && (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0)
		a.broken = true;
}

/*
 * Send m (the head of the queue, or a loss record) outside the lock.  Called
 * locked, returns locked: true when it was sent.
 */
static bool
audit_send_locked(const struct audit_msg *m)
{
	ssize_t r;
	int fd = a.fd, e;

	pthread_mutex_unlock(&a.mtx);
	r = send(fd, m->buf, m->len, MSG_DONTWAIT | MSG_NOSIGNAL);
	e = errno;
	pthread_mutex_lock(&a.mtx);
	if (r == (ssize_t)m->len) {
		audit_count_sent_locked(m->len);
		return true;
	}
	a.last_error = r == -1 ? e : EMSGSIZE;
	if (err_is_disconnect(a.last_error)) {
		a.broken = true;
		atomic_store(&a_available, false);
	} else if (a.last_error == EAGAIN || a.last_error == EWOULDBLOCK ||
	    a.last_error == ENOBUFS) {
		audit_wait_writable_locked(fd);
	} else {
		/* Unexpected (EACCES after a permission change...): retry later. */
		atomic_store(&a_available, false);
		audit_wait_locked(AUDIT_RETRY_MS);
	}
	return false;
}

/* Remove the head of the queue (delivered).  Called locked. */
static void
audit_pop_locked(void)
{
	struct audit_msg *m = a.head;

	a.head = m->next;
	if (a.head == NULL)
		a.tail = NULL;
	a.qlen--;
	a.qbytes -= m->len;
	free(m);
}

/* Prove datagrams read, at most every AUDIT_UNREAD_MS.  Called locked. */
static void
audit_sample_unread_locked(void)
{
	int64_t now;

	if (a.ur == NULL || a.fd == -1 || a.broken || unread_pending(a.ur) == 0)
		return;
	now = clock_mono_ms();
	if (now - a.unread_sampled_ms < AUDIT_UNREAD_MS)
		return;
	a.unread_sampled_ms = now;
	unread_sample(a.ur, a.fd);
}

/* The hostname field of RELP messages: the first label, as RFC 3164 wants,
 * of printable characters only. */
static void
audit_hostname(void)
{
	char h[256];
	size_t i;

	if (gethostname(h, sizeof(h)) != 0)
		h[0] = '\0';
	h[sizeof(h) - 1] = '\0';
	for (i = 0; h[i] != '\0' && h[i] != '.' && i < sizeof(a.host) - 1; i++)
		a.host[i] = h[i] > ' ' && h[i] < 0x7f ? h[i] : '-';
	a.host[i] = '\0';
	if (i == 0)
		snprintf(a.host, sizeof(a.host), "localhost");
}

/* ---- RELP -------------------------------------------------------------- */

/* Open a session if there is none.  Called locked; librelp runs unlocked. */
static bool
relp_reconnect_locked(void)
{
	char err[sizeof(a.relp_err)];
	int r;

	if (a.relp_up)
		return true;
	pthread_mutex_unlock(&a.mtx);
	r = relp_link_connect(a.rl, err, sizeof(err));
	pthread_mutex_lock(&a.mtx);
	if (r == -1) {
		snprintf(a.relp_err, sizeof(a.relp_err), "%s", err);
		a.last_error = ECONNREFUSED;
		atomic_store(&a_available, false);
		audit_wait_locked(AUDIT_RETRY_MS);
		return false;
	}
	a.relp_up = true;
	a.reconnects++;
	return true;
}

/* The session broke: what was not known acknowledged goes again.  Locked. */
static void
relp_broken_locked(const char *err)
{
	snprintf(a.relp_err, sizeof(a.relp_err), "%s", err);
	a.last_error = ECONNRESET;
	a.relp_up = false;
	a.resent += a.unacked;
	a.unacked = 0;
	a.last_sent = NULL;
	a.cursor = a.head;
	atomic_store(&a_available, false);
	pthread_mutex_unlock(&a.mtx);
	relp_link_drop(a.rl);
	pthread_mutex_lock(&a.mtx);
}

/* Put m (a loss record) before the first unsent record.  Called locked. */
static void
relp_insert_locked(struct audit_msg *m)
{
	if (a.last_sent == NULL) {
		m->next = a.head;
		a.head = m;
	} else {
		m->next = a.last_sent->next;
		a.last_sent->next = m;
	}
	if (m->next == NULL)
		a.tail = m;
	a.cursor = m;
	a.qlen++;
	a.qbytes += m->len;
}

/*
 * One turn of the RELP thread: report losses (as a queued record, so it is
 * held until acknowledged like the rest), send the next record, forget the
 * ones the window proves acknowledged.  Called locked.
 */
static void
relp_turn_locked(void)
{
	struct audit_msg *m, *loss;
	struct audit_loss l;
	char err[sizeof(a.relp_err)];
	int r;

	if (!relp_reconnect_locked())
		return;
	if (audit_loss_due_locked(a.cursor)) {
		if ((loss = audit_loss_take_locked(&l)) == NULL)
			return;
		relp_insert_locked(loss);
		audit_loss_done_locked(&l);
	}
	if ((m = a.cursor) == NULL) {
		atomic_store(&a_available, true);
		if (!a.stopping)
			audit_wait_locked(1000);
		return;
	}
	/* Only this thread frees queued records: m stays valid unlocked. */
	pthread_mutex_unlock(&a.mtx);
	r = relp_link_send(a.rl, m->buf, m->len, err, sizeof(err));
	pthread_mutex_lock(&a.mtx);
	if (r == -1) {
		relp_broken_locked(err);
		return;
	}
	a.sent++;
	a.last_sent = m;
	a.cursor = m->next;
	a.unacked++;
	while (a.unacked > RELP_WINDOW) {
		audit_pop_locked();
		a.unacked--;
		a.acked++;
	}
	atomic_store(&a_available, true);
}

/*
 * Reconnect, report losses, drain the queue in order; sleep when there is
 * nothing to do.  On stop, keep delivering for up to AUDIT_CLOSE_MS.
 */
static void *
audit_thread(void *arg)
{
	struct audit_msg *loss;
	struct audit_loss l;
	int64_t deadline = 0;

	pthread_mutex_lock(&a.mtx);
	for (;;) {
		audit_track_outage_locked();
		if (a.stopping) {
			if (deadline == 0)
				deadline = clock_mono_ms() + AUDIT_CLOSE_MS;
			if ((a.relp ? a.cursor == NULL : a.head == NULL) && a.lost == 0)
				break;
			if (clock_mono_ms() >= deadline)
				break;
		}
		if (a.relp) {
			relp_turn_locked();
			continue;
		}
		if (!audit_reconnect_locked())
			continue;
		audit_sample_unread_locked();
		if (audit_loss_due_locked(a.head)) {
			if ((loss = audit_loss_take_locked(&l)) == NULL)
				continue;
			if (audit_send_locked(loss)) {
				audit_loss_done_locked(&l);
				atomic_store(&a_available, true);
			}
			free(loss);
			continue;
		}
		if (a.head != NULL) {
			if (audit_send_locked(a.head)) {
				audit_pop_locked();
				atomic_store(&a_available, true);
			}
			continue;
		}
		/* Connected, nothing queued, nothing lost: wake to prove the
		 * last datagrams read while some are pending. */
		atomic_store(&a_available, true);
		if (!a.stopping) {
			a.long_sleep = a.ur == NULL || unread_pending(a.ur) == 0;
			audit_wait_locked(a.long_sleep ? 1000 : AUDIT_UNREAD_MS);
			a.long_sleep = false;
		}
	}
	pthread_mutex_unlock(&a.mtx);
	return arg;
}
