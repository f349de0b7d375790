/*
 * decide — first-match evaluation of a request against a loaded policy.
 *
 * The rules are read top to bottom; the first whose principal, ports, methods
 * and host all match decides.  No match is a deny ("default_deny").
 *
 * Two places need care.  First, credentials: an anonymous request is not
 * skipped past rules that need an identity.  If the first rule whose host,
 * port and method match needs one, the answer is "ask for credentials" (407),
 * because with credentials that rule might decide differently from whatever
 * comes after it.  Second, matching errors: a pattern that hits the match or
 * depth limit, or fails in any other way, makes the whole decision a deny with
 * reason "policy_error".  Treating it as "no match" would let an attacker who
 * chooses the host (or the SNI) skip a deny rule and reach a later allow.
 * (A host that lacks the literal text a pattern requires is a proven "no
 * match" without running the regex; see index.c.  That is not a fall-through
 * on error: the rule could not have matched.)
 *
 * The decision allocates nothing per call: PCRE2 needs a match-data block,
 * and each thread creates one the first time it decides and keeps it (freed
 * at thread exit through a pthread key).  JIT code runs on the default JIT
 * machine stack; the interpreter keeps its backtracking frames inside the
 * match data (PCRE2 >= 10.41), so after the first decisions on a thread the
 * memory is reused.  The policy itself is only read, so any number of threads
 * may decide on the same policy at once.
 *
 * Scale: a plain scan runs one regex per rule whose port, method and
 * principal fit, which at 10,000 rules is most of a millisecond.  So the
 * rules are indexed by the literal prefix or suffix their pattern requires
 * (index.c), and policy_decide() visits, in file order, only the rules whose
 * literal the host has, plus those without one.  Every rule's literal is
 * checked before its regex in the plain scan too (policy_decide_linear(),
 * kept as the reference the tests compare with), so both visit the same
 * rules that can match, in the same order, and give the same answer, errors
 * included.
 */
#include "policy/policy.h"

#include <pthread.h>
#include <string.h>
#include <strings.h>

#include "policy/rule.h"

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static pthread_key_t md_key;
static bool md_key_ok;
static __thread pcre2_match_data *md;

static void
md_destroy(void *p)
{
	pcre2_match_data_free(p);
}

static void
md_key_init(void)
{
	md_key_ok = pthread_key_create(&md_key, md_destroy) == 0;
}

/*
 * This thread's match data, created on first use.  One ovector pair is enough:
 * we only ask whether the pattern matches (a pattern with more groups still
 * reports a match, with a return of 0 for "ovector too small").
 */
static pcre2_match_data *
thread_match_data(void)
{
	if (md != NULL)
		return md;
	(void)pthread_once(&md_once, md_key_init);
	if ((md = pcre2_match_data_create(1, NULL)) == NULL)
		return NULL;
	if (md_key_ok)
		(void)pthread_setspecific(md_key, md);
	return md;
}

static bool
rule_port_match(const struct policy_rule *r, uint16_t port)
{
	size_t i;

	if (r->any_port)
		return true;
	for (i = 0; i < r->nports; i++)
		if (port >= r->ports[i].lo && port <= r->ports[i].hi)
			return true;
	return false;
}

/*
 * Methods compare exactly: they are case-sensitive (RFC 9110 9.1), "get" is
 * not GET, and the gateway frames and forwards a request by its method as
 * sent.  Matching "get" to a GET rule would let it through as a method the
 * rule never named (and "connect http://..." past a CONNECT rule in clear).
 * The policy file cannot name a method with a lower-case letter (parse.c).
 */
static bool
rule_method_match(const struct policy_rule *r, const char *method)
{
	size_t i;

	if (r->methods == NULL)
		return true;
	if (method == NULL)
		return false;
	for (i = 0; i < r->nmethods; i++)
		if (strcmp(r->methods[i], method) == 0)
			return true;
	return false;
}

/*
 * Does the principal match a request that has a user?  Names compare
 * case-insensitively (ASCII), as directories compare them.
 */
