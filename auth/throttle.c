/*
 * throttle — fixed one-minute windows in a fixed open-addressed table.
 *
 * A key is reduced to a 64-bit hash under a per-table random seed; the
 * table stores only that, so a long user name costs nothing and no name is
 * kept in memory.  Two names with the same hash share a count: that can
 * only throttle a name early, which anybody can do to any name by failing
 * with it, so it gives nothing away (and the seed makes it improbable).
 *
 * A key lives in one of THROTTLE_PROBE slots after its home slot.  Adding a
 * key that is not there takes the first free or expired slot of those, else
 * the one whose window opened first.  Every operation is one short scan
 * under the table's mutex; callers on any thread.
 */
#include "auth/throttle.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/random.h>

#define THROTTLE_PROBE 8

struct slot {
	uint64_t h;
	int64_t start;                  /* window opened at */
	unsigned count;
	bool used;
};

struct throttle {
	pthread_mutex_t mtx;
	struct slot *slots;
	size_t mask;
	uint64_t seed;
	bool fold;
};

struct throttle *
throttle_new(size_t slots, bool fold_case)
{
	struct throttle *t;
	size_t n = 16;

	while (n < slots && n < ((size_t)1 << 24))
		n <<= 1;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if ((t->slots = calloc(n, sizeof(*t->slots))) == NULL) {
		free(t);
		return NULL;
	}
	t->mask = n - 1;
	t->fold = fold_case;
	if (getrandom(&t->seed, sizeof(t->seed), 0) != (ssize_t)sizeof(t->seed))
		t->seed = (uint64_t)(uintptr_t)t ^ 0x9e3779b97f4a7c15ULL;
	pthread_mutex_init(&t->mtx, NULL);
	return t;
}

void
throttle_free(struct throttle *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->mtx);
	free(t->slots);
	free(t);
}

/* FNV-1a over the (folded) bytes from a seeded basis, then a full mix. */
static uint64_t
throttle_hash(const struct throttle *t, const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ t->seed;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)key[i];

		if (t->fold && ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		h = (h ^ ch) * 0x100000001b3ULL;
	}
	h ^= (uint64_t)len;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

static bool
slot_live(const struct slot *s, int64_t now)
{
	return s->used && now - s->start < THROTTLE_WINDOW && now >= s->start;
}

/* The key's live slot, or NULL (mutex held). */
static struct slot *
throttle_find(struct throttle *t, uint64_t h, int64_t now)
{
	struct slot *s;
	size_t i;

	for (i = 0; i < THROTTLE_PROBE; i++) {
		s = &t->slots[(h + i) & t->mask];
		if (s->used && s->h == h)
			return slot_live(s, now) ? s : NULL;
	}
	return NULL;
}

/* The key's slot with a live window, made if need be (mutex held). */
static struct slot *
throttle_slot(struct throttle *t, uint64_t h, int64_t now)
{
	struct slot *s, *pick = NULL;
	size_t i;

	for (i = 0; i < THROTTLE_PROBE; i++) {
		s = &t->slots[(h + i) & t->mask];
		if (s->used && s->h == h) {
			pick = s;
			break;
		}
		if (!slot_live(s, now)) {
			if (pick == NULL || slot_live(pick, now))
				pick = s;
		} else if (pick == NULL || (slot_live(pick, now) && s->start < pick->start))
			pick = s;
	}
	if (pick->h != h || !slot_live(pick, now)) {
		pick->h = h;
		pick->used = true;
		pick->start = now;
		pick->count = 0;
	}
	return pick;
}

static int
retry_after(const struct slot *s, int64_t now)
{
	int64_t left = s->start + THROTTLE_WINDOW - now;

	return left < 1 ? 1 : (int)left;
}

unsigned
throttle_add(struct throttle *t, const char *key, size_t len, int64_t now)
{
	uint64_t h = throttle_hash(t, key, len);
	struct slot *s;
	unsigned n;

	pthread_mutex_lock(&t->mtx);
	s = throttle_slot(t, h, now);
	if (s->count < ~0U)
		s->count++;
	n = s->count;
	pthread_mutex_unlock(&t->mtx);
	return n;
}

int
throttle_check(struct throttle *t, const char *key, size_t len, unsigned limit, int64_t now)
{
	uint64_t h;
	struct slot *s;
	int wait = 0;

	if (limit == 0)
		return 0;
	h = throttle_hash(t, key, len);
	pthread_mutex_lock(&t->mtx);
	if ((s = throttle_find(t, h, now)) != NULL && s->count >= limit)
		wait = retry_after(s, now);
	pthread_mutex_unlock(&t->mtx);
	return wait;
}

int
throttle_take(struct throttle *t, const char *key, size_t len, unsigned limit, int64_t now,
    int64_t *stamp)
{
	uint64_t h;
	struct slot *s;
	int wait = 0;

	if (limit == 0)
		return 0;
	h = throttle_hash(t, key, len);
	pthread_mutex_lock(&t->mtx);
	s = throttle_slot(t, h, now);
	if (s->count >= limit)
		wait = retry_after(s, now);
	else {
		s->count++;
		*stamp = s->start;
	}
	pthread_mutex_unlock(&t->mtx);
	return wait;
}

void
throttle_refund(struct throttle *t, const char *key, size_t len, int64_t stamp)
{
	uint64_t h = throttle_hash(t, key, len);
	struct slot *s;
	size_t i;

	pthread_mutex_lock(&t->mtx);
	for (i = 0; i < THROTTLE_PROBE; i++) {
		s = &t->slots[(h + i) & t->mask];
		if (s->used && s->h == h) {
			if (s->start == stamp && s->count > 0)
				s->count--;
			break;
		}
	}
	pthread_mutex_unlock(&t->mtx);
}

unsigned
throttle_get(struct throttle *t, const char *key, size_t len, int64_t now)
{
	uint64_t h = throttle_hash(t, key, len);
	struct slot *s;
	unsigned n;

	pthread_mutex_lock(&t->mtx);
	n = (s = throttle_find(t, h, now)) != NULL ? s->count : 0;
	pthread_mutex_unlock(&t->mtx);
	return n;
}
