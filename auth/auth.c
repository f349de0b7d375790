/*
 * auth — the authenticator: header to identity, without ever blocking an
 * event loop.
 *
 * auth_begin() runs on a gateway loop.  It parses the header (basic.c),
 * hashes the credentials once (cache.c) and looks them up; a hit is
 * answered at once, which is the path every warm request takes, so it costs
 * one keyed hash, one locked lookup and no allocation.  A miss becomes a job
 * for the pool of auth threads, each of which does the directory exchange
 * synchronously with its own libldap connections (ldap.c).  The result goes
 * back to the requesting loop through that loop's auth_loop: a completion
 * list under a mutex and an eventfd watched by an event on the loop's base.
 * The auth threads never touch libevent: the gateway's bases are created
 * without locking, and write(2) on an eventfd is the only crossing.
 *
 * The difficulties:
 *  - Coalescing.  Jobs pending or running are indexed by their cache key;
 *    a request whose credentials already have a job joins its waiter list,
 *    so a burst of new connections with the same new credentials costs one
 *    exchange.  The result is cached before the job leaves the index (both
 *    under the pool mutex), so a later request finds one or the other.
 *  - Cancellation.  A request is always in exactly one place: a job's waiter
 *    list (while req->job is set) or its loop's completion list.  Moving it
 *    from the first to the second happens under the pool mutex, and
 *    auth_cancel() takes the same mutex, so it always finds and unlinks the
 *    request; the job goes on and its result is still cached.  Lock order:
 *    pool mutex, then a loop's mutex; the cache mutex is a leaf.
 *  - Secrets.  A job keeps a copy of the password until its exchange is
 *    done, then wipes it; nothing else ever holds one.
 *  - Overload.  At most AUTH_QUEUE_MAX distinct jobs wait; beyond that a
 *    request is answered AUTH_UNAVAILABLE (503) at once instead of growing a
 *    queue a dead directory would never drain.  One client address may hold
 *    at most AUTH_CLIENT_QUEUE_MAX of them (a "holder" counts its jobs,
 *    under the pool mutex), so a single address flooding new credentials at
 *    a slow directory gets 429s while the others still get their turn.
 *  - Guessing.  Failures are counted per client address and per user name
 *    (throttle.c, each table behind its own leaf mutex).  A user's count is
 *    taken when its exchange is queued and given back unless the directory
 *    said no, so a burst of concurrent guesses for one name cannot get more
 *    than auth_fail_per_user binds past the check; a client's count is
 *    added when its exchange fails (its concurrency is the holder's bound).
 */
#include "auth/auth.h"

#include <sys/eventfd.h>
#include <sys/queue.h>

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/basic.h"
#include "auth/cache.h"
#include "auth/ldap.h"
#include "auth/throttle.h"

#define AUTH_THREADS_DEFAULT	4
#define AUTH_THREADS_MAX	64
#define AUTH_QUEUE_MAX		4096    /* distinct exchanges waiting for a thread */
#define AUTH_CACHE_MAX		65536   /* cache entries, successes and failures */
#define AUTH_PENDING_BUCKETS	256
#define AUTH_HOLDER_BUCKETS	256
#define AUTH_CLIENT_MAX		64      /* longest client address kept (IPv6 text is 45) */
#define AUTH_THROTTLE_SLOTS	16384   /* per table: keys remembered for their minute */

/* One client address with exchanges queued or running (pool mutex). */
struct auth_holder {
	LIST_ENTRY(auth_holder) link;
	size_t njobs;
	char client[AUTH_CLIENT_MAX];
};

struct auth_job {
	TAILQ_ENTRY(auth_job) queue;    /* a->queue, until a thread takes it */
	LIST_ENTRY(auth_job) pending;   /* a->pending, until its result is out */
	struct cache_key key;
	char *user;
	size_t ulen;
	char *pass;                     /* wiped and freed after the exchange */
	size_t plen;
	TAILQ_HEAD(, auth_req) waiters;
	struct auth_holder *holder;     /* the client that asked first, NULL if unknown */
	bool user_taken;                /* a per-user count is held (user_stamp its window) */
	int64_t user_stamp;
};

