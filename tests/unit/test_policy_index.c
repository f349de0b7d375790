/*
 * test_policy_index — the rule index never changes an answer.
 *
 * policy_decide() walks only the rules whose required literal (index.c) the
 * host has; policy_decide_linear() walks every rule.  Both apply the same
 * literal prefilter before each regex, so they must agree on every request:
 * decision, reason, deciding rule, credentials, SNI mode, errors included.
 * Random policies are drawn from a small grammar that exercises what the
 * literal extraction must read right or give up on (alternations at the top
 * and inside groups, optional groups, quantified literals, anchors and
 * assertions in the middle, character classes with ']' and POSIX names,
 * escaped dots, upper case, inline options, \x escapes, patterns that hit the
 * match limit), with random principals, ports and methods, and random
 * requests over the same small alphabet so that many of them match.
 *
 * A second oracle, written here, scans the rules with no prefilter at all
 * (regex only): where it finds a decision without a matching error, the
 * engine must give the same one.  That shows the prefilter never turns a
 * match into a non-match.  Where the regex alone hits its limit on a host
 * that lacks the literal, the engine's answer is "cannot match" by design.
 *
 * Seeds: a fixed one always, and POLICY_INDEX_SEED from the environment too.
 */
#include "policy/policy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "policy/rule.h"

#define FIXED_SEED 0x5eed2024u
#define POLICIES 400
#define REQUESTS 60

static uint64_t rng;

static uint32_t
rnd(uint32_t n)
{
	/* xorshift64*: reproducible from the seed on every platform */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dULL) >> 32) % n;
}

static const char *
pick(const char *const *v, size_t n)
{
	return v[rnd((uint32_t)n)];
}

#define PICK(v) pick((v), sizeof(v) / sizeof((v)[0]))

static const char *const words[] = { "a", "b", "ab", "x", "git", "hub", "c0", "aa" };

/*
 * One atom of a pattern, as PCRE2 text, and a piece of host it matches (most
 * of the time: assertions depend on their neighbours), so that requests can
 * be aimed at a rule.
 */
static void
gen_atom(char *out, size_t outsz, char *sample, size_t samplesz)
{
	static const char *const fixed[][2] = {
		{ "\\.", "." }, { ".", "q" }, { ".+", "ab" }, { ".*", "" }, { "[a-c]+", "cb" },
		{ "[^.]*", "x" }, { "[[:alpha:]]", "g" }, { "\\d+", "42" }, { "(a|b)", "b" },
		{ "(x|xy)?", "xy" }, { "(?:ab)*", "abab" }, { "(.+\\.)?", "www." },
		{ "([a-z0-9-]+\\.)*", "c-1." }, { "a?", "a" }, { "b{1,2}", "bb" }, { "a{2}", "aa" },
		{ "^", "" }, { "$", "" }, { "\\b", "" }, { "(?=a)", "" }, { "(?<!b)", "" },
		{ "\\-", "-" }, { "[\\]a]", "a" }, { "[.]", "." }, { "GIT", "git" },
		{ "(?:git|hub)", "hub" }, { "(a|ab|b)\\.", "ab." }, { "\\x61", "a" }, { "(?i)", "" },
		{ "[[:digit:]]?", "5" }, { "(a(b)?)+", "aba" },
	};
	size_t i;

	if (rnd(3) == 0) {
		i = rnd(sizeof(fixed) / sizeof(fixed[0]));
		snprintf(out, outsz, "%s", fixed[i][0]);
		snprintf(sample, samplesz, "%s", fixed[i][1]);
	} else {
		snprintf(out, outsz, "%s", PICK(words));
		snprintf(sample, samplesz, "%s", out);
	}
}

/*
 * A host pattern: 1..6 atoms, sometimes two branches, rarely a catastrophic
 * one; sample gets a host that the pattern (probably) matches.
 */
