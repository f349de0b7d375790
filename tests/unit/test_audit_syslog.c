/*
 * test_audit_syslog — the syslog transport against a unix datagram socket
 * bound by the test in a mkdtemp directory: RFC 3164 framing, delivery in
 * order, the bounded queue while the socket is absent, refused or full, the
 * exact count in the audit_loss record sent first when delivery resumes,
 * audit_available() through all of it, and that audit_emit() never blocks.
 *
 * The transport is one per process, so every test opens and closes it.
 * Waiting is by polling audit_stats() with a deadline, never a fixed sleep
 * that a slow (sanitized, shared) machine could outrun.
 */
#include "audit/audit.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#define TAG "egressd-test"

static char dir[64];
static char path[96];

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_audit_syslog.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/log.sock", dir);
	return 0;
}

static int
teardown(void **state)
{
	unlink(path);
	rmdir(dir);
	return 0;
}

/* The syslog side: a datagram socket bound at path, reads time out after 3 s. */
static int
bind_log(int rcvbuf)
{
	struct sockaddr_un sun;
	struct timeval tv = { 3, 0 };
	int fd;

	unlink(path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd != -1);
	if (rcvbuf > 0)
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		    sizeof(rcvbuf)), 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	return fd;
}

static void
open_audit(int facility, bool mirror)
{
	struct audit_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.socket_path = path;
	cfg.facility = facility;
	cfg.tag = TAG;
	cfg.mirror_stderr = mirror;
	assert_int_equal(audit_open(&cfg), 0);
}

static void
emit(const char *id)
{
	struct audit_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.event = "request";
	ev.id = id;
	ev.client_ip = "192.0.2.1";
	ev.client_port = 40000;
	ev.method = "GET";
	ev.host = "example.com";
	ev.port = 80;
	ev.url = "http://example.com/";
	ev.decision = "allow";
	ev.reason = "ok";
	ev.status = 200;
	ev.bytes_up = 10;
	ev.bytes_down = 20;
	ev.duration_ms = 3;
	ev.close = "client";
	ev.lost = -1;
	audit_emit(&ev);
}

static void
emit_n(const char *prefix, int from, int to)
{
	char id[64];
	int i;

	for (i = from; i < to; i++) {
		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		emit(id);
	}
}

/* One message from fd into buf (NUL-terminated); its length. */
static size_t
recv_msg(int fd, char *buf, size_t size)
{
	ssize_t n;

	n = recv(fd, buf, size - 1, 0);
	if (n == -1)
		fail_msg("recv: %s (nothing delivered in time)", strerror(errno));
	buf[n] = '\0';
	return (size_t)n;
}

/* The JSON record of one message, parsed. */
static struct json_object *
recv_record(int fd)
{
	char buf[16384], *json;
	struct json_object *o;

	recv_msg(fd, buf, sizeof(buf));
	json = strstr(buf, "]: {");
	assert_non_null(json);
	o = json_tokener_parse(json + 3);
	if (o == NULL)
		fail_msg("not JSON: %s", buf);
	return o;
}

static const char *
field(struct json_object *o, const char *key)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, key, &v));
	return json_object_get_string(v);
}

/* Receive records prefix-from .. prefix-(to-1), in that order. */
static void
expect_in_order(int fd, const char *prefix, int from, int to)
{
	struct json_object *o;
	char id[64];
	int i;

	for (i = from; i < to; i++) {
		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		o = recv_record(fd);
		if (strcmp(field(o, "id"), id) != 0)
			fail_msg("expected %s, got %s", id, field(o, "id"));
		json_object_put(o);
	}
}

/* Nothing more arrives within ms. */
static void
expect_nothing(int fd, int ms)
{
	char buf[16];
	struct timeval tv = { 0, ms * 1000 }, back = { 3, 0 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(recv(fd, buf, sizeof(buf), 0), -1);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &back, sizeof(back));
}

enum what { SENT, QUEUED, AVAILABLE, UNAVAILABLE };

