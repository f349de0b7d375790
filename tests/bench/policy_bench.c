/*
 * policy_bench — nanoseconds per policy decision on large generated policies.
 *
 *	sh tests/bench/policy_bench.sh [RULES...]	(default 1000 10000)
 *
 * A company policy holds thousands of rules, and the gateway decides once per
 * CONNECT and once per absolute-form request, on the event loop.  This program
 * generates policies that look like real ones (group, user, authenticated and
 * any principals; single ports, lists and ranges; methods= on some rules;
 * suffix patterns, anchored prefixes, alternations, character classes, IP
 * ranges, and a few catch-alls without any literal) and times three requests:
 * one decided by the last rule, one by a rule in the middle, and one that no
 * rule matches (default deny, the worst case for a scan).  With
 * POLICY_BENCH_LINEAR=1 in the environment it also times the plain top-to-
 * bottom scan, policy_decide_linear(), for comparison with the index.
 *
 * It also counts heap allocations made while deciding (the decision must make
 * none): malloc and friends are interposed here and forwarded to glibc's.
 *
 * The difficulty is making the "last rule" honest: the request must pass the
 * principal, port and method checks of that rule and of no earlier one that
 * would decide first, so the host and port are derived from the rule's number.
 *
 *	policy_bench lists [ENTRIES...]		(default 1000 100000 1000000)
 *
 * Domain lists (@FILE): for each size, a list file of that many entries (a
 * third .suffix entries, some IP literals) is written to a temporary folder
 * beside a policy of 20 generated rules and a rule that names it, loaded with
 * policy_load() as the daemon loads it: the load time, the growth of the
 * process's resident memory (VmRSS) across the load, and ns per decision for
 * a host the list holds exactly, a deep name under a .suffix entry, and a
 * host it does not hold.  Then the same for ten lists of a tenth each.
 * Goals (issue 18): a million entries load in under 2 s and 150 MB, and a
 * decision costs under 1 us whatever the size.
 */
#include "policy/policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "policy/rule.h"

#define GROUPS 40

/* ---- counting allocations (glibc's own entry points do the work) -------- */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static _Thread_local unsigned long nalloc;

void *
malloc(size_t n)
{
	nalloc++;
	return __libc_malloc(n);
}

void *
calloc(size_t n, size_t m)
{
	nalloc++;
	return __libc_calloc(n, m);
}

void *
realloc(void *p, size_t n)
{
	nalloc++;
	return __libc_realloc(p, n);
}

struct gen {
	char *buf;
	size_t len;
	size_t cap;
};

static void gen_add(struct gen *, const char *, ...) __attribute__((format(printf, 2, 3)));

static void
gen_add(struct gen *g, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(g->buf + g->len, g->cap - g->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			abort();
		if ((size_t)n < g->cap - g->len)
			break;
		g->cap = g->cap * 2 + (size_t)n + 1;
		if ((g->buf = realloc(g->buf, g->cap)) == NULL)
			abort();
	}
	g->len += (size_t)n;
}

/*
 * Rule i of n.  Every fifth rule is for a group, then a user, authenticated
 * and any; ports and methods vary with i; the pattern shape cycles through
 * the forms admins write.  Rule i always matches host_for(i) on port_for(i).
 */
static void
gen_rule(struct gen *g, size_t i)
{
	char who[32];
	const char *action = i % 9 == 8 ? "deny" : "allow";

	switch (i % 5) {
	case 1:
		snprintf(who, sizeof(who), "user:u%zu", i % GROUPS);
		break;
	case 2:
		snprintf(who, sizeof(who), "authenticated");
		break;
	case 3:
		snprintf(who, sizeof(who), "any");
		break;
	default:
		snprintf(who, sizeof(who), "group:g%zu", i % GROUPS);
		break;
	}
	gen_add(g, "%-6s %-14s ", action, who);
	switch (i % 8) {
	case 0:
		gen_add(g, "(.+\\.)?host%zu\\.example\\.com 443", i);
		break;
	case 1:
		gen_add(g, "api-%zu\\.svc\\.corp\\.example 443,8443", i);
		break;
	case 2:
		gen_add(g, "(www|static)\\.site%zu\\.org 80,443 methods=GET,HEAD,CONNECT", i);
		break;
	case 3:
		gen_add(g, "[a-z0-9-]+\\.cdn%zu\\.net 443 sni=optional", i);
		break;
	case 4:
		gen_add(g, "mirror%zu\\.(debian|ubuntu)\\.com 80,443", i);
		break;
	case 5:
		gen_add(g, "10\\.%zu\\.%zu\\.\\d{1,3} 8000-8100", (i / 256) % 256, i % 256);
		break;
	case 6:
		gen_add(g, "(git|ssh)%zu\\.example\\.net 22 sni=off methods=CONNECT", i);
		break;
	case 7:
		/* Every 100th rule is a catch-all for a port: no literal at all. */
		if (i % 100 == 7)
			gen_add(g, ".* %zu", 2000 + i % 1000);
		else
			gen_add(g, "(.+\\.)?internal%zu\\.corp 443,8443,9000-9100", i);
		break;
	}
	gen_add(g, "\n");
}

