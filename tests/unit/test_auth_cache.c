/*
 * test_auth_cache — the cache (auth/cache.c) and the authenticator's pool
 * around it (auth/auth.c), without a directory.
 *
 * The cache is driven by an injected clock: entries live exactly their TTL,
 * failures are keyed by the password (a wrong password never locks out the
 * right one), a full table evicts failures before successes.  The pool is
 * driven through auth_new_with_exchange() with a fake exchange that counts
 * its calls and can be held at a gate, which is how coalescing is shown: a
 * burst of requests with the same new credentials, all waiting, one call.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/cache.h"
#include "auth/ldap.h"

/* ------------------------------------------------------------ cache */

static uint64_t fake_now;

static uint64_t
fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

static void
test_siphash_vectors(void **state)
{
	uint8_t k[16], m[64];
	size_t i;

	(void)state;
	for (i = 0; i < 16; i++)
		k[i] = (uint8_t)i;
	for (i = 0; i < 64; i++)
		m[i] = (uint8_t)i;
	/* From the SipHash paper's reference implementation (vectors.h). */
	assert_true(cache_siphash(k, m, 0) == 0x726fdb47dd0e0e31ULL);
	assert_true(cache_siphash(k, m, 1) == 0x74f839c593dc67fdULL);
	assert_true(cache_siphash(k, m, 8) == 0x93f5f5799a932462ULL);
	assert_true(cache_siphash(k, m, 15) == 0xa129ca6149be45e5ULL);
	assert_true(cache_siphash(k, m, 63) == 0x958a324ceb064572ULL);
}

static void
test_key(void **state)
{
	struct auth_cache *c1, *c2;
	struct cache_key a, b;
	char *err = NULL;

	(void)state;
	c1 = cache_new(16, &err);
	c2 = cache_new(16, &err);
	assert_non_null(c1);
	assert_non_null(c2);
	cache_key(c1, "alice", 5, "pw", 2, &a);
	cache_key(c1, "alice", 5, "pw", 2, &b);
	assert_memory_equal(&a, &b, sizeof(a));
	/* The split between name and password is part of the key. */
	cache_key(c1, "alic", 4, "epw", 3, &b);
	assert_memory_not_equal(&a, &b, sizeof(a));
	cache_key(c1, "alice", 5, "pX", 2, &b);
	assert_memory_not_equal(&a, &b, sizeof(a));
	/* Random keys: another cache hashes differently. */
	cache_key(c2, "alice", 5, "pw", 2, &b);
	assert_memory_not_equal(&a, &b, sizeof(a));
	cache_free(c1);
	cache_free(c2);
}

static struct cache_ident *
mkident(const char *user)
{
	static const char *const g[] = { "engineering", "staff" };
	struct cache_ident *id = cache_ident_new(user, strlen(user), g, 2);

	assert_non_null(id);
	return id;
}

static void
test_expiry(void **state)
{
	struct auth_cache *c;
	struct cache_key k;
	struct cache_ident *id, *got;
	char *err = NULL;

	(void)state;
	c = cache_new(16, &err);
	assert_non_null(c);
	fake_now = 1000000;
	cache_set_clock(c, fake_clock, NULL);
	cache_key(c, "alice", 5, "pw", 2, &k);
	id = mkident("alice");
	cache_put(c, &k, "alice", 5, CACHE_OK, id, 300);
	cache_ident_unref(id);

	fake_now += 299999;
	assert_int_equal(cache_lookup(c, &k, "alice", 5, &got), CACHE_OK);
	assert_string_equal(got->user, "alice");
	assert_int_equal(got->ngroups, 2);
	assert_string_equal(got->groups[1], "staff");
	assert_null(got->groups[2]);
	cache_ident_unref(got);
	/* The same key under another given name is another entry. */
	assert_int_equal(cache_lookup(c, &k, "ALICE", 5, &got), CACHE_MISS);
	assert_null(got);

	fake_now += 1;
	assert_int_equal(cache_lookup(c, &k, "alice", 5, &got), CACHE_MISS);
	assert_null(got);
	assert_int_equal(cache_count(c), 0);

	/* ttl 0: not remembered at all */
	id = mkident("alice");
	cache_put(c, &k, "alice", 5, CACHE_OK, id, 0);
	cache_ident_unref(id);
	assert_int_equal(cache_count(c), 0);
	cache_free(c);
}

