/*
 * stats — per-worker counters, histograms and the registry of open tunnels.
 *
 * The difficulty is reading, from the main thread, numbers that worker
 * threads change all the time, without making the workers pay for it.  Each
 * counter has exactly one writer (its worker), so an increment is a relaxed
 * load plus a relaxed store: no lock, no locked read-modify-write, and the
 * reader still gets a whole 64-bit value (never a torn one).  The sum over
 * workers is not one instant, but every counter in it is monotonic.
 *
 * Bytes of open tunnels are not counted per read: the registry keeps a
 * pointer to each tunnel's relay and reads its counters when asked.  When a
 * tunnel ends, its final bytes move from "live" to "finished" under the
 * registry mutex, in the same critical section that unlinks it, so a reader
 * holding the mutex sees each tunnel's bytes exactly once and the byte
 * counters never go backwards.
 */
#include "gateway/stats.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "gateway/relay.h"

#define STATS_REASON_NAME(name) #name,
const char *const stats_reason_names[STATS_NREASONS] = { STATS_REASONS(STATS_REASON_NAME) };
#undef STATS_REASON_NAME

static const int64_t hist_bounds[STATS_HIST_NBOUNDS] = STATS_HIST_BOUNDS_US;


struct hist {
	_Atomic uint64_t buckets[STATS_HIST_NBOUNDS + 1];
	_Atomic uint64_t sum_us;
};

/*
 * A listed tunnel.  Its strings are packed after the entry, each with its
 * NUL, in the order of tunnel_strings(): a tunnel costs the bytes of its
 * names, not the 900 of struct stats_tunnel's buffers, for as long as it is open.
 */
struct stats_tunnel_entry {
	TAILQ_ENTRY(stats_tunnel_entry) entry;
	const struct relay *relay;      /* read live when listed */
	int client_port;
	uint16_t port;
	int64_t start_ms;
	char strings[];                 /* id, user, client_ip, host, dst_ip, sni */
};

#define TUNNEL_NSTRINGS 6

/* The string fields of t, in packing order, with their buffer sizes. */
static void
tunnel_strings(struct stats_tunnel *t, char **field, size_t *size)
{
	field[0] = t->id;        size[0] = sizeof(t->id);
	field[1] = t->user;      size[1] = sizeof(t->user);
	field[2] = t->client_ip; size[2] = sizeof(t->client_ip);
	field[3] = t->host;      size[3] = sizeof(t->host);
	field[4] = t->dst_ip;    size[4] = sizeof(t->dst_ip);
	field[5] = t->sni;       size[5] = sizeof(t->sni);
}

/* Unpack e into t (the byte counts are the caller's). */
static void
tunnel_unpack(const struct stats_tunnel_entry *e, struct stats_tunnel *t)
{
	char *field[TUNNEL_NSTRINGS];
	size_t size[TUNNEL_NSTRINGS], i, len;
	const char *p = e->strings;

	memset(t, 0, sizeof(*t));
	tunnel_strings(t, field, size);
	for (i = 0; i < TUNNEL_NSTRINGS; i++) {
		len = strlen(p);
		memcpy(field[i], p, len + 1);   /* packed from a field of this size */
		p += len + 1;
	}
	t->client_port = e->client_port;
	t->port = e->port;
	t->start_ms = e->start_ms;
}

struct stats {
	_Atomic uint64_t conns_accepted;
	_Atomic uint64_t conns_closed;
	_Atomic uint64_t proxy_refused;
	_Atomic uint64_t client_aborted;
	_Atomic uint64_t tunnels_total;
	_Atomic uint64_t tunnels_ended;
	_Atomic uint64_t records_tunnel;
	_Atomic uint64_t records_request;
	_Atomic uint64_t bytes_up;             /* finished only; open tunnels are read live */
	_Atomic uint64_t bytes_down;
	_Atomic uint64_t decisions[STATS_NREASONS];
	struct hist setup;
	struct hist ldap;

	pthread_mutex_t mtx;            /* the registry, and moving a tunnel's bytes */
	TAILQ_HEAD(, stats_tunnel_entry) tunnels;
};

/* Single writer: a plain add, made visible to readers without a lock. */
static void
bump(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	    memory_order_relaxed);
}

