/*
 * cache — positive and negative authentication cache.
 *
 * What makes it delicate is that every part of its key is chosen by the
 * client.  Three consequences:
 *
 *  - The password is never stored.  The key is 128 bits of SipHash-2-4 (two
 *    runs under two independent random 128-bit keys) over the length of the
 *    user name, the user name and the password.  SipHash is a PRF: without
 *    the keys nobody can predict a digest or find two passwords that share
 *    one, and a memory dump shows no password (a brute force would need the
 *    keys and one hash per guess; a slow hash would cost every request).
 *  - A failure is keyed by the password too.  Keyed by the name alone, anyone
 *    could lock alice out by sending a wrong password every auth_negative_ttl.
 *  - The bucket index comes from the keyed digest, so chosen names cannot be
 *    made to pile up in one chain.
 *
 * Entries sit on two FIFO lists, one per verdict.  Each verdict has one TTL,
 * so a list's head is always its next entry to expire: purging is popping
 * expired heads.  When the table is full, failures go first: a flood of
 * wrong credentials evicts other wrong credentials, not known users.
 *
 * One mutex guards everything; it is held for one lookup or one insert (a
 * few hundred nanoseconds), never across I/O.
 */
#include "auth/cache.h"

#include <sys/queue.h>
#include <sys/random.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cache_entry {
	LIST_ENTRY(cache_entry) chain;  /* bucket */
	TAILQ_ENTRY(cache_entry) order; /* the FIFO of its verdict */
	struct cache_key key;
	enum cache_verdict verdict;
	struct cache_ident *ident;
	uint64_t expires;               /* ms, on the cache's clock */
	size_t ulen;
	char user[];                    /* the name as given, for an exact compare */
};

LIST_HEAD(cache_bucket, cache_entry);
TAILQ_HEAD(cache_fifo, cache_entry);

struct auth_cache {
	pthread_mutex_t mtx;
	struct cache_bucket *buckets;
	size_t mask;                    /* nbuckets - 1 (a power of two) */
	size_t count, max;
	struct cache_fifo ok, failed;
	uint8_t k0[16], k1[16];         /* the two digest keys */
	uint64_t (*now_ms)(void *);
	void *now_arg;
};

/* ------------------------------------------------------------ SipHash-2-4 */

struct siphash {
	uint64_t v0, v1, v2, v3;
	uint64_t tail;                  /* bytes not yet a full word, little-endian */
	size_t ntail, total;
};

#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void
siphash_round(struct siphash *s)
{
	s->v0 += s->v1; s->v1 = ROTL(s->v1, 13); s->v1 ^= s->v0; s->v0 = ROTL(s->v0, 32);
	s->v2 += s->v3; s->v3 = ROTL(s->v3, 16); s->v3 ^= s->v2;
	s->v0 += s->v3; s->v3 = ROTL(s->v3, 21); s->v3 ^= s->v0;
	s->v2 += s->v1; s->v1 = ROTL(s->v1, 17); s->v1 ^= s->v2; s->v2 = ROTL(s->v2, 32);
}