struct auth_req {
	TAILQ_ENTRY(auth_req) link;     /* job->waiters, then loop->done */
	struct auth_loop *loop;
	struct auth_job *job;           /* set while on job->waiters */
	auth_cb *cb;
	void *arg;
	enum auth_status status;
	struct cache_ident *ident;      /* AUTH_OK / AUTH_FAILED (a throttled answer is never
	                                   delivered: it is always given at once) */
};

struct auth_loop {
	struct auth *auth;
	struct event_base *base;
	int efd;
	struct event *ev;
	pthread_mutex_t mtx;
	TAILQ_HEAD(, auth_req) done;    /* answered, callbacks not yet run */
	struct cache_ident *shown;      /* backs the last synchronous answer */
};

struct auth {
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	TAILQ_HEAD(, auth_job) queue;
	size_t nqueued;
	LIST_HEAD(, auth_job) pending[AUTH_PENDING_BUCKETS];
	LIST_HEAD(, auth_holder) holders[AUTH_HOLDER_BUCKETS];
	bool stopping;
	pthread_t *threads;
	int nthreads;

	struct auth_cache *cache;
	int cache_ttl, negative_ttl;
	struct auth_ldap *ldap;         /* NULL with a test exchange */
	auth_exchange_fn *exchange;
	void *exchange_arg;
	auth_log_fn *log;
	struct throttle *by_client, *by_user;
	unsigned fail_per_client, fail_per_user;        /* 0 = no limit */

	unsigned long long hits, misses, errors, exchanges, throttled;  /* atomic */
};

static const char *const auth_nogroups[1] = { NULL };

static int64_t
auth_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

