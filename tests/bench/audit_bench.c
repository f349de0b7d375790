/*
 * audit_bench — drive the audit transport (every audit/ source) for tests/bench/audit_bench.sh.
 *
 *   audit_bench emit SOCKET N THREADS [RATE]
 *	open the transport on SOCKET (a real rsyslogd's imuxsock socket), emit
 *	N tunnel records from THREADS threads as fast as possible (or at RATE
 *	records/s in total), wait for the queue to drain, and print what the
 *	transport counted as key=value lines.
 *   audit_bench cost N
 *	the audit's share of one tunnel: ns per record for audit_encode() alone
 *	and for audit_emit() (encode, frame, send) into a socket this program
 *	binds and drains from a second thread.
 *
 * The records look like real ones (a CONNECT with every field filled) so the
 * sizes and the encoding work are what the gateway pays.  The ids are
 * "b<thread>-<n>" so the script can check that each arrived exactly once.
 */
#include "audit/audit.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct producer {
	int index;
	long count;
	double rate;                    /* records/s of this thread, 0 = unpaced */
};

static int64_t
now_ns(int clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
fill(struct audit_event *ev, char *id)
{
	memset(ev, 0, sizeof(*ev));
	ev->event = "tunnel";
	ev->id = id;
	ev->client_ip = "10.20.30.40";
	ev->client_port = 51234;
	ev->user = "alice.example";
	ev->method = "CONNECT";
	ev->host = "objects.githubusercontent.example.com";
	ev->port = 443;
	ev->dst_ip = "2001:db8:1234::5678";
	ev->sni = "objects.githubusercontent.example.com";
	ev->decision = "allow";
	ev->reason = "ok";
	ev->rule = "/etc/egressd/policy.rules:12";
	ev->status = 200;
	ev->bytes_up = 123456;
	ev->bytes_down = 98765432;
	ev->duration_ms = 4321;
	ev->close = "client";
	ev->lost = -1;
}

static void *
producer_run(void *arg)
{
	struct producer *p = arg;
	struct audit_event ev;
	struct timespec ts;
	int64_t start = now_ns(CLOCK_MONOTONIC), due, now;
	char id[48];
	long i;

	for (i = 0; i < p->count; i++) {
		if (p->rate > 0) {
			due = start + (int64_t)((double)i * 1e9 / p->rate);
			if ((now = now_ns(CLOCK_MONOTONIC)) < due) {
				ts.tv_sec = (due - now) / 1000000000;
				ts.tv_nsec = (due - now) % 1000000000;
				nanosleep(&ts, NULL);
			}
		}
		snprintf(id, sizeof(id), "b%d-%ld", p->index, i);
		fill(&ev, id);
		audit_emit(&ev);
	}
	return NULL;
}

static int
cmd_emit(const char *path, long n, int nthreads, double rate)
{
	struct audit_config cfg;
	struct audit_stats st;
	struct producer *prod;
	pthread_t *th;
	int64_t t0, t1, t2, deadline;
	int i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.socket_path = path;
	cfg.facility = 21;
	cfg.tag = "egressd";
	if (audit_open(&cfg) == -1) {
		fprintf(stderr, "audit_open %s failed\n", path);
		return 1;
	}
	prod = calloc((size_t)nthreads, sizeof(*prod));
	th = calloc((size_t)nthreads, sizeof(*th));
	if (prod == NULL || th == NULL)
		return 1;
	printf("start_ms=%" PRId64 "\n", now_ns(CLOCK_REALTIME) / 1000000);
	t0 = now_ns(CLOCK_MONOTONIC);
	for (i = 0; i < nthreads; i++) {
		prod[i].index = i;
		prod[i].count = n / nthreads + (i < n % nthreads ? 1 : 0);
		prod[i].rate = rate / nthreads;
		pthread_create(&th[i], NULL, producer_run, &prod[i]);
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	t1 = now_ns(CLOCK_MONOTONIC);
	audit_stats(&st);
	printf("emit_s=%.3f\nemit_rate=%.0f\nqueued_at_end_of_emit=%" PRIu64 "\n",
	    (double)(t1 - t0) / 1e9, (double)n / ((double)(t1 - t0) / 1e9), st.queued);
	/* Let the delivery thread drain what is queued (bounded). */
	deadline = t1 + 30 * (int64_t)1000000000;
	for (;;) {
		audit_stats(&st);
		if ((st.queued == 0 && st.lost == 0) || now_ns(CLOCK_MONOTONIC) > deadline)
			break;
		usleep(2000);
	}
	t2 = now_ns(CLOCK_MONOTONIC);
	printf("drained_s=%.3f\nsend_rate=%.0f\n", (double)(t2 - t0) / 1e9,
	    (double)st.sent / ((double)(t2 - t0) / 1e9));
	printf("sent=%" PRIu64 "\nqueued_total=%" PRIu64 "\nlost_total=%" PRIu64
	    "\nloss_records=%" PRIu64 "\nreconnects=%" PRIu64 "\n", st.sent, st.queued_total,
	    st.lost_total, st.loss_records, st.reconnects);
	audit_close();
	free(prod);
	free(th);
	return 0;
}

/* ---- cost ------------------------------------------------------------- */

static int sink_fd = -1;

static void *
sink_run(void *arg)
{
	char buf[16384];

	while (recv(sink_fd, buf, sizeof(buf), 0) > 0)
		;
	return arg;
}

static int
cmd_cost(long n)
{
	struct audit_config cfg;
	struct audit_event ev;
	struct audit_stats st;
	struct sockaddr_un sun;
	struct timeval tv = { 1, 0 };
	pthread_t th;
	char dir[] = "/tmp/audit_bench.XXXXXX", id[48], *json;
	int64_t t0, t1;
	long i;

	if (mkdtemp(dir) == NULL)
		return 1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/sink.sock", dir);
	sink_fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (sink_fd == -1 || bind(sink_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		return 1;
	setsockopt(sink_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	pthread_create(&th, NULL, sink_run, NULL);

	t0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "c-%ld", i);
		fill(&ev, id);
		free(audit_encode(&ev));
	}
	t1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	fill(&ev, id);
	json = audit_encode(&ev);
	printf("record_bytes=%zu\n", strlen(json));
	free(json);
	printf("encode_ns=%.0f\n", (double)(t1 - t0) / (double)n);

	memset(&cfg, 0, sizeof(cfg));
	cfg.socket_path = sun.sun_path;
	cfg.facility = 21;
	cfg.tag = "egressd";
	if (audit_open(&cfg) == -1)
		return 1;
	t0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "c-%ld", i);
		fill(&ev, id);
		audit_emit(&ev);
	}
	t1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	audit_stats(&st);
	printf("emit_ns=%.0f\n", (double)(t1 - t0) / (double)n);
	printf("emit_sent_direct=%" PRIu64 "\nemit_queued=%" PRIu64 "\n",
	    st.sent, st.queued_total);
	audit_close();
	shutdown(sink_fd, SHUT_RDWR);
	pthread_join(th, NULL);
	close(sink_fd);
	unlink(sun.sun_path);
	rmdir(dir);
	return 0;
}

int
main(int argc, char *argv[])
{
	if (argc >= 5 && strcmp(argv[1], "emit") == 0)
		return cmd_emit(argv[2], atol(argv[3]), atoi(argv[4]),
		    argc > 5 ? atof(argv[5]) : 0);
	if (argc == 3 && strcmp(argv[1], "cost") == 0)
		return cmd_cost(atol(argv[2]));
	fprintf(stderr, "usage: audit_bench emit SOCKET N THREADS [RATE]\n"
	    "       audit_bench cost N\n");
	return 2;
}