static uint64_t
siphash_le64(const uint8_t *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	    (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
	    (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static void
siphash_init(struct siphash *s, const uint8_t k[16])
{
	uint64_t k0 = siphash_le64(k), k1 = siphash_le64(k + 8);

	s->v0 = 0x736f6d6570736575ULL ^ k0;
	s->v1 = 0x646f72616e646f6dULL ^ k1;
	s->v2 = 0x6c7967656e657261ULL ^ k0;
	s->v3 = 0x7465646279746573ULL ^ k1;
	s->tail = 0;
	s->ntail = 0;
	s->total = 0;
}

static void
siphash_word(struct siphash *s, uint64_t m)
{
	s->v3 ^= m;
	siphash_round(s);
	siphash_round(s);
	s->v0 ^= m;
}

static void
siphash_update(struct siphash *s, const void *data, size_t len)
{
	const uint8_t *p = data;

	s->total += len;
	while (len > 0 && s->ntail > 0) {
		s->tail |= (uint64_t)*p++ << (8 * s->ntail);
		len--;
		if (++s->ntail == 8) {
			siphash_word(s, s->tail);
			s->tail = 0;
			s->ntail = 0;
		}
	}
	for (; len >= 8; p += 8, len -= 8)
		siphash_word(s, siphash_le64(p));
	while (len-- > 0)
		s->tail |= (uint64_t)*p++ << (8 * s->ntail++);
}

static uint64_t
siphash_final(struct siphash *s)
{
	uint64_t h;

	siphash_word(s, s->tail | (uint64_t)(s->total & 0xff) << 56);
	s->v2 ^= 0xff;
	siphash_round(s);
	siphash_round(s);
	siphash_round(s);
	siphash_round(s);
	h = s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
	explicit_bzero(s, sizeof(*s));  /* the state has seen a password */
	return h;
}

uint64_t
cache_siphash(const uint8_t k[16], const void *data, size_t len)
{
	struct siphash s;

	siphash_init(&s, k);
	siphash_update(&s, data, len);
	return siphash_final(&s);
}

/* ------------------------------------------------------------ identities */

struct cache_ident *
cache_ident_new(const char *user, size_t ulen, const char *const *groups, size_t ngroups)
{
	struct cache_ident *id;
	const char **gv;
	size_t i, size, gl;
	char *p;

	if (ngroups > 65536)
		return NULL;
	size = sizeof(*id) + (ngroups + 1) * sizeof(char *) + ulen + 1;
	for (i = 0; i < ngroups; i++) {
		gl = strlen(groups[i]);
		if (gl > 65536)
			return NULL;
		size += gl + 1;
	}
	if ((id = malloc(size)) == NULL)
		return NULL;
	gv = (const char **)(id + 1);
	p = (char *)(gv + ngroups + 1);
	memcpy(p, user, ulen);
	p[ulen] = '\0';
	id->user = p;
	p += ulen + 1;
	for (i = 0; i < ngroups; i++) {
		gl = strlen(groups[i]);
		memcpy(p, groups[i], gl + 1);
		gv[i] = p;
		p += gl + 1;
	}
	gv[ngroups] = NULL;
	id->groups = gv;
	id->ngroups = ngroups;
	id->refs = 1;
	return id;
}

struct cache_ident *
cache_ident_ref(struct cache_ident *id)
{
	__atomic_add_fetch(&id->refs, 1, __ATOMIC_RELAXED);
	return id;
}

void
cache_ident_unref(struct cache_ident *id)
{
	if (id != NULL && __atomic_sub_fetch(&id->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(id);
}

/* ------------------------------------------------------------ the table */

static uint64_t
cache_monotonic_ms(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct auth_cache *
cache_new(size_t max_entries, char **err)
{
	struct auth_cache *c;
	uint8_t seed[32];
	size_t n = 16, got = 0;
	ssize_t r;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto nomem;
	/* Keys first: a cache with predictable keys must not exist at all. */
	while (got < sizeof(seed)) {
		r = getrandom(seed + got, sizeof(seed) - got, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			if (asprintf(err, "getrandom: %s", strerror(errno)) == -1)
				*err = NULL;
			free(c);
			return NULL;
		}
		got += (size_t)r;
	}
	memcpy(c->k0, seed, 16);
	memcpy(c->k1, seed + 16, 16);
	explicit_bzero(seed, sizeof(seed));

	if (max_entries < 1)
		max_entries = 1;
	while (n < max_entries && n < ((size_t)1 << 30))
		n <<= 1;
	if ((c->buckets = calloc(n, sizeof(*c->buckets))) == NULL) {
		free(c);
		goto nomem;
	}
	c->mask = n - 1;
	c->max = max_entries;
	TAILQ_INIT(&c->ok);
	TAILQ_INIT(&c->failed);
	c->now_ms = cache_monotonic_ms;
	pthread_mutex_init(&c->mtx, NULL);
	return c;
nomem:
	*err = strdup("out of memory");
	return NULL;
}

static void
cache_drop(struct auth_cache *c, struct cache_entry *e)
{
	LIST_REMOVE(e, chain);
	TAILQ_REMOVE(e->verdict == CACHE_OK ? &c->ok : &c->failed, e, order);
	cache_ident_unref(e->ident);
	free(e);
	c->count--;
}

void
cache_free(struct auth_cache *c)
{
	struct cache_entry *e;

	if (c == NULL)
		return;
	while ((e = TAILQ_FIRST(&c->ok)) != NULL)
		cache_drop(c, e);
	while ((e = TAILQ_FIRST(&c->failed)) != NULL)
		cache_drop(c, e);
	pthread_mutex_destroy(&c->mtx);
	free(c->buckets);
	explicit_bzero(c, sizeof(*c));
	free(c);
}

void
cache_key(const struct auth_cache *c, const char *user, size_t ulen, const char *pass,
    size_t plen, struct cache_key *key)
{
	struct siphash s;
	uint8_t lenbuf[8];
	size_t i;

	/* The length prefix makes (user, pass) -> bytes one-to-one. */
	for (i = 0; i < 8; i++)
		lenbuf[i] = (uint8_t)((uint64_t)ulen >> (8 * i));
	siphash_init(&s, c->k0);
	siphash_update(&s, lenbuf, 8);
	siphash_update(&s, user, ulen);
	siphash_update(&s, pass, plen);
	key->h[0] = siphash_final(&s);
	siphash_init(&s, c->k1);
	siphash_update(&s, lenbuf, 8);
	siphash_update(&s, user, ulen);
	siphash_update(&s, pass, plen);
	key->h[1] = siphash_final(&s);
}

static struct cache_entry *
cache_find(struct auth_cache *c, const struct cache_key *key, const char *user, size_t ulen)
{
	struct cache_entry *e;

	LIST_FOREACH(e, &c->buckets[key->h[0] & c->mask], chain)
		if (e->key.h[0] == key->h[0] && e->key.h[1] == key->h[1] &&
		    e->ulen == ulen && memcmp(e->user, user, ulen) == 0)
			return e;
	return NULL;
}

/* Pop expired heads (each FIFO is in expiry order). */
static void
cache_purge(struct auth_cache *c, uint64_t now)
{
	struct cache_entry *e;

	while ((e = TAILQ_FIRST(&c->failed)) != NULL && e->expires <= now)
		cache_drop(c, e);
	while ((e = TAILQ_FIRST(&c->ok)) != NULL && e->expires <= now)
		cache_drop(c, e);
}

enum cache_verdict
cache_lookup(struct auth_cache *c, const struct cache_key *key, const char *user,
    size_t ulen, struct cache_ident **ident)
{
	struct cache_entry *e;
	enum cache_verdict v = CACHE_MISS;
	uint64_t now;

	*ident = NULL;
	pthread_mutex_lock(&c->mtx);
	now = c->now_ms(c->now_arg);
	if ((e = cache_find(c, key, user, ulen)) != NULL) {
		if (e->expires <= now)
			cache_drop(c, e);
		else {
			v = e->verdict;
			*ident = cache_ident_ref(e->ident);
		}
	}
	pthread_mutex_unlock(&c->mtx);
	return v;
}

void
cache_put(struct auth_cache *c, const struct cache_key *key, const char *user, size_t ulen,
    enum cache_verdict verdict, struct cache_ident *ident, int ttl)
{
	struct cache_entry *e, *old;
	uint64_t now;

	if (ttl <= 0 || (verdict != CACHE_OK && verdict != CACHE_FAILED))
		return;
	if ((e = malloc(sizeof(*e) + ulen + 1)) == NULL)
		return;                 /* not remembering is always safe */
	e->key = *key;
	e->verdict = verdict;
	e->ident = cache_ident_ref(ident);
	e->ulen = ulen;
	memcpy(e->user, user, ulen);
	e->user[ulen] = '\0';

	pthread_mutex_lock(&c->mtx);
	now = c->now_ms(c->now_arg);
	e->expires = now + (uint64_t)ttl * 1000;
	if ((old = cache_find(c, key, user, ulen)) != NULL)
		cache_drop(c, old);
	cache_purge(c, now);
	if (c->count >= c->max) {
		old = TAILQ_FIRST(&c->failed);
		if (old == NULL)
			old = TAILQ_FIRST(&c->ok);
		if (old != NULL)
			cache_drop(c, old);
	}
	LIST_INSERT_HEAD(&c->buckets[key->h[0] & c->mask], e, chain);
	TAILQ_INSERT_TAIL(verdict == CACHE_OK ? &c->ok : &c->failed, e, order);
	c->count++;
	pthread_mutex_unlock(&c->mtx);
}

size_t
cache_count(struct auth_cache *c)
{
	size_t n;

	pthread_mutex_lock(&c->mtx);
	n = c->count;
	pthread_mutex_unlock(&c->mtx);
	return n;
}

void
cache_set_clock(struct auth_cache *c, uint64_t (*now_ms)(void *), void *arg)
{
	pthread_mutex_lock(&c->mtx);
	c->now_ms = now_ms != NULL ? now_ms : cache_monotonic_ms;
	c->now_arg = now_ms != NULL ? arg : NULL;
	pthread_mutex_unlock(&c->mtx);
}