static void
gen_pattern(char *out, size_t outsz, char *sample, size_t samplesz)
{
	static const char *const evil[][2] = { { "(?:a|aa)*c", "aac" }, { "(a+)+\\.x", "a.x" },
	    { "(a|aa)*\\.b", "aa.b" }, { "(*NO_JIT)(a|aa)*c", "ac" } };
	char atom[64], piece[64];
	size_t n, i, len = 0, slen;
	int branches = rnd(5) == 0 ? 2 : 1, b, keep = (int)rnd(2);

	out[0] = '\0';
	if (rnd(12) == 0) {
		i = rnd(sizeof(evil) / sizeof(evil[0]));
		snprintf(out, outsz, "%s", evil[i][0]);
		snprintf(sample, samplesz, "%s", evil[i][1]);
		return;
	}
	for (b = 0; b < branches; b++) {
		if (b > 0)
			len += (size_t)snprintf(out + len, outsz - len, "|");
		if (b == keep || branches == 1)
			sample[0] = '\0';
		n = 1 + rnd(6);
		for (i = 0; i < n && len + 64 < outsz; i++) {
			gen_atom(atom, sizeof(atom), piece, sizeof(piece));
			len += (size_t)snprintf(out + len, outsz - len, "%s", atom);
			slen = strlen(sample);
			if ((b == keep || branches == 1) && slen + strlen(piece) < samplesz)
				memcpy(sample + slen, piece, strlen(piece) + 1);
		}
	}
}

/* Up to this many sample hosts per policy, one per rule. */
#define SAMPLES 64
static char samples[SAMPLES][HOST_BUF];
static size_t nsamples;

/*
 * Domain lists for the policy being generated: entries over the same words
 * as the hosts (exact names, .suffix names, IP literals in both spellings),
 * read through an in-memory reader, and kept here as written for the oracle.
 */
#define LISTS 4
#define LIST_ENTRIES 24
static char list_entry[LISTS][LIST_ENTRIES][HOST_BUF];
static size_t list_n[LISTS];
static char list_text[LISTS][LIST_ENTRIES * (HOST_BUF + 16)];

static void
gen_name(char *out, size_t outsz, size_t maxlabels)
{
	size_t n = 1 + rnd((uint32_t)maxlabels), i, len = 0;

	for (i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, outsz - len, "%s%s", i ? "." : "", PICK(words));
}

static void
gen_lists(void)
{
	static const char *const ips[] = { "192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1",
	    "2001:DB8:0::1" };
	char name[HOST_BUF];
	size_t l, i, len;

	for (l = 0; l < LISTS; l++) {
		list_n[l] = rnd(LIST_ENTRIES);
		len = (size_t)snprintf(list_text[l], sizeof(list_text[l]), "# list %zu\n", l);
		for (i = 0; i < list_n[l]; i++) {
			if (rnd(10) == 0)
				snprintf(list_entry[l][i], HOST_BUF, "%s", PICK(ips));
			else {
				gen_name(name, sizeof(name), 3);
				list_entry[l][i][0] = rnd(2) ? '.' : 'x';
				memcpy(list_entry[l][i] + (list_entry[l][i][0] == '.'), name,
				    strlen(name) + 1);
			}
			len += (size_t)snprintf(list_text[l] + len, sizeof(list_text[l]) - len,
			    "%s%s\n", list_entry[l][i], rnd(5) == 0 ? "  # comment" : "");
		}
	}
}

static int
read_list(void *arg, const char *name, char **text, size_t *len, const char **why)
{
	unsigned l;

	if (sscanf(name, "l%u.list", &l) != 1 || l >= LISTS) {
		*why = "no such list";
		return -1;
	}
	*len = strlen(list_text[l]);
	*text = strndup(list_text[l], *len);
	return *text != NULL ? 0 : -1;
}

static void
gen_policy(char *out, size_t outsz, size_t *nrules)
{
	static const char *const who[] = { "any", "any", "authenticated", "user:alice",
	    "user:BOB", "group:eng", "group:ops" };
	static const char *const ports[] = { "*", "*", "80", "443", "80,443", "8000-8100",
	    "1-1000", "22,443" };
	static const char *const opts[] = { "", "", "", " methods=GET", " methods=CONNECT",
	    " methods=GET,HEAD", " sni=off", " methods=CONNECT sni=optional" };
	char pat[512];
	size_t n = 1 + rnd(40), i, len = 0, l;
	bool lists = rnd(2) == 0, deny;

	nsamples = 0;
	if (lists)
		gen_lists();
	for (i = 0; i < n; i++) {
		if (lists && rnd(3) == 0) {
			/* A list rule; its sample is one of its entries (or under it). */
			l = rnd(LISTS);
			snprintf(pat, sizeof(pat), "@l%zu.list", l);
			if (list_n[l] > 0) {
				const char *e = list_entry[l][rnd((uint32_t)list_n[l])];

				snprintf(samples[nsamples], sizeof(samples[0]), "%s%s",
				    e[0] == '.' && rnd(2) ? PICK(words) : "", e);
			} else
				snprintf(samples[nsamples], sizeof(samples[0]), "a");
		} else
			gen_pattern(pat, sizeof(pat), samples[nsamples], sizeof(samples[0]));
		if (nsamples < SAMPLES - 1)
			nsamples++;
		deny = rnd(3) == 0;
		len += (size_t)snprintf(out + len, outsz - len, "%s %s %s %s%s%s\n",
		    deny ? "deny" : "allow", PICK(who), pat, PICK(ports), PICK(opts),
		    deny && rnd(3) == 0 ? " mode=report" : "");
	}
	*nrules = n;
}