/* Wait up to 5 s for a condition on the counters. */
static void
wait_for(enum what w, uint64_t n)
{
	struct audit_stats st;
	int64_t deadline = now_ms() + 5000;
	bool ok;

	for (;;) {
		audit_stats(&st);
		ok = w == SENT ? st.sent >= n : w == QUEUED ? st.queued == n :
		    w == AVAILABLE ? audit_available() : !audit_available();
		if (ok)
			return;
		if (now_ms() > deadline)
			fail_msg("timed out waiting (%d, %llu): sent %llu queued %llu lost %llu",
			    (int)w, (unsigned long long)n, (unsigned long long)st.sent,
			    (unsigned long long)st.queued, (unsigned long long)st.lost);
		sleep_ms(5);
	}
}

/* The reader takes prefix-0 .. prefix-(n-1) in order; then the queue is empty,
 * all n were sent and none lost. */
static void
expect_all_delivered(int fd, const char *prefix, int n)
{
	struct audit_stats st;

	expect_in_order(fd, prefix, 0, n);
	wait_for(QUEUED, 0);
	audit_stats(&st);
	assert_int_equal(st.sent, n);
	assert_int_equal(st.lost_total, 0);
}

/* ---- tests ---------------------------------------------------------- */

static void
test_framing(void **state)
{
	static const struct {
		int facility;
		const char *pri;
	} cases[] = { { 21, "<174>" }, { 0, "<6>" }, { 23, "<190>" }, { 16, "<134>" } };
	char buf[16384], pattern[256];
	struct json_object *o;
	regex_t re;
	size_t i, n;
	int fd;

	snprintf(pattern, sizeof(pattern), "^<[0-9]{1,3}>(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|"
	    "Oct|Nov|Dec) [ 123][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] " TAG "\\[%ld\\]: \\{",
	    (long)getpid());
	assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	fd = bind_log(0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		open_audit(cases[i].facility, false);
		assert_true(audit_available());
		emit("framing-1");
		n = recv_msg(fd, buf, sizeof(buf));
		assert_memory_equal(buf, cases[i].pri, strlen(cases[i].pri));
		if (regexec(&re, buf, 0, NULL, 0) != 0)
			fail_msg("bad header: %.80s", buf);
		/* the message ends with the JSON: no newline, no NUL */
		assert_int_equal(buf[n - 1], '}');
		assert_int_equal(strlen(buf), n);
		o = json_tokener_parse(strchr(buf, '{'));
		assert_non_null(o);
		assert_string_equal(field(o, "id"), "framing-1");
		json_object_put(o);
		audit_close();
	}
	regfree(&re);
	close(fd);
}

static void
test_delivery_in_order(void **state)
{
	struct audit_stats st;
	int fd;

	fd = bind_log(0);
	open_audit(21, false);
	emit_n("d", 0, 8);              /* fewer than a datagram receive queue holds */
	expect_in_order(fd, "d", 0, 8);
	audit_stats(&st);
	assert_int_equal(st.sent, 8);
	assert_int_equal(st.queued_total, 0);
	assert_int_equal(st.lost_total, 0);
	assert_true(st.connected);
	assert_true(audit_available());
	audit_close();
	close(fd);
}

/* A record with every field huge still goes out as one message under 8 KiB. */
static void
test_big_record_fits(void **state)
{
	struct audit_event ev;
	char *big, buf[65536];
	size_t n;
	int fd;

	big = malloc(30001);
	assert_non_null(big);
	memset(big, '\x01', 30000);
	big[30000] = '\0';
	memset(&ev, 0, sizeof(ev));
	ev.event = "request";
	ev.id = ev.client_ip = ev.user = ev.method = ev.host = ev.url = ev.dst_ip = big;
	ev.sni = ev.decision = ev.reason = ev.rule = ev.close = ev.message = big;
	ev.client_port = ev.port = 1;
	ev.lost = -1;
	fd = bind_log(0);
	open_audit(21, false);
	audit_emit(&ev);
	n = recv_msg(fd, buf, sizeof(buf));
	assert_true(n < 8000);
	assert_non_null(strstr(buf, AUDIT_TRUNCATED_MARK));
	audit_close();
	close(fd);
	free(big);
}