static bool
rule_who_match(const struct policy_rule *r, const struct policy_request *req)
{
	size_t i;

	switch (r->who) {
	case POLICY_WHO_ANY:
		return true;
	case POLICY_WHO_AUTHENTICATED:
		return req->user != NULL;
	case POLICY_WHO_USER:
		return req->user != NULL && strcasecmp(r->who_name, req->user) == 0;
	case POLICY_WHO_GROUP:
		if (req->user == NULL)
			return false;
		for (i = 0; i < req->ngroups; i++)
			if (req->groups[i] != NULL &&
			    strcasecmp(r->who_name, req->groups[i]) == 0)
				return true;
		return false;
	}
	return false;
}

/* 1 match, 0 no match, -1 the pattern could not be evaluated. */
static int
rule_host_match(const struct policy *p, const struct policy_rule *r, const char *host,
    size_t hostlen, pcre2_match_data *m)
{
	int rc;

	rc = pcre2_match(r->host, (PCRE2_SPTR)host, hostlen, 0, 0, m, p->mctx);
	if (rc >= 0)
		return 1;
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	return -1;
}

static void
decision_set(struct policy_decision *d, bool allow, const char *reason,
    const struct policy_rule *r)
{
	d->allow = allow;
	d->need_credentials = false;
	d->reason = reason;
	d->rule = r != NULL ? r->ref : NULL;
	d->rule_text = r != NULL ? r->text : NULL;
	d->sni = allow && r != NULL ? r->sni : POLICY_SNI_REQUIRE;
	d->list = NULL;
	d->list_line = 0;
}

/* A fresh answer: default deny, no report rule matched yet. */
static void
decision_init(struct policy_decision *d)
{
	decision_set(d, false, "default_deny", NULL);
	d->report = d->report_text = d->report_list = NULL;
	d->report_line = d->report_id = 0;
}

/* The first report rule that matched is the one named; later ones are not. */
static void
report_note(const struct policy *p, const struct policy_rule *r, uint32_t line,
    struct policy_decision *d)
{
	if (d->report != NULL)
		return;
	d->report = r->ref;
	d->report_text = r->text;
	d->report_list = r->list >= 0 ? plists_name(p->lists, r->list) : NULL;
	d->report_line = line;
	d->report_id = r->report_id;
}

/*
 * Whether list rule r's list holds the host: from the lists found once for
 * this decision, or (past their bound) from the store.  *line: the entry.
 */
static bool
rule_list_match(const struct policy *p, const struct policy_rule *r, const char *host,
    size_t hostlen, const struct policy_list_match *lm, uint32_t *line)
{
	size_t i;

	for (i = 0; i < lm->n; i++)
		if (lm->hits[i].list == (uint32_t)r->list) {
			*line = lm->hits[i].line;
			return true;
		}
	return lm->overflow && plists_match_one(p->lists, r->list, host, hostlen, line);
}

/*
 * Rule r against the request.  Returns true if it decides (d is set), false
 * to go on with the next rule.  The linear scan and the indexed walk both
 * call this for the rules they visit, in rule order, so the two differ only
 * in which rules they visit: the index leaves out exactly those for which
 * policy_rule_may_match() is false (and list rules whose list does not hold
 * the host), and this function skips them too.
 */