static void
gen_host(char *out, size_t outsz)
{
	size_t n, i, len = 0;

	if (nsamples > 0 && rnd(2) == 0) {
		/* Aimed at a rule (a random one: earlier rules may still decide). */
		snprintf(out, outsz, "%s", samples[rnd((uint32_t)nsamples)]);
		return;
	}
	if (rnd(15) == 0) {
		/* Long runs that drive the evil patterns into their limits. */
		static const char *const tails[] = { "bc", "b.x", "c", ".x", "cx", "a.b" };

		memset(out, 'a', 50);
		snprintf(out + 50, outsz - 50, "%s", PICK(tails));
		return;
	}
	n = 1 + rnd(4);
	for (i = 0; i < n; i++) {
		len += (size_t)snprintf(out + len, outsz - len, "%s%s", i ? "." : "", PICK(words));
		if (rnd(6) == 0)
			len += (size_t)snprintf(out + len, outsz - len, "%u", rnd(10));
		if (rnd(10) == 0)
			len += (size_t)snprintf(out + len, outsz - len, "-");
	}
	if (rnd(8) == 0)
		out[0] = (char)(out[0] >= 'a' && out[0] <= 'z' ? out[0] - 'a' + 'A' : out[0]);
}

static void
gen_request(struct policy_request *req, char *host, size_t hostsz, const char **groups)
{
	static const char *const users[] = { NULL, NULL, "alice", "bob", "carol" };
	static const char *const gnames[] = { "eng", "ops", "EnG", "staff" };
	static const char *const methods[] = { "GET", "CONNECT", "HEAD", "POST", "connect" };
	static const uint16_t ports[] = { 80, 443, 8050, 22, 9999 };
	size_t i;

	memset(req, 0, sizeof(*req));
	gen_host(host, hostsz);
	req->host = host;
	req->user = PICK(users);
	req->ngroups = rnd(3);
	for (i = 0; i < req->ngroups; i++)
		groups[i] = PICK(gnames);
	req->groups = groups;
	req->method = PICK(methods);
	req->port = ports[rnd(sizeof(ports) / sizeof(ports[0]))];
	req->no_identity = rnd(6) == 0;
}

static bool
who_match(const struct policy_rule *r, const struct policy_request *req)
{
	size_t i;

	switch (r->who) {
	case POLICY_WHO_ANY:
		return true;
	case POLICY_WHO_AUTHENTICATED:
		return req->user != NULL;
	case POLICY_WHO_USER:
		return req->user != NULL && strcasecmp(req->user, r->who_name) == 0;
	case POLICY_WHO_GROUP:
		if (req->user == NULL)
			return false;
		for (i = 0; i < req->ngroups; i++)
			if (strcasecmp(req->groups[i], r->who_name) == 0)
				return true;
		return false;
	}
	return false;
}

static bool
port_match(const struct policy_rule *r, uint16_t port)
{
	size_t i;

	if (r->any_port)
		return true;
	for (i = 0; i < r->nports; i++)
		if (port >= r->ports[i].lo && port <= r->ports[i].hi)
			return true;
	return false;
}

static bool
method_match(const struct policy_rule *r, const char *method)
{
	size_t i;

	if (r->methods == NULL)
		return true;
	for (i = 0; i < r->nmethods; i++)
		if (strcmp(r->methods[i], method) == 0)
			return true;
	return false;
}

