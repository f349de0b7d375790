/*
 * rule — the inside of a loaded policy, shared by parse.c (which builds it)
 * and decide.c (which reads it).  Private to policy/: nothing outside this
 * folder includes it, so the public header keeps struct policy opaque.
 *
 * A loaded policy is immutable.  The only field that changes after
 * policy_load() returns is the reference count, which is atomic so that a
 * reload on one thread can drop the old policy while workers on other threads
 * still finish the decisions they started on it.
 */
#ifndef EGRESSD_POLICY_RULE_H
#define EGRESSD_POLICY_RULE_H

#define PCRE2_CODE_UNIT_WIDTH 8

#include <pcre2.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/list.h"
#include "policy/policy.h"

/*
 * Bounds on one host match.  A host is at most 253 bytes, so an honest pattern
 * needs far fewer steps than this; a catastrophic one ("(a|a)*b" and friends)
 * hits the limit in well under a millisecond instead of stalling an event loop
 * for minutes.  The depth limit bounds the interpreter's backtracking frames
 * (and so its heap); JIT code ignores it and is bounded by the match limit and
 * its own stack.  Hitting any of them is a policy_error, never a "no match".
 */
#define POLICY_MATCH_LIMIT 100000
#define POLICY_DEPTH_LIMIT 1000

enum policy_who {
	POLICY_WHO_ANY,                 /* anyone, no credentials needed */
	POLICY_WHO_AUTHENTICATED,       /* any authenticated user */
	POLICY_WHO_USER,                /* user:NAME */
	POLICY_WHO_GROUP,               /* group:NAME */
};

struct policy_ports {
	uint16_t lo;                    /* first port of the range, >= 1 */
	uint16_t hi;                    /* last port, >= lo */
};

struct policy_rule {
	bool allow;                     /* action: allow or deny */
	enum policy_who who;            /* principal form */
	char *who_name;                 /* NAME of user:/group:, NULL otherwise */
	pcre2_code *host;               /* compiled, anchored, caseless (JIT if available);
	                                   NULL for a list rule */
	int list;                       /* @FILE: the list's id in policy->lists, else -1 */
	bool report;                    /* mode=report: never decides, only named in records */
	uint32_t report_id;             /* 1 + its number among the report rules, 0 if none */
	bool any_port;                  /* ports "*" */
	struct policy_ports *ports;     /* otherwise: nports ranges */
	size_t nports;
	char **methods;                 /* as written (no lower case); NULL = any */
	size_t nmethods;
	enum policy_sni_mode sni;       /* sni= option, default require */
	char *ref;                      /* "FILE:LINE", FILE = display name */
	char *text;                     /* the rule as written, comment and edges trimmed */
	char *prefix;                   /* literal every matching host starts with (lower
	                                   case), NULL if none is known (index.c) */
	size_t prefixlen;
	char *suffix;                   /* literal every matching host ends with, or NULL */
	size_t suffixlen;
};

struct policy_index;                /* index.c: rules bucketed by their literals */
struct plists;                      /* list.c: the domain lists */

struct policy {
	atomic_uint refs;               /* policy_ref / policy_unref */
	struct policy_rule *rules;      /* in file order: first match wins */
	size_t nrules;
	pcre2_match_context *mctx;      /* limits above; read-only, shared by threads */
	struct policy_index *index;     /* built once the rules are all parsed */
	struct plists *lists;           /* the @FILE lists, NULL when there are none */
	uint32_t *report_rules;         /* rule numbers of the mode=report rules */
	_Atomic uint64_t *report_counts;/* matches per report rule (the one mutable part
	                                   besides refs: counted by policy_report_count) */
	size_t nreports;
};

/* true if rule needs an identity (authenticated, user:, group:). */
static inline bool
policy_rule_needs_identity(const struct policy_rule *r)
{
	return r->who != POLICY_WHO_ANY;
}

/* ---- literals and the index (index.c) ---------------------------------- */

#define POLICY_LITERAL_MAX 255      /* longer literals are cut (still required) */

/* The literals a host pattern requires, lower case; lengths 0 when unknown. */
struct policy_literals {
	char prefix[POLICY_LITERAL_MAX];
	size_t prefixlen;
	char suffix[POLICY_LITERAL_MAX];
	size_t suffixlen;
};

/*
 * Find the literal text every host matched by pat[0..len) must start with and
 * end with (the pattern being compiled caseless and anchored at both ends).
 * Conservative: a construct it does not fully understand yields no literal,
 * never a wrong one.
 */
void policy_literals_extract(const char *pat, size_t len, struct policy_literals *out);

/*
 * The lists that hold the host of one decision, found once before the rules
 * are walked (decide.c).  overflow: more lists matched than hits holds, so a
 * list rule whose list is not among them asks the store itself.
 */
#define POLICY_LIST_HITS_MAX 64
struct policy_list_match {
	struct plist_hit hits[POLICY_LIST_HITS_MAX];
	size_t n;
	bool overflow;
};

/* false if host[0..len) lacks a literal the rule requires: it cannot match. */
bool policy_rule_may_match(const struct policy_rule *, const char *host, size_t len);

/* A run of candidate rule numbers, ascending. */
struct policy_cursor {
	const uint32_t *next;
	const uint32_t *end;
};

/* Enough cursors for any host: one per literal length on each side, plus one,
 * plus one per list that holds the host. */
#define POLICY_CURSORS_MAX (2 * POLICY_LITERAL_MAX + 1 + POLICY_LIST_HITS_MAX)

int policy_index_build(struct policy *);        /* 0, or -1 out of memory */
void policy_index_free(struct policy_index *);

/*
 * Fill cur[] with the lists of rules that may match host[0..len): every
 * pattern rule for which policy_rule_may_match() is true, and every list rule
 * whose list is in lm (which must not have overflowed), is in exactly one of
 * them.  Returns the number of cursors filled (at most POLICY_CURSORS_MAX).
 */
size_t policy_index_candidates(const struct policy_index *, const char *host, size_t len,
    const struct policy_list_match *lm, struct policy_cursor *cur);

/*
 * The reference scan: every rule top to bottom.  policy_decide() must give
 * exactly its answer; the tests and the benchmark compare the two.
 */
void policy_decide_linear(const struct policy *, const struct policy_request *,
    struct policy_decision *);

#endif