/* A failure is keyed by the password: the right password is not locked out. */
static void
test_negative(void **state)
{
	struct auth_cache *c;
	struct cache_key right, wrong;
	struct cache_ident *id, *got;
	char *err = NULL;

	(void)state;
	c = cache_new(16, &err);
	fake_now = 5000;
	cache_set_clock(c, fake_clock, NULL);
	cache_key(c, "alice", 5, "alice-pw", 8, &right);
	cache_key(c, "alice", 5, "guess", 5, &wrong);
	id = cache_ident_new("alice", 5, NULL, 0);
	cache_put(c, &wrong, "alice", 5, CACHE_FAILED, id, 5);
	cache_ident_unref(id);

	assert_int_equal(cache_lookup(c, &wrong, "alice", 5, &got), CACHE_FAILED);
	assert_string_equal(got->user, "alice");
	assert_int_equal(got->ngroups, 0);
	cache_ident_unref(got);
	assert_int_equal(cache_lookup(c, &right, "alice", 5, &got), CACHE_MISS);

	id = mkident("alice");
	cache_put(c, &right, "alice", 5, CACHE_OK, id, 300);
	cache_ident_unref(id);
	assert_int_equal(cache_lookup(c, &right, "alice", 5, &got), CACHE_OK);
	cache_ident_unref(got);
	assert_int_equal(cache_lookup(c, &wrong, "alice", 5, &got), CACHE_FAILED);
	cache_ident_unref(got);

	fake_now += 5000;       /* the failure expires, the success stays */
	assert_int_equal(cache_lookup(c, &wrong, "alice", 5, &got), CACHE_MISS);
	assert_int_equal(cache_lookup(c, &right, "alice", 5, &got), CACHE_OK);
	cache_ident_unref(got);
	/* A new verdict for the same key replaces the old one. */
	id = cache_ident_new("alice", 5, NULL, 0);
	cache_put(c, &right, "alice", 5, CACHE_FAILED, id, 5);
	cache_ident_unref(id);
	assert_int_equal(cache_lookup(c, &right, "alice", 5, &got), CACHE_FAILED);
	cache_ident_unref(got);
	assert_int_equal(cache_count(c), 1);
	cache_free(c);
}

/* Full table: failures go first, then the oldest success; the bound holds. */
static void
test_eviction(void **state)
{
	struct auth_cache *c;
	struct cache_key k;
	struct cache_ident *id, *got;
	char name[32], *err = NULL;
	int i;

	(void)state;
	c = cache_new(8, &err);
	fake_now = 1;
	cache_set_clock(c, fake_clock, NULL);
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		cache_key(c, name, strlen(name), "pw", 2, &k);
		id = mkident(name);
		cache_put(c, &k, name, strlen(name), CACHE_OK, id, 300);
		cache_ident_unref(id);
	}
	/* A flood of wrong credentials with distinct names. */
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "attacker%d", i);
		cache_key(c, name, strlen(name), "x", 1, &k);
		id = cache_ident_new(name, strlen(name), NULL, 0);
		cache_put(c, &k, name, strlen(name), CACHE_FAILED, id, 60);
		cache_ident_unref(id);
		assert_true(cache_count(c) <= 8);
	}
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		cache_key(c, name, strlen(name), "pw", 2, &k);
		assert_int_equal(cache_lookup(c, &k, name, strlen(name), &got), CACHE_OK);
		cache_ident_unref(got);
	}
	/* Successes alone: the oldest goes. */
	for (i = 4; i < 12; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		cache_key(c, name, strlen(name), "pw", 2, &k);
		id = mkident(name);
		cache_put(c, &k, name, strlen(name), CACHE_OK, id, 300);
		cache_ident_unref(id);
	}
	assert_int_equal(cache_count(c), 8);
	cache_key(c, "user0", 5, "pw", 2, &k);
	assert_int_equal(cache_lookup(c, &k, "user0", 5, &got), CACHE_MISS);
	cache_key(c, "user11", 6, "pw", 2, &k);
	assert_int_equal(cache_lookup(c, &k, "user11", 6, &got), CACHE_OK);
	cache_ident_unref(got);
	/* Expired entries are purged on insert. */
	fake_now += 301000;
	cache_key(c, "late", 4, "pw", 2, &k);
	id = mkident("late");
	cache_put(c, &k, "late", 4, CACHE_OK, id, 300);
	cache_ident_unref(id);
	assert_int_equal(cache_count(c), 1);
	cache_free(c);
}