/* A host, port and method that rule i matches. */
static void
target_for(size_t i, char *host, size_t hostsz, uint16_t *port, const char **method)
{
	*method = "CONNECT";
	*port = 443;
	switch (i % 8) {
	case 0:
		snprintf(host, hostsz, "www.host%zu.example.com", i);
		break;
	case 1:
		snprintf(host, hostsz, "api-%zu.svc.corp.example", i);
		*port = 8443;
		break;
	case 2:
		snprintf(host, hostsz, "static.site%zu.org", i);
		*method = "GET";
		*port = 80;
		break;
	case 3:
		snprintf(host, hostsz, "img-1.cdn%zu.net", i);
		break;
	case 4:
		snprintf(host, hostsz, "mirror%zu.debian.com", i);
		break;
	case 5:
		snprintf(host, hostsz, "10.%zu.%zu.7", (i / 256) % 256, i % 256);
		*port = 8080;
		break;
	case 6:
		snprintf(host, hostsz, "git%zu.example.net", i);
		*port = 22;
		break;
	case 7:
		if (i % 100 == 7) {
			snprintf(host, hostsz, "anything.example");
			*port = (uint16_t)(2000 + i % 1000);
		} else
			snprintf(host, hostsz, "a.b.internal%zu.corp", i);
		break;
	}
}

/*
 * The clock the timings use: this thread's CPU time, so that what is measured
 * is what the code costs, not how many other processes share the machine's
 * cores meanwhile (POLICY_BENCH_WALL=1: the monotonic wall clock instead).
 */
static clockid_t bench_clock = CLOCK_THREAD_CPUTIME_ID;

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(bench_clock, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double
wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

typedef void decide_fn(const struct policy *, const struct policy_request *,
    struct policy_decision *);

/* Median of five runs of enough iterations to last about 50 ms each. */
static double
time_decide(decide_fn *fn, const struct policy *p, const struct policy_request *req,
    struct policy_decision *d)
{
	double runs[5], t0, t, tmp;
	size_t iters = 1, k, i, j;

	for (;;) {
		t0 = now_ns();
		for (k = 0; k < iters; k++)
			fn(p, req, d);
		t = now_ns() - t0;
		if (t > 5e6)
			break;
		iters *= 4;
	}
	iters = (size_t)((double)iters * 5e7 / t) + 1;
	for (i = 0; i < 5; i++) {
		t0 = now_ns();
		for (k = 0; k < iters; k++)
			fn(p, req, d);
		runs[i] = (now_ns() - t0) / (double)iters;
	}
	for (i = 0; i < 5; i++)
		for (j = i + 1; j < 5; j++)
			if (runs[j] < runs[i]) {
				tmp = runs[i];
				runs[i] = runs[j];
				runs[j] = tmp;
			}
	return runs[2];
}

static void
bench_one(const struct policy *p, size_t n, const char *what, size_t rule, bool linear)
{
	const char *groups[3];
	char host[HOST_BUF], g[32], u[32];
	struct policy_request req;
	struct policy_decision d;
	double ns, lns = 0;
	unsigned long allocs;

	memset(&req, 0, sizeof(req));
	snprintf(g, sizeof(g), "g%zu", rule % GROUPS);
	snprintf(u, sizeof(u), "u%zu", rule % GROUPS);
	groups[0] = "staff";
	groups[1] = "g39";
	groups[2] = g;
	req.user = u;
	req.groups = groups;
	req.ngroups = 3;
	if (rule == (size_t)-1) {
		snprintf(host, sizeof(host), "nothing-matches.example.org");
		req.method = "CONNECT";
		req.port = 443;
	} else
		target_for(rule, host, sizeof(host), &req.port, &req.method);
	req.host = host;

	policy_decide(p, &req, &d);             /* the thread's match data, once */
	allocs = nalloc;
	ns = time_decide(policy_decide, p, &req, &d);
	allocs = nalloc - allocs;
	if (linear)
		lns = time_decide(policy_decide_linear, p, &req, &d);
	printf("%6zu rules  %-12s %-28s %-7s %-22s %7.0f ns/decision, %lu allocations", n, what,
	    host, d.allow ? "allow" : "deny", d.rule != NULL ? d.rule : "default deny", ns, allocs);
	if (linear)
		printf("   (linear scan %9.0f ns)", lns);
	printf("\n");
	if (rule != (size_t)-1 && (d.rule == NULL ||
	    (size_t)strtoul(strchr(d.rule, ':') + 1, NULL, 10) != rule + 1)) {
		fprintf(stderr, "policy_bench: request for rule %zu decided by %s\n", rule + 1,
		    d.rule != NULL ? d.rule : "default deny");
		exit(1);
	}
}

/* ---- domain lists ------------------------------------------------------- */

#define LIST_BENCH_RULES 20         /* pattern rules before the list rules */

/* This process's resident set (kB), from /proc/self/status; key "VmRSS:" or "VmHWM:". */
static long
status_kb(const char *key)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, strlen(key)) == 0)
			kb = strtol(line + strlen(key), NULL, 10);
	fclose(f);
	return kb;
}