/* The socket appears after the records: they wait, then arrive in order. */
static void
test_absent_then_bound(void **state)
{
	struct audit_stats st;
	int fd;

	unlink(path);
	open_audit(21, false);
	assert_false(audit_available());
	emit_n("q", 0, 50);
	audit_stats(&st);
	assert_int_equal(st.sent, 0);
	assert_int_equal(st.queued, 50);
	assert_int_equal(st.lost, 0);
	assert_false(st.connected);
	assert_int_equal(st.last_error, ENOENT);
	assert_false(audit_available());

	fd = bind_log(0);
	expect_in_order(fd, "q", 0, 50);        /* no audit_loss: nothing was lost */
	wait_for(QUEUED, 0);
	wait_for(AVAILABLE, 0);
	emit_n("after", 0, 3);
	expect_in_order(fd, "after", 0, 3);
	audit_stats(&st);
	assert_int_equal(st.sent, 53);
	assert_int_equal(st.queued_total, 50);
	assert_int_equal(st.loss_records, 0);
	audit_close();
	close(fd);
}

/* Overflow: the exact count, reported first when delivery resumes. */
static void
test_overflow_loss_record(void **state)
{
	struct audit_stats st;
	struct json_object *o, *v;
	const int extra = 37;
	int fd;

	unlink(path);
	open_audit(21, false);
	emit_n("o", 0, AUDIT_QUEUE_RECORDS + extra);
	audit_stats(&st);
	assert_int_equal(st.queued, AUDIT_QUEUE_RECORDS);
	assert_int_equal(st.lost, extra);
	assert_int_equal(st.lost_total, extra);
	assert_false(audit_available());

	fd = bind_log(0);
	o = recv_record(fd);
	assert_string_equal(field(o, "event"), "audit_loss");
	assert_true(json_object_object_get_ex(o, "lost", &v));
	assert_int_equal(json_object_get_int64(v), extra);
	assert_true(json_object_object_get_ex(o, "decision", &v));
	assert_null(v);
	assert_true(json_object_object_get_ex(o, "client_ip", &v));
	assert_null(v);
	json_object_put(o);
	/* then the queued ones, oldest first: the lost ones are the newest */
	expect_in_order(fd, "o", 0, AUDIT_QUEUE_RECORDS);
	wait_for(QUEUED, 0);
	wait_for(AVAILABLE, 0);

	/* the count starts again from zero: the next records carry no loss */
	emit_n("p", 0, 3);
	expect_in_order(fd, "p", 0, 3);
	audit_stats(&st);
	assert_int_equal(st.lost, 0);
	assert_int_equal(st.lost_total, extra);
	assert_int_equal(st.loss_records, 1);
	assert_int_equal(st.sent, AUDIT_QUEUE_RECORDS + 1 + 3);
	audit_close();
	close(fd);
}

/* A reader that reads nothing: emit never blocks, records queue, then drain. */
static void
test_full_socket_never_blocks(void **state)
{
	struct audit_stats st;
	int64_t t0, t, worst = 0;
	char id[32];
	int fd, i;
	const int n = 300;

	fd = bind_log(4096);
	open_audit(21, false);
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "f-%d", i);
		t0 = now_ms();
		emit(id);
		t = now_ms() - t0;
		if (t > worst)
			worst = t;
	}
	/* generous for a sanitized build on a busy machine; blocking would be forever */
	assert_true(worst < 200);
	audit_stats(&st);
	assert_true(st.sent < (uint64_t)n);
	assert_true(st.queued > 0);
	assert_int_equal(st.sent + st.queued, n);
	assert_int_equal(st.lost, 0);
	/* a reader that takes nothing for AUDIT_RETRY_MS makes the audit unavailable */
	wait_for(UNAVAILABLE, 0);

	expect_all_delivered(fd, "f", n);
	wait_for(AVAILABLE, 0);
	audit_close();
	close(fd);
}

/* syslog restarts: the old socket goes away, a new one is bound at the path. */
/* Wait (bounded) until the transport has proven every datagram read. */
static void
wait_unproven_zero(void)
{
	struct audit_stats st;
	int i;

	for (i = 0; i < 200; i++) {
		audit_stats(&st);
		if (st.unproven == 0)
			return;
		usleep(10000);
	}
	fail_msg("%llu datagrams read but never proven read", (unsigned long long)st.unproven);
}

/* The reader went away right after it had read 3 of 5 (before the thread
 * could prove them read): all 5 are counted possibly lost, never fewer. */