/* Many names, one table: lookups stay exact (the chains are keyed). */
static void
test_many(void **state)
{
	struct auth_cache *c;
	struct cache_key k;
	struct cache_ident *id, *got;
	char name[32], *err = NULL;
	int i;

	(void)state;
	c = cache_new(4096, &err);
	for (i = 0; i < 4096; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		cache_key(c, name, strlen(name), "pw", 2, &k);
		id = mkident(name);
		cache_put(c, &k, name, strlen(name), CACHE_OK, id, 300);
		cache_ident_unref(id);
	}
	for (i = 0; i < 4096; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		cache_key(c, name, strlen(name), "pw", 2, &k);
		assert_int_equal(cache_lookup(c, &k, name, strlen(name), &got), CACHE_OK);
		assert_string_equal(got->user, name);
		cache_ident_unref(got);
		cache_key(c, name, strlen(name), "pW", 2, &k);
		assert_int_equal(cache_lookup(c, &k, name, strlen(name), &got), CACHE_MISS);
	}
	cache_free(c);
}

/* ------------------------------------------------------------ the pool */

struct fake {
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	bool gate_open;
	int calls;
	int unavailable;                /* answer AUTH_UNAVAILABLE this many times */
	char last_pass[64];
};

static struct fake fake = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, true, 0, 0, ""
};

/* The directory: alice/alice-pw (stored as "alice", groups engineering). */
static enum auth_status
fake_exchange(void *arg, const char *user, size_t ulen, const char *pass, size_t plen,
    struct cache_ident **ident)
{
	static const char *const g[] = { "engineering" };
	struct fake *f = arg;
	bool down;

	pthread_mutex_lock(&f->mtx);
	f->calls++;
	snprintf(f->last_pass, sizeof(f->last_pass), "%.*s", (int)plen, pass);
	while (!f->gate_open)
		pthread_cond_wait(&f->cond, &f->mtx);
	down = f->unavailable > 0;
	if (down)
		f->unavailable--;
	pthread_mutex_unlock(&f->mtx);
	if (down)
		return AUTH_UNAVAILABLE;
	if (ulen == 5 && strncasecmp(user, "alice", 5) == 0 && plen == 8 &&
	    memcmp(pass, "alice-pw", 8) == 0) {
		*ident = cache_ident_new("alice", 5, g, 1);
		return AUTH_OK;
	}
	return AUTH_FAILED;
}

static int
fake_calls(void)
{
	int n;

	pthread_mutex_lock(&fake.mtx);
	n = fake.calls;
	pthread_mutex_unlock(&fake.mtx);
	return n;
}

static void
fake_gate(bool open)
{
	pthread_mutex_lock(&fake.mtx);
	fake.gate_open = open;
	pthread_cond_broadcast(&fake.cond);
	pthread_mutex_unlock(&fake.mtx);
}

struct got {
	int n;
	enum auth_status status;
	char user[64];
	char group[64];
	size_t ngroups;
};

static void
on_done(const struct auth_result *r, void *arg)
{
	struct got *g = arg;

	g->n++;
	g->status = r->status;
	snprintf(g->user, sizeof(g->user), "%s", r->user != NULL ? r->user : "(null)");
	g->ngroups = r->ngroups;
	snprintf(g->group, sizeof(g->group), "%s", r->ngroups > 0 ? r->groups[0] : "");
}

struct env {
	struct event_base *base;
	struct auth *auth;
	struct auth_loop *loop;
};

static int
setup(void **state)
{
	struct auth_config conf;
	struct env *e = calloc(1, sizeof(*e));
	char *err = NULL;

	memset(&conf, 0, sizeof(conf));
	conf.cache_ttl = 300;
	conf.negative_ttl = 5;
	conf.threads = 3;
	fake.calls = 0;
	fake.unavailable = 0;
	fake.gate_open = true;
	e->base = event_base_new();
	e->auth = auth_new_with_exchange(&conf, fake_exchange, &fake, &err);
	assert_non_null(e->auth);
	e->loop = auth_loop_new(e->auth, e->base);
	assert_non_null(e->loop);
	*state = e;
	return 0;
}

static int
teardown(void **state)
{
	struct env *e = *state;

	fake_gate(true);
	auth_loop_free(e->loop);
	auth_free(e->auth);
	event_base_free(e->base);
	free(e);
	return 0;
}

/* Run the loop until *n reaches want (or 5 s). */
static void
run_until(struct env *e, const int *n, int want)
{
	int i;

	for (i = 0; i < 500 && *n < want; i++) {
		struct timeval tv = { 0, 10000 };

		event_base_loopexit(e->base, &tv);
		event_base_dispatch(e->base);
	}
	assert_int_equal(*n, want);
}

