/*
 * throttle — counts a minute at a time, per key, in bounded memory.
 *
 * auth_fail_per_client and auth_fail_per_user: how many failed
 * authentications one client address, or one user name, may cause in a
 * minute.  A key's window opens with its first count and lasts
 * THROTTLE_WINDOW seconds; once its count reaches the limit the key is
 * blocked until the window closes.  The table has a fixed number of slots:
 * a new key takes a free or expired slot near its hash, else evicts the
 * oldest window there (the one closest to expiring anyway), so memory never
 * grows and a forgotten key is only ever let through early, never locked
 * out.  Pure apart from its mutex (time is passed in), thread-safe.
 */
#ifndef EGRESSD_AUTH_THROTTLE_H
#define EGRESSD_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define THROTTLE_WINDOW 60          /* seconds */

struct throttle;

/* slots is rounded up to a power of two (at least 16); fold_case makes keys
 * ASCII case-insensitive (user names: the directory compares them so).
 * NULL if out of memory. */
struct throttle *throttle_new(size_t slots, bool fold_case);
void throttle_free(struct throttle *);

/* Count one for key at now (seconds, any monotonic clock).  Returns the
 * key's count in its window after this one. */
unsigned throttle_add(struct throttle *, const char *key, size_t len, int64_t now);

/* Seconds until key is below limit again (0: it is below now, or limit is 0). */
int throttle_check(struct throttle *, const char *key, size_t len, unsigned limit,
    int64_t now);

/*
 * throttle_check and, if below limit, throttle_add, as one step: returns 0
 * and sets *stamp (the window, for throttle_refund) when counted, else the
 * seconds to wait.  With limit 0 nothing is counted and 0 is returned.
 */
int throttle_take(struct throttle *, const char *key, size_t len, unsigned limit,
    int64_t now, int64_t *stamp);

/* Take back a count of throttle_take, if its window is still the key's. */
void throttle_refund(struct throttle *, const char *key, size_t len, int64_t stamp);

/* The key's count in its current window (for tests and status). */
unsigned throttle_get(struct throttle *, const char *key, size_t len, int64_t now);

#endif