static void
test_reader_gone_counts_possibly_lost(void **state)
{
	struct audit_stats st;
	struct json_object *o, *v;
	int fd;

	fd = bind_log(0);
	open_audit(21, false);
	emit_n("g", 0, 2);
	expect_in_order(fd, "g", 0, 2);
	wait_unproven_zero();
	emit_n("g", 2, 7);              /* 5 in the reader's queue, unread */
	close(fd);                      /* the kernel frees them */
	unlink(path);
	fd = bind_log(0);
	emit_n("g", 7, 8);              /* finds the socket gone, reconnects */
	o = recv_record(fd);
	assert_string_equal(field(o, "event"), "audit_loss");
	assert_true(json_object_object_get_ex(o, "lost", &v));
	assert_int_equal(json_object_get_int64(v), 5);
	assert_non_null(strstr(field(o, "message"), "5 possibly lost"));
	json_object_put(o);
	expect_in_order(fd, "g", 7, 8);
	audit_stats(&st);
	assert_int_equal(st.possibly_lost_total, 5);
	assert_int_equal(st.lost_total, 5);
	audit_close();
	close(fd);
}

static void
test_restart(void **state)
{
	struct audit_stats st;
	int fd;

	fd = bind_log(0);
	open_audit(21, false);
	emit_n("r", 0, 3);
	expect_in_order(fd, "r", 0, 3);
	/* Read, and proven read (SIOCOUTQ) before the reader goes: not possibly lost. */
	wait_unproven_zero();
	close(fd);
	unlink(path);

	emit_n("r", 3, 10);             /* refused, then missing: they queue */
	wait_for(UNAVAILABLE, 0);
	audit_stats(&st);
	assert_int_equal(st.queued, 7);
	assert_false(st.connected);

	fd = bind_log(0);
	expect_in_order(fd, "r", 3, 10);
	wait_for(AVAILABLE, 0);
	audit_stats(&st);
	assert_int_equal(st.sent, 10);
	assert_int_equal(st.lost_total, 0);
	assert_true(st.reconnects >= 2);
	audit_close();
	close(fd);
}

/* What cannot be delivered by audit_close() is counted, never silently dropped. */
static void
test_close_counts_undelivered(void **state)
{
	struct audit_stats st;
	int64_t t0;

	unlink(path);
	open_audit(21, false);
	emit_n("c", 0, 5);
	t0 = now_ms();
	audit_close();
	assert_true(now_ms() - t0 < 3000);      /* bounded, about a second */
	audit_stats(&st);
	assert_int_equal(st.lost_total, 5);
	assert_int_equal(st.queued, 0);
	assert_false(audit_available());
}

struct producer {
	int index;
	int count;
	bool batched;           /* as a worker does: a batch, flushed every few records */
};

static void
no_wake(void *arg)
{
	(void)arg;
}

static void *
producer_run(void *arg)
{
	struct producer *p = arg;
	char prefix[16];
	int i;

	snprintf(prefix, sizeof(prefix), "t%d", p->index);
	if (!p->batched) {
		emit_n(prefix, 0, p->count);
		return NULL;
	}
	audit_batch_start(no_wake, NULL);
	for (i = 0; i < p->count; i += 7) {
		emit_n(prefix, i, i + 7 < p->count ? i + 7 : p->count);
		audit_batch_flush();
	}
	audit_batch_stop();
	return NULL;
}