#define HDR(s)	s, sizeof(s) - 1
#define ALICE_OK	"Basic YWxpY2U6YWxpY2UtcHc="    /* alice:alice-pw */
#define ALICE_BAD	"Basic YWxpY2U6Z3Vlc3M="        /* alice:guess */
#define ALICE_EMPTY	"Basic YWxpY2U6"                /* alice: */
#define ALICE_UPPER	"Basic QUxJQ0U6YWxpY2UtcHc="    /* ALICE:alice-pw */

static void
test_sync_answers(void **state)
{
	struct env *e = *state;
	struct auth_result now;
	struct got g = { 0 };

	assert_null(auth_begin(e->loop, NULL, 0, &now, on_done, &g));
	assert_int_equal(now.status, AUTH_MISSING);
	assert_null(now.user);
	assert_null(auth_begin(e->loop, HDR("Bearer x"), &now, on_done, &g));
	assert_int_equal(now.status, AUTH_FAILED);
	assert_null(now.user);
	assert_null(auth_begin(e->loop, HDR("Basic !!!!"), &now, on_done, &g));
	assert_int_equal(now.status, AUTH_FAILED);
	/* An empty password is decided here, with the name for the audit. */
	assert_null(auth_begin(e->loop, HDR(ALICE_EMPTY), &now, on_done, &g));
	assert_int_equal(now.status, AUTH_FAILED);
	assert_string_equal(now.user, "alice");
	assert_int_equal(fake_calls(), 0);
	assert_int_equal(g.n, 0);
}

static void
test_first_then_cached(void **state)
{
	struct env *e = *state;
	struct auth_result now;
	struct auth_stats st;
	struct got g = { 0 };
	struct auth_req *r;

	r = auth_begin(e->loop, HDR(ALICE_OK), &now, on_done, &g);
	assert_non_null(r);
	run_until(e, &g.n, 1);
	assert_int_equal(g.status, AUTH_OK);
	assert_string_equal(g.user, "alice");
	assert_string_equal(g.group, "engineering");
	assert_string_equal(fake.last_pass, "alice-pw");

	/* Now at once, from the cache, without the directory. */
	assert_null(auth_begin(e->loop, HDR(ALICE_OK), &now, on_done, &g));
	assert_int_equal(now.status, AUTH_OK);
	assert_string_equal(now.user, "alice");
	assert_int_equal(now.ngroups, 1);
	assert_string_equal(now.groups[0], "engineering");
	assert_int_equal(fake_calls(), 1);

	/* Another spelling of the name is its own key, and the stored name comes back. */
	r = auth_begin(e->loop, HDR(ALICE_UPPER), &now, on_done, &g);
	assert_non_null(r);
	run_until(e, &g.n, 2);
	assert_int_equal(g.status, AUTH_OK);
	assert_string_equal(g.user, "alice");

	auth_get_stats(e->auth, &st);
	assert_int_equal(st.cache_hits, 1);
	assert_int_equal(st.cache_misses, 2);
	assert_int_equal(st.exchanges, 2);
	assert_int_equal(st.cache_entries, 2);
}

/* A wrong password is cached as a failure without locking out the right one. */
static void
test_negative_pool(void **state)
{
	struct env *e = *state;
	struct auth_result now;
	struct got g = { 0 };

	assert_non_null(auth_begin(e->loop, HDR(ALICE_BAD), &now, on_done, &g));
	run_until(e, &g.n, 1);
	assert_int_equal(g.status, AUTH_FAILED);
	assert_string_equal(g.user, "alice");
	assert_int_equal(g.ngroups, 0);
	assert_null(auth_begin(e->loop, HDR(ALICE_BAD), &now, on_done, &g));
	assert_int_equal(now.status, AUTH_FAILED);
	assert_string_equal(now.user, "alice");
	assert_int_equal(fake_calls(), 1);

	assert_non_null(auth_begin(e->loop, HDR(ALICE_OK), &now, on_done, &g));
	run_until(e, &g.n, 2);
	assert_int_equal(g.status, AUTH_OK);
	assert_int_equal(fake_calls(), 2);
}

