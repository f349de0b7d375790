/*
 * cache — the authenticator's memory of recent answers: successes (with the
 * identity) for auth_cache_ttl, failures for auth_negative_ttl, keyed by the
 * user name as given and a keyed hash of the password.  Thread-safe.
 */
#ifndef EGRESSD_AUTH_CACHE_H
#define EGRESSD_AUTH_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct auth_cache;

/*
 * An identity as handed to callers: immutable once built, shared by
 * reference count between cache entries, pending requests and the result a
 * loop is currently showing.  For a failure, user is the name as given and
 * there are no groups.
 */
struct cache_ident {
	unsigned int refs;              /* atomic */
	const char *user;
	const char *const *groups;
	size_t ngroups;
};

/* Build one in a single allocation; NULL on ENOMEM or absurd sizes.  refs = 1. */
struct cache_ident *cache_ident_new(const char *user, size_t ulen,
    const char *const *groups, size_t ngroups);
struct cache_ident *cache_ident_ref(struct cache_ident *);
void cache_ident_unref(struct cache_ident *);

/* 128 bits of keyed hash over (user, password): what the cache keeps instead. */
struct cache_key {
	uint64_t h[2];
};

enum cache_verdict {
	CACHE_MISS,
	CACHE_OK,                       /* a success not yet expired */
	CACHE_FAILED,                   /* a failure not yet expired */
};

/* max_entries bounds the table (>= 1).  Keys come from getrandom(2). */
struct auth_cache *cache_new(size_t max_entries, char **err);
void cache_free(struct auth_cache *);

/* The key for (user, pass); the same cache always gives the same key. */
void cache_key(const struct auth_cache *, const char *user, size_t ulen,
    const char *pass, size_t plen, struct cache_key *);

/* Look up; on a hit *ident gets a new reference the caller must drop. */
enum cache_verdict cache_lookup(struct auth_cache *, const struct cache_key *,
    const char *user, size_t ulen, struct cache_ident **ident);

/*
 * Remember verdict (CACHE_OK or CACHE_FAILED) with ident for ttl seconds
 * (<= 0: not at all), replacing any entry of the same key.  Takes its own
 * reference on ident.  A full table evicts failures before successes, the
 * oldest first, so a flood of wrong passwords cannot flush known users.
 */
void cache_put(struct auth_cache *, const struct cache_key *, const char *user,
    size_t ulen, enum cache_verdict verdict, struct cache_ident *ident, int ttl);

/* Entries held now (expired ones not yet purged included). */
size_t cache_count(struct auth_cache *);

/* Tests: replace the monotonic clock (milliseconds).  NULL restores it. */
void cache_set_clock(struct auth_cache *, uint64_t (*now_ms)(void *), void *arg);

/* SipHash-2-4 of data[0..len) under key k (exposed for the unit test vectors). */
uint64_t cache_siphash(const uint8_t k[16], const void *data, size_t len);

#endif