/* Entry i of a list: names that look like a category feed's. */
static void
list_entry(FILE *f, size_t list, size_t i)
{
	if (i % 50 == 49)
		fprintf(f, "10.%zu.%zu.%zu\n", list, (i / 256) % 256, i % 256);
	else if (i % 3 == 0)
		fprintf(f, ".zone%zu-%zu.example-cdn.net\n", list, i);
	else
		fprintf(f, "host%zu.l%zu.tracker-%zu.example.com\n", i, list, i % 997);
}

/* Write nlists lists of n entries each and a policy naming them into dir. */
static void
write_lists(const char *dir, size_t nlists, size_t n)
{
	char path[512];
	struct gen g;
	size_t l, i;
	FILE *f;

	for (l = 0; l < nlists; l++) {
		snprintf(path, sizeof(path), "%s/l%zu.list", dir, l);
		if ((f = fopen(path, "w")) == NULL)
			abort();
		fprintf(f, "# bench list %zu: %zu entries\n", l, n);
		for (i = 0; i < n; i++)
			list_entry(f, l, i);
		fclose(f);
	}
	memset(&g, 0, sizeof(g));
	g.cap = 4096;
	if ((g.buf = malloc(g.cap)) == NULL)
		abort();
	/* A few pattern rules first, as a real policy has them; the list rules after. */
	for (i = 0; i < LIST_BENCH_RULES; i++)
		gen_rule(&g, i);
	for (l = 0; l < nlists; l++)
		gen_add(&g, "%s any @l%zu.list 443\n", l % 2 == 0 ? "deny" : "allow", l);
	snprintf(path, sizeof(path), "%s/policy.rules", dir);
	if ((f = fopen(path, "w")) == NULL)
		abort();
	fwrite(g.buf, 1, g.len, f);
	fclose(f);
	free(g.buf);
}

static void
bench_list_host(const struct policy *p, const char *what, const char *host, const char *want)
{
	struct policy_request req;
	struct policy_decision d;
	unsigned long allocs;
	char got[600];
	double ns;

	memset(&req, 0, sizeof(req));
	req.method = "CONNECT";
	req.port = 443;
	req.host = host;
	policy_decide(p, &req, &d);
	allocs = nalloc;
	ns = time_decide(policy_decide, p, &req, &d);
	allocs = nalloc - allocs;
	if (d.list != NULL)
		snprintf(got, sizeof(got), "%s via %s:%u", d.rule, d.list, d.list_line);
	else
		snprintf(got, sizeof(got), "%s", d.rule != NULL ? d.rule : "default deny");
	printf("    %-14s %-44s %-30s %5.0f ns/decision, %lu allocations\n", what, host, got,
	    ns, allocs);
	if (strcmp(got, want) != 0) {
		fprintf(stderr, "policy_bench: %s decided by %s, expected %s\n", host, got, want);
		exit(1);
	}
}