/*
 * Whether list l, as written, holds host, by the contract's words and
 * nothing of list.c: "name" is that host, ".name" it and every name under
 * it, an IP literal that address.  *line: the most specific entry (the
 * longest name; exact before .suffix; the first line of equals).
 */
static bool
list_holds(unsigned l, const char *host, unsigned *line)
{
	char h[HOST_BUF], e[HOST_BUF];
	enum host_kind kind;
	const char *err, *name;
	size_t i, hl, el, best = 0;
	bool suffix, found = false, best_suffix = true;

	snprintf(h, sizeof(h), "%s", host);
	for (i = 0; h[i] != '\0'; i++)
		h[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] - 'A' + 'a' : h[i]);
	hl = strlen(h);
	for (i = 0; i < list_n[l]; i++) {
		name = list_entry[l][i];
		suffix = name[0] == '.';
		if (host_normalize(name + suffix, strlen(name + suffix), e, sizeof(e), &kind,
		    &err) == -1)
			fail_msg("generated entry %s is bad: %s", name, err);
		el = strlen(e);
		if (!(strcmp(h, e) == 0 || (suffix && hl > el && h[hl - el - 1] == '.' &&
		    strcmp(h + hl - el, e) == 0)))
			continue;
		if (!found || el > best || (el == best && best_suffix && !suffix)) {
			found = true;
			best = el;
			best_suffix = suffix;
			*line = (unsigned)i + 2;        /* the list's first line is a comment */
		}
	}
	return found;
}

/* 1 match, 0 none, -1 evaluation error: the rule's host against req's. */
static int
host_match(const struct policy *p, const struct policy_rule *r, const char *host,
    pcre2_match_data *m, unsigned *line)
{
	int rc;

	if (r->list >= 0)
		return list_holds((unsigned)atoi(strchr(r->text, '@') + 2), host, line);
	rc = pcre2_match(r->host, (PCRE2_SPTR)host, strlen(host), 0, 0, m, p->mctx);
	return rc == PCRE2_ERROR_NOMATCH ? 0 : rc < 0 ? -1 : 1;
}

/*
 * The oracle without prefilter: the contract's words, rule by rule.  Returns
 * the deciding rule's index or -1 for default deny; *error says the regex of
 * that rule failed to evaluate; *report the first mode=report rule that
 * matched before it (-1 none), *line the list entry of the deciding rule.
 */
static long
oracle(const struct policy *p, const struct policy_request *req, pcre2_match_data *m,
    bool *error, long *report, unsigned *line)
{
	const struct policy_rule *r;
	size_t i;
	unsigned l;
	int rc;

	*error = false;
	*report = -1;
	for (i = 0; i < p->nrules; i++) {
		r = &p->rules[i];
		if (!port_match(r, req->port) || !method_match(r, req->method))
			continue;
		if (r->who != POLICY_WHO_ANY && req->no_identity)
			continue;
		if (req->user != NULL && !who_match(r, req))
			continue;
		l = 0;
		if ((rc = host_match(p, r, req->host, m, &l)) == 0)
			continue;
		if (r->report) {
			/* Never decides; named if it could have (not an anonymous
			 * request against an identity rule). */
			if (*report == -1 && !(req->user == NULL && r->who != POLICY_WHO_ANY))
				*report = (long)i;
			continue;
		}
		*error = rc < 0;
		*line = l;
		return (long)i;
	}
	return -1;
}

struct tally {
	size_t decisions;               /* requests compared */
	size_t by_rule;                 /* decided by a rule (not default deny) */
	size_t errors;                  /* policy_error decisions */
	size_t creds;                   /* 407 decisions */
	size_t oracle_same;             /* the regex-only oracle agreed */
	size_t prefiltered_errors;      /* regex alone errs on a host lacking the literal */
	size_t indexed_rules;           /* rules with a literal or a list */
	size_t rules;
	size_t list_rules;              /* @FILE rules */
	size_t by_list;                 /* decided by a list rule */
	size_t reports;                 /* decisions naming a mode=report rule */
};