/* Unavailability is not cached: the next request asks again. */
static void
test_unavailable_not_cached(void **state)
{
	struct env *e = *state;
	struct auth_result now;
	struct got g = { 0 };

	fake.unavailable = 1;
	assert_non_null(auth_begin(e->loop, HDR(ALICE_OK), &now, on_done, &g));
	run_until(e, &g.n, 1);
	assert_int_equal(g.status, AUTH_UNAVAILABLE);
	assert_string_equal(g.user, "(null)");
	assert_non_null(auth_begin(e->loop, HDR(ALICE_OK), &now, on_done, &g));
	run_until(e, &g.n, 2);
	assert_int_equal(g.status, AUTH_OK);
	assert_int_equal(fake_calls(), 2);
}

/* 64 simultaneous requests with the same new credentials: one exchange. */
static void
test_coalescing(void **state)
{
	struct env *e = *state;
	struct auth_result now;
	struct auth_req *r[64];
	struct got g = { 0 }, bad = { 0 };
	struct auth_stats st;
	int i;

	fake_gate(false);
	for (i = 0; i < 64; i++) {
		r[i] = auth_begin(e->loop, HDR(ALICE_OK), &now, on_done, &g);
		assert_non_null(r[i]);
	}
	/* Different credentials are not folded into it. */
	assert_non_null(auth_begin(e->loop, HDR(ALICE_BAD), &now, on_done, &bad));
	for (i = 0; i < 200 && fake_calls() < 2; i++)
		usleep(5000);
	usleep(20000);
	assert_int_equal(fake_calls(), 2);
	/* A cancelled waiter is never called back; the others are. */
	auth_cancel(r[7]);
	auth_cancel(r[63]);
	fake_gate(true);
	run_until(e, &g.n, 62);
	run_until(e, &bad.n, 1);
	assert_int_equal(g.status, AUTH_OK);
	assert_int_equal(bad.status, AUTH_FAILED);
	assert_int_equal(fake_calls(), 2);
	auth_get_stats(e->auth, &st);
	assert_int_equal(st.exchanges, 2);
	assert_int_equal(st.cache_misses, 65);
	/* Nothing more arrives later. */
	{
		struct timeval tv = { 0, 50000 };

		event_base_loopexit(e->base, &tv);
		event_base_dispatch(e->base);
	}
	assert_int_equal(g.n, 62);
}

/* Cancel after the answer reached the loop but before its callback ran. */
static void
test_cancel_delivered(void **state)
{
	struct env *e = *state;
	struct auth_result now;
	struct auth_req *r;
	struct got g = { 0 };
	struct timeval tv = { 0, 50000 };

	struct auth_stats st;
	int i;

	r = auth_begin(e->loop, HDR(ALICE_OK), &now, on_done, &g);
	assert_non_null(r);
	/*
	 * The thread caches the result and queues it on the loop in one
	 * critical section: once it is cached, it waits on the loop.
	 */
	for (i = 0; i < 1000; i++) {
		auth_get_stats(e->auth, &st);
		if (st.cache_entries == 1)
			break;
		usleep(5000);
	}
	assert_int_equal(st.cache_entries, 1);
	auth_cancel(r);
	event_base_loopexit(e->base, &tv);
	event_base_dispatch(e->base);
	assert_int_equal(g.n, 0);
	/* The result was cached all the same. */
	assert_null(auth_begin(e->loop, HDR(ALICE_OK), &now, on_done, &g));
	assert_int_equal(now.status, AUTH_OK);
}

/* Freeing a loop with requests in flight: no callback, no leak (ASan). */
static void
test_loop_free_pending(void **state)
{
	struct env *e = *state;
	struct auth_result now;
	struct got g = { 0 };
	struct auth_loop *l2;

	l2 = auth_loop_new(e->auth, e->base);
	assert_non_null(l2);
	fake_gate(false);
	assert_non_null(auth_begin(l2, HDR(ALICE_OK), &now, on_done, &g));
	assert_non_null(auth_begin(l2, HDR(ALICE_BAD), &now, on_done, &g));
	assert_non_null(auth_begin(e->loop, HDR(ALICE_OK), &now, on_done, &g));
	auth_loop_free(l2);
	fake_gate(true);
	run_until(e, &g.n, 1);
	assert_int_equal(g.status, AUTH_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash_vectors),
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_negative),
		cmocka_unit_test(test_eviction),
		cmocka_unit_test(test_many),
		cmocka_unit_test_setup_teardown(test_sync_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_then_cached, setup, teardown),
		cmocka_unit_test_setup_teardown(test_negative_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unavailable_not_cached, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_delivered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_free_pending, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