static int
bench_lists(size_t nlists, size_t n)
{
	char dir[] = "/tmp/policy_bench.XXXXXX", path[600], host[256], want[256];
	struct policy *p;
	char *errors = NULL;
	long rss0, rss1, hwm;
	double t0, w0, ms, wms;
	size_t last = nlists - 1, e;

	if (mkdtemp(dir) == NULL)
		return 1;
	write_lists(dir, nlists, n);
	snprintf(path, sizeof(path), "%s/policy.rules", dir);
	rss0 = status_kb("VmRSS:");
	t0 = now_ns();
	w0 = wall_ns();
	if ((p = policy_load(path, "policy.rules", &errors)) == NULL) {
		fprintf(stderr, "%s", errors != NULL ? errors : "load failed\n");
		return 1;
	}
	ms = (now_ns() - t0) / 1e6;
	wms = (wall_ns() - w0) / 1e6;
	rss1 = status_kb("VmRSS:");
	hwm = status_kb("VmHWM:");
	printf("%2zu list%s of %7zu entries (%zu in all): loaded in %6.0f ms (%.0f ms wall), "
	    "RSS +%.1f MB (%.0f bytes an entry), peak RSS %.1f MB\n", nlists,
	    nlists == 1 ? " " : "s", n, policy_entry_count(p), ms, wms,
	    (double)(rss1 - rss0) / 1024,
	    (double)(rss1 - rss0) * 1024 / (double)(nlists * n), (double)hwm / 1024);
	/* The last list's entries: exact, under a .suffix one, an address, and a miss. */
	e = n - 2 - (n - 2) % 3 + 1;            /* an exact entry near the end */
	snprintf(host, sizeof(host), "host%zu.l%zu.tracker-%zu.example.com", e, last, e % 997);
	snprintf(want, sizeof(want), "policy.rules:%zu via l%zu.list:%zu", LIST_BENCH_RULES + 1 + last, last,
	    e + 2);
	bench_list_host(p, "exact entry", host, want);
	for (e = (n - 1) / 3 * 3; e % 50 == 49; e -= 3)
		;                               /* a .suffix entry near the end */
	snprintf(host, sizeof(host), "a.b.c.zone%zu-%zu.example-cdn.net", last, e);
	snprintf(want, sizeof(want), "policy.rules:%zu via l%zu.list:%zu", LIST_BENCH_RULES + 1 + last, last,
	    e + 2);
	bench_list_host(p, "under .suffix", host, want);
	snprintf(host, sizeof(host), "10.%zu.0.49", last);     /* entry 49, line 51 */
	snprintf(want, sizeof(want), "policy.rules:%zu via l%zu.list:%d", LIST_BENCH_RULES + 1 + last, last, 51);
	bench_list_host(p, "IP literal", host, want);
	bench_list_host(p, "not listed", "www.nowhere-listed.example.org", "default deny");
	t0 = now_ns();
	policy_unref(p);
	printf("    policy_unref returned in %.1f ms (a policy this big is freed on a thread "
	    "of its own, not on the worker that drops it)\n", (now_ns() - t0) / 1e6);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	return system(path) == 0 ? 0 : 1;
}

int
main(int argc, char *argv[])
{
	static const size_t defaults[] = { 1000, 10000 };
	struct policy *p;
	struct gen g;
	char *errors = NULL;
	size_t n, i, k, nsizes = (size_t)(argc > 1 ? argc - 1 : 2);
	bool linear = getenv("POLICY_BENCH_LINEAR") != NULL;
	double t0;

	if (getenv("POLICY_BENCH_WALL") != NULL)
		bench_clock = CLOCK_MONOTONIC;
	printf("timings: %s\n", bench_clock == CLOCK_MONOTONIC ? "wall clock" :
	    "CPU time of the benchmark thread (POLICY_BENCH_WALL=1 for the wall clock)");

	if (argc > 1 && strcmp(argv[1], "lists") == 0) {
		static const size_t sizes[] = { 1000, 100000, 1000000 };
		int rc = 0;

		if (argc > 2) {
			for (k = 2; k < (size_t)argc; k++)
				rc |= bench_lists(1, strtoul(argv[k], NULL, 10));
			return rc;
		}
		for (k = 0; k < 3; k++)
			rc |= bench_lists(1, sizes[k]);
		rc |= bench_lists(10, 100000);
		return rc;
	}

	for (k = 0; k < nsizes; k++) {
		n = argc > 1 ? strtoul(argv[k + 1], NULL, 10) : defaults[k];
		memset(&g, 0, sizeof(g));
		g.cap = 4096;
		if ((g.buf = malloc(g.cap)) == NULL)
			abort();
		for (i = 0; i < n; i++)
			gen_rule(&g, i);
		t0 = now_ns();
		if ((p = policy_load_buffer(g.buf, g.len, "bench.rules", &errors)) == NULL) {
			fprintf(stderr, "%s", errors != NULL ? errors : "load failed\n");
			return 1;
		}
		printf("%6zu rules  loaded in %.0f ms, %lu allocations\n", n, (now_ns() - t0) / 1e6,
		    nalloc);
		if (nalloc == 0) {
			fprintf(stderr, "policy_bench: allocations are not being counted\n");
			return 1;
		}
		bench_one(p, n, "last rule", n - 1, linear);
		bench_one(p, n, "middle rule", n / 2 / 8 * 8 + 3, linear);
		bench_one(p, n, "default deny", (size_t)-1, linear);
		policy_unref(p);
		free(g.buf);
	}
	return 0;
}