static bool
rule_eval(const struct policy *p, const struct policy_rule *r,
    const struct policy_request *req, const char *host, size_t hostlen,
    const struct policy_list_match *lm, pcre2_match_data *m, struct policy_decision *d)
{
	bool anonymous = req->user == NULL;
	uint32_t line = 0;
	int hm;

	if (!rule_port_match(r, req->port) || !rule_method_match(r, req->method))
		return false;
	/* Under "auth none" nobody can be an identity: such rules do not exist. */
	if (req->no_identity && policy_rule_needs_identity(r))
		return false;
	/*
	 * With a user, a rule for someone else is skipped before its pattern
	 * costs anything.  Without one, identity rules still take part: their
	 * host decides whether to ask for credentials.
	 */
	if (!anonymous && !rule_who_match(r, req))
		return false;
	if (r->list >= 0) {
		if (!rule_list_match(p, r, host, hostlen, lm, &line))
			return false;
		hm = 1;
	} else {
		/*
		 * A host without the literal text the pattern requires cannot
		 * match, so the regex is not run and cannot hit its match limit
		 * either: this is part of the semantics, not only a shortcut
		 * (see index.c).
		 */
		if (!policy_rule_may_match(r, host, hostlen))
			return false;
		hm = rule_host_match(p, r, host, hostlen, m);
	}
	if (hm == 0)
		return false;
	/*
	 * A report rule never decides, whatever happens in it: not a match,
	 * not a matching error (that would have denied: it is reported), not
	 * a request for credentials (an anonymous request cannot match an
	 * identity rule; asking would be deciding).
	 */
	if (r->report) {
		if (!(anonymous && policy_rule_needs_identity(r)))
			report_note(p, r, line, d);
		return false;
	}
	if (hm == -1) {
		decision_set(d, false, "policy_error", r);
		return true;
	}
	if (anonymous && policy_rule_needs_identity(r)) {
		decision_set(d, false, "auth_required", r);
		d->need_credentials = true;
	} else
		decision_set(d, r->allow, r->allow ? "ok" : "policy", r);
	if (r->list >= 0) {
		d->list = plists_name(p->lists, r->list);
		d->list_line = line;
	}
	return true;
}

/* The lists that hold the host, found once per decision. */
static void
list_match(const struct policy *p, const char *host, size_t hostlen,
    struct policy_list_match *lm)
{
	lm->n = 0;
	lm->overflow = false;
	if (p->lists != NULL)
		lm->n = plists_match(p->lists, host, hostlen, lm->hits, POLICY_LIST_HITS_MAX,
		    &lm->overflow);
}

void
policy_decide_linear(const struct policy *p, const struct policy_request *req,
    struct policy_decision *d)
{
	const char *host = req->host != NULL ? req->host : "";
	size_t hostlen = strlen(host), i;
	struct policy_list_match lm;
	pcre2_match_data *m;

	decision_init(d);
	if ((m = thread_match_data()) == NULL) {
		/* Cannot evaluate anything: fail closed. */
		decision_set(d, false, "policy_error", NULL);
		return;
	}
	list_match(p, host, hostlen, &lm);
	for (i = 0; i < p->nrules; i++)
		if (rule_eval(p, &p->rules[i], req, host, hostlen, &lm, m, d))
			return;
}

/*
 * The indexed walk: the candidate lists are each in rule order, and they are
 * merged by always taking the smallest head, so rules are visited in file
 * order.  There are few lists (one per literal length the host hits, one per
 * domain list that holds it, plus the rules without a literal), so picking
 * the head by a plain scan is cheaper than a heap.  The cursors live on the
 * stack: nothing is allocated.
 */
void
policy_decide(const struct policy *p, const struct policy_request *req,
    struct policy_decision *d)
{
	struct policy_cursor cur[POLICY_CURSORS_MAX];
	struct policy_list_match lm;
	const char *host = req->host != NULL ? req->host : "";
	size_t hostlen = strlen(host), n, k, best;
	pcre2_match_data *m;

	list_match(p, host, hostlen, &lm);
	if (p->index == NULL || lm.overflow) {
		policy_decide_linear(p, req, d);
		return;
	}
	decision_init(d);
	if ((m = thread_match_data()) == NULL) {
		decision_set(d, false, "policy_error", NULL);
		return;
	}
	n = policy_index_candidates(p->index, host, hostlen, &lm, cur);
	while (n > 0) {
		best = 0;
		for (k = 1; k < n; k++)
			if (*cur[k].next < *cur[best].next)
				best = k;
		if (rule_eval(p, &p->rules[*cur[best].next], req, host, hostlen, &lm, m, d))
			return;
		if (++cur[best].next == cur[best].end)
			cur[best] = cur[--n];
	}
}