static void
auth_log(struct auth *a, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
auth_log(struct auth *a, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (a->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	a->log(level, buf);
}

static void
auth_count(unsigned long long *n)
{
	__atomic_add_fetch(n, 1, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------ holders */

static size_t
auth_holder_bucket(const char *client)
{
	uint32_t h = 2166136261u;

	for (; *client != '\0'; client++)
		h = (h ^ (unsigned char)*client) * 16777619u;
	return h % AUTH_HOLDER_BUCKETS;
}

/* The client's holder, made if need be; NULL if out of memory (pool mutex). */
static struct auth_holder *
auth_holder_get(struct auth *a, const char *client)
{
	struct auth_holder *ho;
	size_t b = auth_holder_bucket(client);

	LIST_FOREACH(ho, &a->holders[b], link)
		if (strcmp(ho->client, client) == 0)
			return ho;
	if ((ho = calloc(1, sizeof(*ho))) == NULL)
		return NULL;
	snprintf(ho->client, sizeof(ho->client), "%s", client);
	LIST_INSERT_HEAD(&a->holders[b], ho, link);
	return ho;
}

/* A job of ho is done (pool mutex); the last one frees it. */
static void
auth_holder_put(struct auth_holder *ho)
{
	if (ho == NULL || --ho->njobs > 0)
		return;
	LIST_REMOVE(ho, link);
	free(ho);
}

/* ------------------------------------------------------------ jobs */

static void
auth_job_free(struct auth_job *job)
{
	if (job->pass != NULL)
		explicit_bzero(job->pass, job->plen);
	free(job->pass);
	free(job->user);
	free(job);
}

static struct auth_job *
auth_job_find(struct auth *a, const struct cache_key *key, const char *user, size_t ulen)
{
	struct auth_job *job;

	LIST_FOREACH(job, &a->pending[key->h[1] % AUTH_PENDING_BUCKETS], pending)
		if (job->key.h[0] == key->h[0] && job->key.h[1] == key->h[1] &&
		    job->ulen == ulen && memcmp(job->user, user, ulen) == 0)
			return job;
	return NULL;
}

/*
 * Hand a finished job's result to each waiter's loop (pool mutex held).
 * The eventfd write is what wakes the loop; it cannot block (EFD_NONBLOCK,
 * and the counter would need 2^64 writes to fill).
 */
static void
auth_job_deliver(struct auth_job *job, enum auth_status status, struct cache_ident *ident)
{
	struct auth_req *req;
	struct auth_loop *l;
	uint64_t one = 1;

	while ((req = TAILQ_FIRST(&job->waiters)) != NULL) {
		TAILQ_REMOVE(&job->waiters, req, link);
		req->job = NULL;
		req->status = status;
		req->ident = ident != NULL ? cache_ident_ref(ident) : NULL;
		l = req->loop;
		pthread_mutex_lock(&l->mtx);
		TAILQ_INSERT_TAIL(&l->done, req, link);
		pthread_mutex_unlock(&l->mtx);
		if (write(l->efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
			auth_log(l->auth, 0, "auth: eventfd write: %s", strerror(errno));
	}
}

/*
 * Count a finished exchange against its client and user (no mutex held):
 * a "no" counts for both (the user's count was taken when it was queued),
 * anything else gives the user's count back.  Reaching a limit is logged
 * once per window, not per refused request.
 */
static void
auth_job_account(struct auth *a, struct auth_job *job, enum auth_status status)
{
	int64_t now = auth_now();
	char esc[256];

	if (job->user_taken && status != AUTH_FAILED)
		throttle_refund(a->by_user, job->user, job->ulen, job->user_stamp);
	if (status != AUTH_FAILED)
		return;
	if (job->user_taken &&
	    throttle_get(a->by_user, job->user, job->ulen, now) == a->fail_per_user) {
		auth_escape(job->user, job->ulen, esc, sizeof(esc));
		auth_log(a, 0, "auth: user \"%s\" throttled: %u failed authentications "
		    "within %d s", esc, a->fail_per_user, THROTTLE_WINDOW);
	}
	if (job->holder != NULL && a->fail_per_client > 0 &&
	    throttle_add(a->by_client, job->holder->client, strlen(job->holder->client),
	    now) == a->fail_per_client)
		auth_log(a, 0, "auth: client %s throttled: %u failed authentications "
		    "within %d s", job->holder->client, a->fail_per_client, THROTTLE_WINDOW);
}

static void *
auth_thread(void *arg)
{
	struct auth *a = arg;
	struct auth_ldap_conn *lc = NULL;
	struct auth_job *job;
	struct cache_ident *ident;
	enum auth_status status;

	if (a->ldap != NULL && (lc = auth_ldap_conn_new(a->ldap)) == NULL)
		auth_log(a, 0, "auth: thread out of memory");
	pthread_mutex_lock(&a->mtx);
	for (;;) {
		while (!a->stopping && TAILQ_EMPTY(&a->queue))
			pthread_cond_wait(&a->cond, &a->mtx);
		if (a->stopping)
			break;
		job = TAILQ_FIRST(&a->queue);
		TAILQ_REMOVE(&a->queue, job, queue);
		a->nqueued--;
		pthread_mutex_unlock(&a->mtx);

		auth_count(&a->exchanges);
		ident = NULL;
		if (a->ldap == NULL)
			status = a->exchange(a->exchange_arg, job->user, job->ulen, job->pass,
			    job->plen, &ident);
		else if (lc != NULL)
			status = auth_ldap_check(lc, job->user, job->ulen, job->pass, job->plen,
			    &ident);
		else
			status = AUTH_UNAVAILABLE;
		explicit_bzero(job->pass, job->plen);
		if (status == AUTH_OK && ident == NULL)
			status = AUTH_UNAVAILABLE;      /* an exchange must name the user */
		if (status != AUTH_OK) {
			cache_ident_unref(ident);
			ident = NULL;
		}
		if (status == AUTH_FAILED)
			ident = cache_ident_new(job->user, job->ulen, NULL, 0);
		if (status == AUTH_UNAVAILABLE)
			auth_count(&a->errors);
		auth_job_account(a, job, status);

		pthread_mutex_lock(&a->mtx);
		if (status == AUTH_OK)
			cache_put(a->cache, &job->key, job->user, job->ulen, CACHE_OK, ident,
			    a->cache_ttl);
		else if (status == AUTH_FAILED && ident != NULL)
			cache_put(a->cache, &job->key, job->user, job->ulen, CACHE_FAILED,
			    ident, a->negative_ttl);
		LIST_REMOVE(job, pending);
		auth_holder_put(job->holder);
		auth_job_deliver(job, status, ident);
		cache_ident_unref(ident);
		auth_job_free(job);
	}
	pthread_mutex_unlock(&a->mtx);
	auth_ldap_conn_free(lc);
	return NULL;
}

/* ------------------------------------------------------------ life */

static struct auth *
auth_create(const struct auth_config *conf, struct auth_ldap *ldap, auth_exchange_fn *fn,
    void *fnarg, char **err)
{
	struct auth *a;
	sigset_t all, old;
	size_t i;
	int n, rc = 0;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		auth_ldap_free(ldap);
		*err = strdup("out of memory");
		return NULL;
	}
	pthread_mutex_init(&a->mtx, NULL);
	pthread_cond_init(&a->cond, NULL);
	TAILQ_INIT(&a->queue);
	for (i = 0; i < AUTH_PENDING_BUCKETS; i++)
		LIST_INIT(&a->pending[i]);
	for (i = 0; i < AUTH_HOLDER_BUCKETS; i++)
		LIST_INIT(&a->holders[i]);
	a->ldap = ldap;
	a->exchange = fn;
	a->exchange_arg = fnarg;
	a->log = conf->log;
	a->cache_ttl = conf->cache_ttl;
	a->negative_ttl = conf->negative_ttl;
	if ((a->cache = cache_new(AUTH_CACHE_MAX, err)) == NULL) {
		auth_free(a);
		return NULL;
	}
	a->fail_per_client = conf->fail_per_client > 0 ? (unsigned)conf->fail_per_client : 0;
	a->fail_per_user = conf->fail_per_user > 0 ? (unsigned)conf->fail_per_user : 0;
	if ((a->by_client = throttle_new(AUTH_THROTTLE_SLOTS, false)) == NULL ||
	    (a->by_user = throttle_new(AUTH_THROTTLE_SLOTS, true)) == NULL) {
		*err = strdup("out of memory");
		auth_free(a);
		return NULL;
	}
	n = conf->threads > 0 ? conf->threads : AUTH_THREADS_DEFAULT;
	if (n > AUTH_THREADS_MAX)
		n = AUTH_THREADS_MAX;
	if ((a->threads = calloc((size_t)n, sizeof(*a->threads))) == NULL) {
		*err = strdup("out of memory");
		auth_free(a);
		return NULL;
	}
	/*
	 * The threads start with every signal blocked: the daemon's handlers
	 * run on its own threads, and a SIGPIPE from a TLS write to a directory
	 * that went away stays pending instead of killing the process.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; a->nthreads < n; a->nthreads++) {
		if ((rc = pthread_create(&a->threads[a->nthreads], NULL, auth_thread, a)) != 0)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		if (asprintf(err, "auth threads: %s", strerror(rc)) == -1)
			*err = NULL;
		auth_free(a);
		return NULL;
	}
	return a;
}

struct auth *
auth_new(const struct auth_config *conf, char **err)
{
	struct auth_ldap *ldap;

	*err = NULL;
	if ((ldap = auth_ldap_new(conf, err)) == NULL)
		return NULL;
	return auth_create(conf, ldap, NULL, NULL, err);
}

struct auth *
auth_new_with_exchange(const struct auth_config *conf, auth_exchange_fn *fn, void *arg,
    char **err)
{
	*err = NULL;
	return auth_create(conf, NULL, fn, arg, err);
}

void
auth_free(struct auth *a)
{
	struct auth_job *job;
	struct auth_req *req;
	int i;

	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mtx);
	a->stopping = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->mtx);
	for (i = 0; i < a->nthreads; i++)
		pthread_join(a->threads[i], NULL);
	free(a->threads);
	/* Loops were freed first, so any waiter left here is an orphan. */
	while ((job = TAILQ_FIRST(&a->queue)) != NULL) {
		TAILQ_REMOVE(&a->queue, job, queue);
		LIST_REMOVE(job, pending);
		while ((req = TAILQ_FIRST(&job->waiters)) != NULL) {
			TAILQ_REMOVE(&job->waiters, req, link);
			free(req);
		}
		auth_holder_put(job->holder);
		auth_job_free(job);
	}
	throttle_free(a->by_client);
	throttle_free(a->by_user);
	cache_free(a->cache);
	auth_ldap_free(a->ldap);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->mtx);
	free(a);
}

/* ------------------------------------------------------------ loops */

static void
auth_loop_result(const struct auth_req *req, struct auth_result *res)
{
	memset(res, 0, sizeof(*res));
	res->status = req->status;
	res->groups = auth_nogroups;
	if (req->ident != NULL) {
		res->user = req->ident->user;
		if (req->status == AUTH_OK) {
			res->groups = req->ident->groups;
			res->ngroups = req->ident->ngroups;
		}
	}
}

/*
 * The eventfd fired: run the callbacks of the answered requests, one at a
 * time, unlinking each before its callback so that a callback cancelling
 * another request of the same loop finds it still listed.
 */
static void
auth_loop_wakeup(evutil_socket_t fd, short what, void *arg)
{
	struct auth_loop *l = arg;
	struct auth_result res;
	struct auth_req *req;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		auth_log(l->auth, 0, "auth: eventfd read: %s", strerror(errno));
	for (;;) {
		pthread_mutex_lock(&l->mtx);
		if ((req = TAILQ_FIRST(&l->done)) != NULL)
			TAILQ_REMOVE(&l->done, req, link);
		pthread_mutex_unlock(&l->mtx);
		if (req == NULL)
			break;
		auth_loop_result(req, &res);
		req->cb(&res, req->arg);
		cache_ident_unref(req->ident);
		free(req);
	}
}

struct auth_loop *
auth_loop_new(struct auth *a, struct event_base *base)
{
	struct auth_loop *l;
	int saved;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->auth = a;
	l->base = base;
	TAILQ_INIT(&l->done);
	pthread_mutex_init(&l->mtx, NULL);
	if ((l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		goto fail;
	if ((l->ev = event_new(base, l->efd, EV_READ | EV_PERSIST, auth_loop_wakeup,
	    l)) == NULL || event_add(l->ev, NULL) == -1) {
		errno = ENOMEM;
		goto fail;
	}
	return l;
fail:
	saved = errno;
	if (l->ev != NULL)
		event_free(l->ev);
	if (l->efd != -1)
		close(l->efd);
	pthread_mutex_destroy(&l->mtx);
	free(l);
	errno = saved;
	return NULL;
}

void
auth_loop_free(struct auth_loop *l)
{
	struct auth *a;
	struct auth_job *job;
	struct auth_req *req, *next;
	size_t i;

	if (l == NULL)
		return;
	a = l->auth;
	pthread_mutex_lock(&a->mtx);
	for (i = 0; i < AUTH_PENDING_BUCKETS; i++)
		LIST_FOREACH(job, &a->pending[i], pending)
			for (req = TAILQ_FIRST(&job->waiters); req != NULL; req = next) {
				next = TAILQ_NEXT(req, link);
				if (req->loop == l) {
					TAILQ_REMOVE(&job->waiters, req, link);
					free(req);
				}
			}
	pthread_mutex_unlock(&a->mtx);
	/* No thread can reach this loop any more. */
	while ((req = TAILQ_FIRST(&l->done)) != NULL) {
		TAILQ_REMOVE(&l->done, req, link);
		cache_ident_unref(req->ident);
		free(req);
	}
	cache_ident_unref(l->shown);
	event_free(l->ev);
	close(l->efd);
	pthread_mutex_destroy(&l->mtx);
	free(l);
}

/* ------------------------------------------------------------ requests */

/* A synchronous answer; ident (may be NULL) backs it until the next call. */
static struct auth_req *
auth_answer(struct auth_loop *l, struct auth_result *now, enum auth_status status,
    struct cache_ident *ident)
{
	l->shown = ident;
	memset(now, 0, sizeof(*now));
	now->status = status;
	now->groups = auth_nogroups;
	if (ident != NULL) {
		now->user = ident->user;
		if (status == AUTH_OK) {
			now->groups = ident->groups;
			now->ngroups = ident->ngroups;
		}
	}
	return NULL;
}

/* A synchronous AUTH_THROTTLED for user[0..ulen) (NULL: none parsed). */
static struct auth_req *
auth_throttled(struct auth_loop *l, struct auth_result *now, const char *user, size_t ulen,
    int wait)
{
	struct cache_ident *ident;

	auth_count(&l->auth->throttled);
	ident = user != NULL && ulen > 0 ? cache_ident_new(user, ulen, NULL, 0) : NULL;
	auth_answer(l, now, AUTH_THROTTLED, ident);
	now->user = ident != NULL ? ident->user : NULL;
	now->retry_after = wait;
	return NULL;
}

/* Seconds the client or the user must wait (0: neither is throttled). */
static int
auth_wait(struct auth *a, const char *client, const char *user, size_t ulen, int64_t t)
{
	int w1 = 0, w2 = 0;

	if (client != NULL)
		w1 = throttle_check(a->by_client, client, strlen(client), a->fail_per_client, t);
	if (user != NULL)
		w2 = throttle_check(a->by_user, user, ulen, a->fail_per_user, t);
	return w1 > w2 ? w1 : w2;
}

/*
 * A header that is not usable Basic credentials: a failure of the client
 * (there is no user whose password was tried), answered without the directory.
 */
static struct auth_req *
auth_bad_header(struct auth_loop *l, const char *client, struct basic_cred *cred,
    struct auth_result *now, bool has_user)
{
	struct auth *a = l->auth;
	struct cache_ident *ident = NULL;
	int64_t t = auth_now();
	int wait;

	if ((wait = auth_wait(a, client, NULL, 0, t)) > 0) {
		auth_throttled(l, now, has_user ? cred->user : NULL, has_user ? cred->userlen : 0,
		    wait);
		basic_wipe(cred);
		return NULL;
	}
	if (client != NULL && a->fail_per_client > 0 &&
	    throttle_add(a->by_client, client, strlen(client), t) == a->fail_per_client)
		auth_log(a, 0, "auth: client %s throttled: %u failed authentications "
		    "within %d s", client, a->fail_per_client, THROTTLE_WINDOW);
	if (has_user && cred->userlen > 0)
		ident = cache_ident_new(cred->user, cred->userlen, NULL, 0);
	basic_wipe(cred);
	return auth_answer(l, now, AUTH_FAILED, ident);
}

/*
 * A new job for cred, from client (pool mutex held).  Returns it, or NULL
 * with *wait > 0 (throttled) or 0 (out of memory).
 */
static struct auth_job *
auth_job_new(struct auth *a, const char *client, const struct basic_cred *cred,
    const struct cache_key *key, int *wait)
{
	struct auth_holder *ho = NULL;
	struct auth_job *job;

	*wait = 0;
	if (client != NULL) {
		if ((ho = auth_holder_get(a, client)) == NULL)
			return NULL;
		if (ho->njobs >= AUTH_CLIENT_QUEUE_MAX) {
			*wait = 1;
			return NULL;
		}
	}
	if ((job = calloc(1, sizeof(*job))) == NULL ||
	    (job->user = malloc(cred->userlen + 1)) == NULL ||
	    (job->pass = malloc(cred->passlen + 1)) == NULL)
		goto fail;
	if (a->fail_per_user > 0) {
		if ((*wait = throttle_take(a->by_user, cred->user, cred->userlen,
		    a->fail_per_user, auth_now(), &job->user_stamp)) > 0)
			goto fail;
		job->user_taken = true;
	}
	if (ho != NULL) {
		ho->njobs++;
		job->holder = ho;
	}
	job->key = *key;
	memcpy(job->user, cred->user, cred->userlen + 1);
	job->ulen = cred->userlen;
	memcpy(job->pass, cred->pass, cred->passlen + 1);
	job->plen = cred->passlen;
	TAILQ_INIT(&job->waiters);
	return job;
fail:
	if (job != NULL)
		auth_job_free(job);
	if (ho != NULL && ho->njobs == 0) {
		LIST_REMOVE(ho, link);
		free(ho);
	}
	return NULL;
}

struct auth_req *
auth_begin(struct auth_loop *l, const char *hdr, size_t len, struct auth_result *now,
    auth_cb *cb, void *arg)
{
	return auth_begin_from(l, NULL, hdr, len, now, cb, arg);
}

struct auth_req *
auth_begin_from(struct auth_loop *l, const char *client, const char *hdr, size_t len,
    struct auth_result *now, auth_cb *cb, void *arg)
{
	struct auth *a = l->auth;
	struct basic_cred cred;
	struct cache_key key;
	struct cache_ident *ident;
	struct auth_job *job;
	struct auth_req *req;
	enum cache_verdict v;
	enum auth_status status;
	bool full;
	int wait;

	cache_ident_unref(l->shown);
	l->shown = NULL;
	if (hdr == NULL)
		return auth_answer(l, now, AUTH_MISSING, NULL);

	switch (basic_parse(hdr, len, &cred, NULL)) {
	case BASIC_OK:
		break;
	case BASIC_EMPTY:
		/* Decided here: an empty password must never reach a bind. */
		return auth_bad_header(l, client, &cred, now, true);
	case BASIC_NOT_BASIC:
	case BASIC_MALFORMED:
	default:
		return auth_bad_header(l, client, &cred, now, false);
	}

	cache_key(a->cache, cred.user, cred.userlen, cred.pass, cred.passlen, &key);
	v = cache_lookup(a->cache, &key, cred.user, cred.userlen, &ident);
	/* A password the directory confirmed is honoured even while throttled. */
	if (v == CACHE_OK) {
		auth_count(&a->hits);
		basic_wipe(&cred);
		return auth_answer(l, now, AUTH_OK, ident);
	}
	if ((wait = auth_wait(a, client, cred.user, cred.userlen, auth_now())) > 0) {
		cache_ident_unref(ident);
		auth_throttled(l, now, cred.user, cred.userlen, wait);
		basic_wipe(&cred);
		return NULL;
	}
	if (v != CACHE_MISS) {
		auth_count(&a->hits);
		basic_wipe(&cred);
		return auth_answer(l, now, AUTH_FAILED, ident);
	}
	auth_count(&a->misses);

	if ((req = calloc(1, sizeof(*req))) == NULL) {
		basic_wipe(&cred);
		return auth_answer(l, now, AUTH_UNAVAILABLE, NULL);
	}
	req->loop = l;
	req->cb = cb;
	req->arg = arg;

	pthread_mutex_lock(&a->mtx);
	if ((job = auth_job_find(a, &key, cred.user, cred.userlen)) == NULL) {
		/* A job may have finished since the lookup: its result is cached. */
		v = cache_lookup(a->cache, &key, cred.user, cred.userlen, &ident);
		full = a->nqueued >= AUTH_QUEUE_MAX;
		wait = 0;
		if (v != CACHE_MISS || full ||
		    (job = auth_job_new(a, client, &cred, &key, &wait)) == NULL) {
			pthread_mutex_unlock(&a->mtx);
			free(req);
			if (v == CACHE_MISS && wait > 0) {
				auth_throttled(l, now, cred.user, cred.userlen, wait);
				basic_wipe(&cred);
				return NULL;
			}
			basic_wipe(&cred);
			if (v == CACHE_MISS) {
				auth_count(&a->errors);
				auth_log(a, 0, "auth: %s, answering unavailable",
				    full ? "too many exchanges waiting" : "out of memory");
				return auth_answer(l, now, AUTH_UNAVAILABLE, NULL);
			}
			status = v == CACHE_OK ? AUTH_OK : AUTH_FAILED;
			return auth_answer(l, now, status, ident);
		}
		LIST_INSERT_HEAD(&a->pending[key.h[1] % AUTH_PENDING_BUCKETS], job, pending);
		TAILQ_INSERT_TAIL(&a->queue, job, queue);
		a->nqueued++;
		pthread_cond_signal(&a->cond);
	}
	req->job = job;
	TAILQ_INSERT_TAIL(&job->waiters, req, link);
	pthread_mutex_unlock(&a->mtx);
	basic_wipe(&cred);
	return req;
}

void
auth_cancel(struct auth_req *req)
{
	struct auth_loop *l;
	struct auth *a;

	if (req == NULL)
		return;
	l = req->loop;
	a = l->auth;
	pthread_mutex_lock(&a->mtx);
	if (req->job != NULL)
		TAILQ_REMOVE(&req->job->waiters, req, link);
	else {
		pthread_mutex_lock(&l->mtx);
		TAILQ_REMOVE(&l->done, req, link);
		pthread_mutex_unlock(&l->mtx);
	}
	pthread_mutex_unlock(&a->mtx);
	cache_ident_unref(req->ident);
	free(req);
}

void
auth_get_stats(struct auth *a, struct auth_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->cache_hits = __atomic_load_n(&a->hits, __ATOMIC_RELAXED);
	st->cache_misses = __atomic_load_n(&a->misses, __ATOMIC_RELAXED);
	st->ldap_errors = __atomic_load_n(&a->errors, __ATOMIC_RELAXED);
	st->exchanges = __atomic_load_n(&a->exchanges, __ATOMIC_RELAXED);
	st->throttled = __atomic_load_n(&a->throttled, __ATOMIC_RELAXED);
	st->cache_entries = cache_count(a->cache);
}