static void
run_seed(uint64_t seed, struct tally *t)
{
	static char text[64 * 1024];
	const char *groups[4];
	char host[HOST_BUF], *errors;
	struct policy_request req;
	struct policy_decision a, b;
	struct policy *p;
	pcre2_match_data *m;
	size_t i, k, nrules;
	long want, rep;
	unsigned line;
	bool err;

	rng = seed ? seed : 1;
	m = pcre2_match_data_create(1, NULL);
	assert_non_null(m);
	for (i = 0; i < POLICIES; i++) {
		gen_policy(text, sizeof(text), &nrules);
		errors = NULL;
		if ((p = policy_load_buffer_with(text, strlen(text), "r.rules", read_list, NULL,
		    &errors)) == NULL) {
			/* The grammar only makes valid rules. */
			fail_msg("seed %llu policy %zu refused:\n%s\n%s", (unsigned long long)seed,
			    i, errors ? errors : "", text);
		}
		t->rules += p->nrules;
		for (k = 0; k < p->nrules; k++) {
			if (p->rules[k].prefix != NULL || p->rules[k].suffix != NULL ||
			    p->rules[k].list >= 0)
				t->indexed_rules++;
			t->list_rules += p->rules[k].list >= 0;
		}
		for (k = 0; k < REQUESTS; k++) {
			gen_request(&req, host, sizeof(host), groups);
			memset(&a, 0x5a, sizeof(a));
			memset(&b, 0xa5, sizeof(b));
			policy_decide(p, &req, &a);
			policy_decide_linear(p, &req, &b);
			if (a.allow != b.allow || a.need_credentials != b.need_credentials ||
			    strcmp(a.reason, b.reason) != 0 || a.rule != b.rule ||
			    (a.allow && a.sni != b.sni) || a.list != b.list ||
			    a.list_line != b.list_line || a.report != b.report ||
			    a.report_line != b.report_line || a.report_id != b.report_id)
				fail_msg("seed %llu policy %zu: host %s port %u method %s user %s: "
				    "indexed %s %s, linear %s %s\npolicy:\n%s",
				    (unsigned long long)seed, i, host, req.port, req.method,
				    req.user ? req.user : "-", a.reason, a.rule ? a.rule : "default",
				    b.reason, b.rule ? b.rule : "default", text);
			t->decisions++;
			t->by_rule += a.rule != NULL;
			t->errors += strcmp(a.reason, "policy_error") == 0;
			t->creds += a.need_credentials;
			t->by_list += a.list != NULL;
			t->reports += a.report != NULL;

			line = 0;
			want = oracle(p, &req, m, &err, &rep, &line);
			if ((err && !policy_rule_may_match(&p->rules[want], host, strlen(host))) ||
			    (rep >= 0 && p->rules[rep].list < 0 &&
			    !policy_rule_may_match(&p->rules[rep], host, strlen(host)))) {
				t->prefiltered_errors++;
				continue;
			}
			if (want == -1)
				assert_null(a.rule);
			else if (a.rule != p->rules[want].ref)
				fail_msg("seed %llu: host %s: engine %s, regex-only oracle %s\n%s",
				    (unsigned long long)seed, host, a.rule ? a.rule : "default",
				    p->rules[want].ref, text);
			else {
				assert_int_equal(err, strcmp(a.reason, "policy_error") == 0);
				if (p->rules[want].list >= 0) {
					assert_non_null(a.list);
					if (a.list_line != line)
						fail_msg("seed %llu: host %s: entry line %u, oracle %u\n%s",
						    (unsigned long long)seed, host, a.list_line, line,
						    text);
				} else
					assert_null(a.list);
			}
			if (rep == -1)
				assert_null(a.report);
			else if (a.report != p->rules[rep].ref)
				fail_msg("seed %llu: host %s: report %s, oracle %s\n%s",
				    (unsigned long long)seed, host, a.report ? a.report : "none",
				    p->rules[rep].ref, text);
			t->oracle_same++;
		}
		policy_unref(p);
	}
	pcre2_match_data_free(m);
}

static void
report(const char *what, uint64_t seed, const struct tally *t)
{
	printf("  %s seed %llu: %zu decisions (%zu by a rule, %zu by a list rule, %zu "
	    "policy_error, %zu 407, %zu reports), %zu/%zu rules indexed (%zu list rules), "
	    "oracle agreed on %zu, %zu limit errors prefiltered\n", what,
	    (unsigned long long)seed, t->decisions, t->by_rule, t->by_list, t->errors, t->creds,
	    t->reports, t->indexed_rules, t->rules, t->list_rules, t->oracle_same,
	    t->prefiltered_errors);
}