/* Several workers at once: nothing lost, each worker's records in its order. */
static void
threads(bool batched)
{
	enum { NTHREADS = 4, EACH = 1500 };
	struct producer prod[NTHREADS];
	pthread_t th[NTHREADS];
	struct json_object *o;
	struct audit_stats st;
	int next[NTHREADS] = { 0 }, t, seq, i, fd;

	fd = bind_log(0);
	open_audit(21, false);
	for (i = 0; i < NTHREADS; i++) {
		prod[i].index = i;
		prod[i].count = EACH;
		prod[i].batched = batched;
		assert_int_equal(pthread_create(&th[i], NULL, producer_run, &prod[i]), 0);
	}
	for (i = 0; i < NTHREADS * EACH; i++) {
		o = recv_record(fd);
		assert_int_equal(sscanf(field(o, "id"), "t%d-%d", &t, &seq), 2);
		assert_true(t >= 0 && t < NTHREADS);
		if (seq != next[t])
			fail_msg("thread %d: expected %d, got %d", t, next[t], seq);
		next[t]++;
		json_object_put(o);
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	expect_nothing(fd, 100);
	audit_stats(&st);
	assert_int_equal(st.sent, NTHREADS * EACH);
	assert_int_equal(st.lost_total, 0);
	audit_close();
	close(fd);
}

static void
test_threads(void **state)
{
	threads(false);
}

static void
test_threads_batched(void **state)
{
	threads(true);
}

static void
count_wake(void *arg)
{
	(*(int *)arg)++;
}

/* A batching thread's records wait for its flush, then leave together and in order;
 * wake is called once per batch, and a full batch goes at once. */
static void
test_batch_waits_for_flush(void **state)
{
	struct audit_stats st;
	int fd, wakes = 0;

	fd = bind_log(0);
	open_audit(21, false);
	audit_batch_start(count_wake, &wakes);
	emit_n("b", 0, 5);
	assert_int_equal(wakes, 1);
	audit_stats(&st);
	assert_int_equal(st.sent, 0);
	expect_nothing(fd, 50);
	audit_batch_flush();
	audit_stats(&st);
	assert_int_equal(st.sent, 5);
	expect_in_order(fd, "b", 0, 5);
	audit_batch_flush();            /* an empty batch sends nothing */
	expect_nothing(fd, 20);

	/* One more than a batch holds: the first AUDIT_BATCH_MAX are handed on at
	 * once (sent, or queued past what the receive queue holds; the reader is
	 * not reading yet), the last one waits. */
	emit_n("b", 5, 5 + AUDIT_BATCH_MAX + 1);
	assert_int_equal(wakes, 3);
	audit_stats(&st);
	assert_int_equal(st.sent + st.queued, 5 + AUDIT_BATCH_MAX);
	expect_in_order(fd, "b", 5, 5 + AUDIT_BATCH_MAX);
	wait_for(QUEUED, 0);
	expect_nothing(fd, 20);
	audit_batch_stop();             /* flushes the last one */
	expect_in_order(fd, "b", 5 + AUDIT_BATCH_MAX, 6 + AUDIT_BATCH_MAX);

	/* after stop, a record leaves at once */
	emit_n("after", 0, 1);
	audit_stats(&st);
	assert_int_equal(st.sent, 7 + AUDIT_BATCH_MAX);
	expect_in_order(fd, "after", 0, 1);
	assert_int_equal(wakes, 3);
	assert_int_equal(st.lost_total, 0);
	audit_close();
	close(fd);
}

/* A batch the socket only partly takes: the rest queues in order, nothing is lost. */
static void
test_batch_full_socket_keeps_order(void **state)
{
	struct audit_stats st;
	int fd, i;
	const int n = 300;

	fd = bind_log(4096);
	open_audit(21, false);
	audit_batch_start(no_wake, NULL);
	for (i = 0; i < n; i += 10) {
		emit_n("q", i, i + 10);
		audit_batch_flush();
	}
	audit_batch_stop();
	audit_stats(&st);
	assert_true(st.sent < (uint64_t)n);
	assert_true(st.queued > 0);
	assert_int_equal(st.sent + st.queued, n);
	assert_int_equal(st.lost, 0);
	expect_all_delivered(fd, "q", n);
	audit_close();
	close(fd);
}

/* mirror_stderr: every record also as one "audit {JSON}" line; before open, only there. */
static void
test_mirror_stderr(void **state)
{
	char tmpl[128], buf[8192];
	int fd, saved, tf;
	ssize_t n;
	struct json_object *o;

	snprintf(tmpl, sizeof(tmpl), "%s/stderr", dir);
	tf = open(tmpl, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(tf != -1);
	saved = dup(STDERR_FILENO);
	dup2(tf, STDERR_FILENO);

	emit("before-open");
	fd = bind_log(0);
	open_audit(21, true);
	emit("m-0");
	o = recv_record(fd);
	assert_string_equal(field(o, "id"), "m-0");
	json_object_put(o);
	audit_close();
	close(fd);

	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(tf, buf, sizeof(buf) - 1, 0);
	close(tf);
	unlink(tmpl);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_memory_equal(buf, "audit {", 7);
	assert_non_null(strstr(buf, "\"id\":\"before-open\""));
	assert_non_null(strstr(buf, "}\naudit {"));
	assert_non_null(strstr(buf, "\"id\":\"m-0\""));
	assert_int_equal(buf[n - 1], '\n');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_framing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_record_fits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absent_then_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overflow_loss_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_socket_never_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_gone_counts_possibly_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_counts_undelivered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_batched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_waits_for_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_full_socket_keeps_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mirror_stderr, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