static uint64_t
get(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

struct stats *
stats_new(void)
{
	struct stats *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	pthread_mutex_init(&s->mtx, NULL);
	TAILQ_INIT(&s->tunnels);
	return s;
}

void
stats_free(struct stats *s)
{
	struct stats_tunnel_entry *e;

	if (s == NULL)
		return;
	while ((e = TAILQ_FIRST(&s->tunnels)) != NULL) {
		TAILQ_REMOVE(&s->tunnels, e, entry);
		free(e);
	}
	pthread_mutex_destroy(&s->mtx);
	free(s);
}

enum stats_reason
stats_reason_index(const char *reason)
{
	size_t i;

	if (reason == NULL)
		return STATS_REASON_ok;
	for (i = 0; i < STATS_REASON_other; i++)
		if (strcmp(reason, stats_reason_names[i]) == 0)
			return (enum stats_reason)i;
	return STATS_REASON_other;
}

void
stats_conn_open(struct stats *s)
{
	bump(&s->conns_accepted, 1);
}

void
stats_conn_close(struct stats *s)
{
	bump(&s->conns_closed, 1);
}

void
stats_proxy_refused(struct stats *s)
{
	bump(&s->proxy_refused, 1);
}

void
stats_record(struct stats *s, bool tunnel, const char *reason, uint64_t up, uint64_t down,
    bool registered, bool client_left)
{
	bump(tunnel ? &s->records_tunnel : &s->records_request, 1);
	if (client_left)
		bump(&s->client_aborted, 1);
	else
		bump(&s->decisions[stats_reason_index(reason)], 1);
	if (!registered) {
		bump(&s->bytes_up, up);
		bump(&s->bytes_down, down);
	}
}

static void
hist_observe(struct hist *h, int64_t us)
{
	size_t i;

	if (us < 0)
		us = 0;
	for (i = 0; i < STATS_HIST_NBOUNDS && us > hist_bounds[i]; i++)
		;
	bump(&h->buckets[i], 1);
	bump(&h->sum_us, (uint64_t)us);
}

void
stats_setup_time(struct stats *s, int64_t us)
{
	hist_observe(&s->setup, us);
}

void
stats_ldap_time(struct stats *s, int64_t us)
{
	hist_observe(&s->ldap, us);
}

struct stats_tunnel_entry *
stats_tunnel_add(struct stats *s, const struct stats_tunnel *info, const struct relay *relay)
{
	struct stats_tunnel copy = *info;
	struct stats_tunnel_entry *e;
	char *field[TUNNEL_NSTRINGS], *p;
	size_t size[TUNNEL_NSTRINGS], len[TUNNEL_NSTRINGS], total = 0, i;

	tunnel_strings(&copy, field, size);
	for (i = 0; i < TUNNEL_NSTRINGS; i++) {
		len[i] = strnlen(field[i], size[i] - 1);
		total += len[i] + 1;
	}
	if ((e = malloc(sizeof(*e) + total)) == NULL)
		return NULL;
	for (i = 0, p = e->strings; i < TUNNEL_NSTRINGS; i++) {
		memcpy(p, field[i], len[i]);
		p[len[i]] = '\0';
		p += len[i] + 1;
	}
	e->client_port = info->client_port;
	e->port = info->port;
	e->start_ms = info->start_ms;
	e->relay = relay;
	pthread_mutex_lock(&s->mtx);
	TAILQ_INSERT_TAIL(&s->tunnels, e, entry);
	bump(&s->tunnels_total, 1);
	pthread_mutex_unlock(&s->mtx);
	return e;
}

void
stats_tunnel_remove(struct stats *s, struct stats_tunnel_entry *e, uint64_t up, uint64_t down)
{
	pthread_mutex_lock(&s->mtx);
	TAILQ_REMOVE(&s->tunnels, e, entry);
	bump(&s->bytes_up, up);
	bump(&s->bytes_down, down);
	bump(&s->tunnels_ended, 1);
	pthread_mutex_unlock(&s->mtx);
	free(e);
}

static void
hist_sum(struct hist *h, struct stats_hist *out)
{
	size_t i;

	for (i = 0; i <= STATS_HIST_NBOUNDS; i++)
		out->buckets[i] += get(&h->buckets[i]);
	out->sum_us += get(&h->sum_us);
}

void
stats_sum(struct stats *s, struct stats_totals *t)
{
	struct stats_tunnel_entry *e;
	uint64_t accepted, closed;
	size_t i;

	/* Closed before accepted: a connection accepted in between can only
	 * make "open" larger, never negative. */
	closed = get(&s->conns_closed);
	accepted = get(&s->conns_accepted);
	t->conns_accepted += accepted;
	t->conns_open += accepted >= closed ? accepted - closed : 0;
	t->proxy_refused += get(&s->proxy_refused);
	t->client_aborted += get(&s->client_aborted);
	t->records_tunnel += get(&s->records_tunnel);
	t->records_request += get(&s->records_request);
	for (i = 0; i < STATS_NREASONS; i++)
		t->decisions[i] += get(&s->decisions[i]);
	hist_sum(&s->setup, &t->setup);
	hist_sum(&s->ldap, &t->ldap);

	pthread_mutex_lock(&s->mtx);
	t->tunnels_total += get(&s->tunnels_total);
	t->tunnels_open += get(&s->tunnels_total) - get(&s->tunnels_ended);
	t->bytes_up += get(&s->bytes_up);
	t->bytes_down += get(&s->bytes_down);
	TAILQ_FOREACH(e, &s->tunnels, entry) {
		t->bytes_up += relay_bytes_up(e->relay);
		t->bytes_down += relay_bytes_down(e->relay);
	}
	pthread_mutex_unlock(&s->mtx);
}

int
stats_tunnels(struct stats *s, struct stats_tunnel **list, size_t *n)
{
	struct stats_tunnel_entry *e;
	struct stats_tunnel *l;
	size_t count = 0;
	int rc = 0;

	pthread_mutex_lock(&s->mtx);
	TAILQ_FOREACH(e, &s->tunnels, entry)
		count++;
	if (count > 0) {
		l = reallocarray(*list, *n + count, sizeof(**list));
		if (l == NULL)
			rc = -1;
		else {
			*list = l;
			TAILQ_FOREACH(e, &s->tunnels, entry) {
				tunnel_unpack(e, &l[*n]);
				l[*n].bytes_up = relay_bytes_up(e->relay);
				l[*n].bytes_down = relay_bytes_down(e->relay);
				(*n)++;
			}
		}
	}
	pthread_mutex_unlock(&s->mtx);
	return rc;
}