static void
test_index_equals_linear(void **state)
{
	struct tally t;
	const char *env = getenv("POLICY_INDEX_SEED");

	memset(&t, 0, sizeof(t));
	run_seed(FIXED_SEED, &t);
	report("fixed", FIXED_SEED, &t);
	/* The grammar must really exercise the index, not only default denies. */
	assert_true(t.by_rule * 10 > t.decisions);
	assert_true(t.errors > 0);
	assert_true(t.creds > 0);
	assert_true(t.indexed_rules * 2 > t.rules);
	assert_true(t.indexed_rules < t.rules);
	assert_true(t.by_list * 20 > t.decisions);
	assert_true(t.reports * 100 > t.decisions);
	if (env != NULL && *env != '\0') {
		memset(&t, 0, sizeof(t));
		run_seed(strtoull(env, NULL, 0), &t);
		report("environment", strtoull(env, NULL, 0), &t);
	}
}

/*
 * The prefilter alone: for random patterns and hosts, whenever the regex
 * matches, the host has the extracted literals.
 */
static void
test_prefilter_never_hides_a_match(void **state)
{
	char pat[512], text[600], host[HOST_BUF], *errors;
	struct policy *p;
	pcre2_match_data *m;
	size_t i, k, matches = 0, rejected = 0;
	int rc;

	rng = FIXED_SEED ^ 0x1234;
	m = pcre2_match_data_create(1, NULL);
	for (i = 0; i < 3000; i++) {
		nsamples = 1;
		gen_pattern(pat, sizeof(pat), samples[0], sizeof(samples[0]));
		snprintf(text, sizeof(text), "allow any %s *\n", pat);
		errors = NULL;
		p = policy_load_buffer(text, strlen(text), "p.rules", &errors);
		if (p == NULL)
			fail_msg("refused: %s", errors ? errors : text);
		for (k = 0; k < 40; k++) {
			gen_host(host, sizeof(host));
			rc = pcre2_match(p->rules[0].host, (PCRE2_SPTR)host, strlen(host), 0, 0, m,
			    p->mctx);
			if (!policy_rule_may_match(&p->rules[0], host, strlen(host))) {
				rejected++;
				if (rc >= 0)
					fail_msg("pattern %s matches %s, but the prefilter "
					    "(prefix \"%s\", suffix \"%s\") says it cannot", pat, host,
					    p->rules[0].prefix ? p->rules[0].prefix : "",
					    p->rules[0].suffix ? p->rules[0].suffix : "");
			}
			matches += rc >= 0;
		}
		policy_unref(p);
	}
	pcre2_match_data_free(m);
	printf("  3000 patterns x 40 hosts: %zu matches, %zu rejected by the prefilter\n",
	    matches, rejected);
	assert_true(matches > 1000);
	assert_true(rejected > 10000);
}

/* What the extraction reads, and where it must give up. */
static void
test_literals_table(void **state)
{
	static const struct {
		const char *pat, *prefix, *suffix;
	} cases[] = {
		{ "(.+\\.)?github\\.com", "", "github.com" },
		{ "api\\.Example\\.com", "api.example.com", "api.example.com" },
		{ "mirror7\\.(debian|ubuntu)\\.com", "mirror7.", ".com" },
		{ "ab?c", "a", "c" },
		{ "abc+", "ab", "" },
		{ "abc{2}d", "ab", "d" },
		{ "a+?b", "", "b" },
		{ "abc$", "abc", "" },
		{ "^abc", "", "abc" },
		{ "x\\.foo\\.com|y\\.foo\\.com", "", ".foo.com" },
		{ "foo\\.com|foo\\.net", "foo.", "" },
		{ "abc|", "", "" },
		{ "[a-z]+\\.cdn\\.net", "", ".cdn.net" },
		{ "[]a]x", "", "x" },
		{ "[\\]a]x", "", "x" },
		{ "[[:alpha:]]x", "", "x" },
		{ "(?:a|b)c", "", "c" },
		{ "(?=a)ab", "", "ab" },
		{ "(?<!b)ab", "", "ab" },
		{ "10\\.1\\.\\d+", "10.1.", "" },
		{ ".*", "", "" },
		/* give up: options, verbs, \Q, backreferences, \c, named groups, \x */
		{ "(?i)abc", "", "" },
		{ "a(?x)bc", "", "" },
		{ "(*NO_JIT)abc", "", "" },
		{ "\\Qa.b\\E", "", "" },
		{ "(a)\\1", "", "" },
		{ "\\c)abc", "", "" },
		{ "(?<n>a)bc", "", "" },
		{ "\\x61bc", "", "" },
		{ "[[:a]x:]]bc", "", "" },
	};
	struct policy_literals lit;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		policy_literals_extract(cases[i].pat, strlen(cases[i].pat), &lit);
		if (lit.prefixlen != strlen(cases[i].prefix) ||
		    memcmp(lit.prefix, cases[i].prefix, lit.prefixlen) != 0 ||
		    lit.suffixlen != strlen(cases[i].suffix) ||
		    memcmp(lit.suffix, cases[i].suffix, lit.suffixlen) != 0)
			fail_msg("%s: got prefix \"%.*s\" suffix \"%.*s\", want \"%s\" \"%s\"",
			    cases[i].pat, (int)lit.prefixlen, lit.prefix, (int)lit.suffixlen,
			    lit.suffix, cases[i].prefix, cases[i].suffix);
	}
}

