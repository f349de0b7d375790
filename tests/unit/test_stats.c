/*
 * test_stats — the per-worker counters, histograms and the tunnel registry.
 *
 * Counters are written by one worker thread and summed by another; the
 * registry reads a live relay's byte counters.  The tests use a real relay
 * between socketpairs on a real event base, and a writer thread racing a
 * reader, so what egressctl and /metrics show is checked without a daemon.
 */
#include "gateway/stats.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "gateway/relay.h"

static void
test_reason_index(void **state)
{
	(void)state;
	assert_int_equal(stats_reason_index("ok"), STATS_REASON_ok);
	assert_int_equal(stats_reason_index("sni_mismatch"), STATS_REASON_sni_mismatch);
	assert_int_equal(stats_reason_index("audit_unavailable"), STATS_REASON_audit_unavailable);
	assert_int_equal(stats_reason_index("no such reason"), STATS_REASON_other);
	assert_string_equal(stats_reason_names[STATS_REASON_policy_error], "policy_error");
}

static void
test_records_and_connections(void **state)
{
	struct stats *a = stats_new(), *b = stats_new();
	struct stats_totals t;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	stats_conn_open(a);
	stats_conn_open(a);
	stats_conn_open(b);
	stats_conn_close(a);
	stats_record(a, false, "ok", 100, 2000, false, false);
	stats_record(a, false, "policy", 50, 120, false, false);
	stats_record(b, true, "dns_failure", 0, 0, false, false);
	stats_record(b, true, "ok", 7, 9, true, false);    /* registered: bytes come from remove */

	memset(&t, 0, sizeof(t));
	stats_sum(a, &t);
	stats_sum(b, &t);
	assert_int_equal(t.conns_accepted, 3);
	assert_int_equal(t.conns_open, 2);
	assert_int_equal(t.records_request, 2);
	assert_int_equal(t.records_tunnel, 2);
	assert_int_equal(t.bytes_up, 150);
	assert_int_equal(t.bytes_down, 2120);
	assert_int_equal(t.decisions[STATS_REASON_ok], 2);
	assert_int_equal(t.decisions[STATS_REASON_policy], 1);
	assert_int_equal(t.decisions[STATS_REASON_dns_failure], 1);
	stats_free(a);
	stats_free(b);
}

static void
test_histogram_buckets(void **state)
{
	struct stats *s = stats_new();
	struct stats_totals t;

	(void)state;
	stats_setup_time(s, 999);           /* <= 1 ms */
	stats_setup_time(s, 1000);          /* <= 1 ms, on the bound */
	stats_setup_time(s, 1001);          /* <= 2.5 ms */
	stats_setup_time(s, 60000000);      /* beyond every bound: +Inf */
	stats_ldap_time(s, 30000);          /* <= 50 ms */
	memset(&t, 0, sizeof(t));
	stats_sum(s, &t);
	assert_int_equal(t.setup.buckets[0], 2);
	assert_int_equal(t.setup.buckets[1], 1);
	assert_int_equal(t.setup.buckets[STATS_HIST_NBOUNDS], 1);
	assert_int_equal(t.setup.sum_us, 999 + 1000 + 1001 + 60000000);
	assert_int_equal(t.ldap.buckets[5], 1);
	assert_int_equal(t.ldap.sum_us, 30000);
	stats_free(s);
}

static void
on_relay_done(enum relay_end who, void *arg)
{
	(void)who;
	(void)arg;
}

/* A registered tunnel is listed with its relay's live bytes, and once
 * removed its final bytes join the totals exactly once. */
static void
test_tunnel_registry(void **state)
{
	struct event_base *base = event_base_new();
	struct stats *s = stats_new();
	struct stats_tunnel info, *list = NULL;
	struct stats_tunnel_entry *e;
	struct stats_totals t;
	struct relay *r;
	int client[2], server[2];
	char buf[64];
	size_t n = 0;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, client), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, server), 0);
	r = relay_new(base, client[1], server[1], "held", 4, NULL, 0, on_relay_done, NULL, NULL);
	assert_non_null(r);

	memset(&info, 0, sizeof(info));
	strcpy(info.id, "0123456789abcdef-1");
	strcpy(info.host, "example.com");
	info.port = 443;
	e = stats_tunnel_add(s, &info, r);
	assert_non_null(e);

	/* 6 more bytes up, 3 down, through the loop. */
	assert_int_equal(write(client[0], "abcdef", 6), 6);
	assert_int_equal(write(server[0], "xyz", 3), 3);
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_loop(base, EVLOOP_NONBLOCK);

	assert_int_equal(stats_tunnels(s, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].id, "0123456789abcdef-1");
	assert_string_equal(list[0].host, "example.com");
	assert_int_equal(list[0].bytes_up, 10);
	assert_int_equal(list[0].bytes_down, 3);
	memset(&t, 0, sizeof(t));
	stats_sum(s, &t);
	assert_int_equal(t.tunnels_open, 1);
	assert_int_equal(t.bytes_up, 10);   /* open tunnels count live */

	stats_tunnel_remove(s, e, relay_bytes_up(r), relay_bytes_down(r));
	stats_record(s, true, "ok", relay_bytes_up(r), relay_bytes_down(r), true, false);
	relay_free(r);
	free(list);
	list = NULL;
	n = 0;
	assert_int_equal(stats_tunnels(s, &list, &n), 0);
	assert_int_equal(n, 0);
	memset(&t, 0, sizeof(t));
	stats_sum(s, &t);
	assert_int_equal(t.tunnels_open, 0);
	assert_int_equal(t.tunnels_total, 1);
	assert_int_equal(t.bytes_up, 10);
	assert_int_equal(t.bytes_down, 3);
	assert_true(read(server[0], buf, sizeof(buf)) == 10);

	free(list);
	stats_free(s);
	event_base_free(base);
	close(client[0]);
	close(client[1]);
	close(server[0]);
	close(server[1]);
}

#define WRITES 200000

static void *
writer(void *arg)
{
	struct stats *s = arg;
	int i;

	for (i = 0; i < WRITES; i++)
		stats_record(s, false, "ok", 1, 2, false, false);
	return NULL;
}

/* A reader summing while the owner writes never sees a count go backwards. */
static void
test_concurrent_sum(void **state)
{
	struct stats *s = stats_new();
	struct stats_totals t;
	uint64_t last = 0, last_down = 0;
	pthread_t th;

	(void)state;
	assert_int_equal(pthread_create(&th, NULL, writer, s), 0);
	do {
		memset(&t, 0, sizeof(t));
		stats_sum(s, &t);
		/* Fields are independent counters: each only grows. */
		assert_true(t.records_request >= last);
		assert_true(t.bytes_down >= last_down);
		last = t.records_request;
		last_down = t.bytes_down;
	} while (last < WRITES);
	pthread_join(th, NULL);
	memset(&t, 0, sizeof(t));
	stats_sum(s, &t);
	assert_int_equal(t.records_request, WRITES);
	assert_int_equal(t.bytes_up, WRITES);
	assert_int_equal(t.bytes_down, 2 * WRITES);
	stats_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reason_index),
		cmocka_unit_test(test_records_and_connections),
		cmocka_unit_test(test_histogram_buckets),
		cmocka_unit_test(test_tunnel_registry),
		cmocka_unit_test(test_concurrent_sum),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
