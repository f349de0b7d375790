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
 */
#include "policy/policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static double
now_ns(void)
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
