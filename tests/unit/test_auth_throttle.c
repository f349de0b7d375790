/*
 * test_auth_throttle — the one-minute failure windows: counting, blocking
 * and its Retry-After, expiry, take/refund, case folding, eviction in the
 * bounded table, and exact counts under concurrent threads.
 */
#include "auth/throttle.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define K(s) (s), strlen(s)

static void
test_window(void **state)
{
	struct throttle *t = throttle_new(64, false);
	unsigned i;

	assert_non_null(t);
	assert_int_equal(throttle_check(t, K("10.0.0.1"), 3, 1000), 0);
	for (i = 1; i <= 3; i++)
		assert_int_equal(throttle_add(t, K("10.0.0.1"), 1000 + i), i);
	/* Window opened at 1001: blocked until 1061. */
	assert_int_equal(throttle_check(t, K("10.0.0.1"), 3, 1003), 58);
	assert_int_equal(throttle_check(t, K("10.0.0.1"), 3, 1060), 1);
	assert_int_equal(throttle_check(t, K("10.0.0.1"), 4, 1003), 0);
	assert_int_equal(throttle_check(t, K("10.0.0.2"), 3, 1003), 0);
	/* limit 0 = no limit */
	assert_int_equal(throttle_check(t, K("10.0.0.1"), 0, 1003), 0);
	/* The minute has passed: a fresh window. */
	assert_int_equal(throttle_check(t, K("10.0.0.1"), 3, 1061), 0);
	assert_int_equal(throttle_get(t, K("10.0.0.1"), 1061), 0);
	assert_int_equal(throttle_add(t, K("10.0.0.1"), 1061), 1);
	/* A clock before the window (never from a monotonic clock) is not live. */
	assert_int_equal(throttle_get(t, K("10.0.0.1"), 1000), 0);
	throttle_free(t);
}

static void
test_take_refund(void **state)
{
	struct throttle *t = throttle_new(64, true);
	int64_t s1 = -1, s2 = -1, s3 = -1, s4 = -1;

	assert_int_equal(throttle_take(t, K("alice"), 3, 100, &s1), 0);
	assert_int_equal(throttle_take(t, K("Alice"), 3, 101, &s2), 0);
	assert_int_equal(throttle_take(t, K("ALICE"), 3, 102, &s3), 0);
	assert_int_equal(s1, 100);
	assert_int_equal(s2, 100);
	/* The limit is taken: the fourth concurrent attempt waits. */
	assert_int_equal(throttle_take(t, K("alice"), 3, 103, &s4), 57);
	assert_int_equal(s4, -1);
	/* One attempt turned out not to be a failure: its count comes back. */
	throttle_refund(t, K("alice"), s2);
	assert_int_equal(throttle_get(t, K("alice"), 103), 2);
	assert_int_equal(throttle_take(t, K("alice"), 3, 103, &s4), 0);
	/* A refund from an old window does not touch the new one. */
	assert_int_equal(throttle_take(t, K("bob"), 3, 100, &s1), 0);
	assert_int_equal(throttle_add(t, K("bob"), 170), 1);    /* window 170 */
	throttle_refund(t, K("bob"), s1);
	assert_int_equal(throttle_get(t, K("bob"), 171), 1);
	/* Refunds never go below zero, nor touch an unknown key. */
	throttle_refund(t, K("bob"), 170);
	throttle_refund(t, K("bob"), 170);
	assert_int_equal(throttle_get(t, K("bob"), 171), 0);
	throttle_refund(t, K("nobody"), 170);
	/* limit 0: nothing counted */
	assert_int_equal(throttle_take(t, K("carol"), 0, 100, &s1), 0);
	assert_int_equal(throttle_get(t, K("carol"), 100), 0);
	throttle_free(t);
}

static void
test_case(void **state)
{
	struct throttle *users = throttle_new(64, true), *clients = throttle_new(64, false);

	throttle_add(users, K("Alice"), 10);
	assert_int_equal(throttle_get(users, K("aLICE"), 10), 1);
	assert_int_equal(throttle_get(users, K("alice2"), 10), 0);
	throttle_add(clients, K("fd00::A"), 10);
	assert_int_equal(throttle_get(clients, K("fd00::a"), 10), 0);
	/* Length is part of the key; bytes past NUL too. */
	throttle_add(users, "a\0b", 3, 10);
	assert_int_equal(throttle_get(users, "a", 1, 10), 0);
	assert_int_equal(throttle_get(users, "a\0b", 3, 10), 1);
	throttle_free(users);
	throttle_free(clients);
}

/* The table never grows: many keys evict, and the live ones evicted are the oldest. */
static void
test_bounded_eviction(void **state)
{
	struct throttle *t = throttle_new(16, false);
	char key[32];
	unsigned i, remembered = 0;

	for (i = 0; i < 16; i++) {
		snprintf(key, sizeof(key), "old%u", i);
		throttle_add(t, K(key), 100);
	}
	/* 10000 newer keys through 16 slots: memory stays the same. */
	for (i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "new%u", i);
		throttle_add(t, K(key), 110);
	}
	for (i = 0; i < 16; i++) {
		snprintf(key, sizeof(key), "old%u", i);
		remembered += throttle_get(t, K(key), 110);
	}
	assert_int_equal(remembered, 0);
	/* The last keys added are still counted. */
	snprintf(key, sizeof(key), "new%u", 9999);
	assert_int_equal(throttle_get(t, K(key), 110), 1);
	/* An expired slot is reused before a live one is evicted. */
	throttle_free(t);
	t = throttle_new(16, false);
	for (i = 0; i < 16; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		throttle_add(t, K(key), i < 8 ? 0 : 100);
	}
	for (i = 0; i < 8; i++) {
		snprintf(key, sizeof(key), "x%u", i);
		throttle_add(t, K(key), 120);
	}
	for (i = 8, remembered = 0; i < 16; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		remembered += throttle_get(t, K(key), 120);
	}
	/* Most of the live ones survive (a probe run may still pick one). */
	assert_true(remembered >= 4);
	throttle_free(t);
}

#define NTHREADS 8
#define NADDS 5000

static struct throttle *shared;

static void *
adder(void *arg)
{
	int64_t stamp;
	int i;

	(void)arg;
	for (i = 0; i < NADDS; i++) {
		throttle_add(shared, K("10.9.9.9"), 500);
		if (throttle_take(shared, K("victim"), 1000, 500, &stamp) == 0)
			throttle_refund(shared, K("victim"), stamp);
	}
	return NULL;
}

static void *
taker(void *arg)
{
	int64_t stamp;
	unsigned *got = arg;
	int i;

	for (i = 0; i < NADDS; i++)
		if (throttle_take(shared, K("limited"), 100, 500, &stamp) == 0)
			(*got)++;
	return NULL;
}

static void
test_threads(void **state)
{
	pthread_t th[NTHREADS];
	unsigned got[NTHREADS] = { 0 }, sum = 0;
	int i;

	shared = throttle_new(1024, true);
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, adder, NULL), 0);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(throttle_get(shared, K("10.9.9.9"), 500), NTHREADS * NADDS);
	assert_int_equal(throttle_get(shared, K("victim"), 500), 0);
	/* Concurrent takes never overshoot the limit. */
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, taker, &got[i]), 0);
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		sum += got[i];
	}
	assert_int_equal(sum, 100);
	assert_int_equal(throttle_get(shared, K("limited"), 500), 100);
	throttle_free(shared);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_take_refund),
		cmocka_unit_test(test_case),
		cmocka_unit_test(test_bounded_eviction),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