/* Long literals are cut to POLICY_LITERAL_MAX and still index right. */
static void
test_long_literal(void **state)
{
	char text[1200], host[HOST_BUF], *errors = NULL;
	struct policy_request req;
	struct policy_decision d;
	struct policy *p;
	size_t i, len = 0;

	/* 300 literal characters then a class: a prefix longer than the cap. */
	len += (size_t)snprintf(text, sizeof(text), "deny any ");
	for (i = 0; i < 300; i++)
		text[len++] = (char)('a' + i % 3);
	len += (size_t)snprintf(text + len, sizeof(text) - len, "[0-9] *\nallow any .* *\n");
	p = policy_load_buffer(text, len, "l.rules", &errors);
	assert_non_null(p);
	assert_int_equal(p->rules[0].prefixlen, POLICY_LITERAL_MAX);
	memset(&req, 0, sizeof(req));
	for (i = 0; i < 250; i++)
		host[i] = (char)('a' + i % 3);
	host[250] = '\0';
	req.host = host;
	req.method = "GET";
	req.port = 80;
	policy_decide(p, &req, &d);
	assert_string_equal(d.rule, "l.rules:2");
	policy_unref(p);
}

/* Many rules under one key, and keys of many lengths, keep file order. */
static void
test_order_across_lists(void **state)
{
	struct policy *p;
	struct policy_request req;
	struct policy_decision d;
	char *errors = NULL;
	const char *text =
	    "allow user:alice (.+\\.)?example\\.com 443\n"       /* suffix example.com */
	    "deny any .*ample\\.com 443\n"                      /* suffix ample.com */
	    "allow any www\\.example\\.com 443\n"               /* whole */
	    "allow any www\\..* 443\n"                          /* prefix www. */
	    "allow any .* 443\n";                               /* no literal */

	p = policy_load_buffer(text, strlen(text), "o.rules", &errors);
	assert_non_null(p);
	memset(&req, 0, sizeof(req));
	req.method = "CONNECT";
	req.port = 443;
	req.host = "www.example.com";
	req.user = "bob";
	policy_decide(p, &req, &d);
	assert_string_equal(d.rule, "o.rules:2");
	req.user = NULL;
	policy_decide(p, &req, &d);
	assert_true(d.need_credentials);
	assert_string_equal(d.rule, "o.rules:1");
	req.host = "www.other.org";
	policy_decide(p, &req, &d);
	assert_string_equal(d.rule, "o.rules:4");
	req.host = "WWW.EXAMPLE.COM";
	req.user = "alice";
	policy_decide(p, &req, &d);
	assert_string_equal(d.rule, "o.rules:1");
	req.host = "zzz";
	policy_decide(p, &req, &d);
	assert_string_equal(d.rule, "o.rules:5");
	policy_unref(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_literals_table),
		cmocka_unit_test(test_long_literal),
		cmocka_unit_test(test_order_across_lists),
		cmocka_unit_test(test_prefilter_never_hides_a_match),
		cmocka_unit_test(test_index_equals_linear),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
