/*
 * index — find the few rules that could match a host without running the
 * regex of every rule.
 *
 * A company policy holds thousands of rules; running 10,000 regexes per
 * CONNECT costs most of a millisecond on the event loop.  But nearly every
 * host pattern an admin writes ends (or starts) with plain text:
 * "(.+\.)?github\.com" can only match a host that ends in "github.com",
 * "mirror7\.(debian|ubuntu)\.com" only one that starts with "mirror7.".  So
 * each rule's pattern is read once, at load time, for its required literal
 * prefix and suffix (policy_literals_extract), and the rule is filed in a
 * hash table under the longer of the two.  A decision hashes every prefix and
 * suffix of the host whose length some key has, collects the lists it hits
 * plus the list of rules with no literal at all, and decide.c walks them
 * merged in rule order.
 *
 * The difficulty is that this must never change an answer.  Two things make
 * that hold.  First, the extraction is conservative: it reads the pattern as
 * a sequence of atoms and understands only plain characters, escaped
 * punctuation, '.', character classes, groups and quantifiers; anything that
 * could change how later text is read (inline options, \Q, verbs, \c, named
 * or numbered references, ...) makes it give up, and a rule without a
 * literal is always a candidate.  Second, the literal check is part of the
 * decision itself, in the linear scan as much as in the indexed one
 * (policy_rule_may_match() runs before the regex in both): a host that lacks
 * a required literal cannot match, so its regex is not run and cannot hit a
 * match limit.  The index then only skips rules the check would skip, and
 * walks the others in file order, so the first match is the same rule; the
 * randomized test in tests/unit/test_policy_index.c compares both.
 *
 * Nothing here allocates per decision: the cursors live on the caller's
 * stack, bounded by the number of distinct literal lengths (at most 255 per
 * side).
 */
#include "policy/policy.h"

#include <stdlib.h>
#include <string.h>

#include "policy/rule.h"

static inline unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* ---- literal extraction ------------------------------------------------ */

/* The state of one top-level branch of the pattern. */
struct branch {
	char pre[POLICY_LITERAL_MAX];   /* literal atoms from the start, until the first other */
	size_t prelen;
	bool pre_open;                  /* no other atom seen yet */
	char run[POLICY_LITERAL_MAX];   /* the trailing run of literal atoms (last 255) */
	size_t runlen;
	bool last_literal;              /* the previous atom was a literal just added */
};

static void
branch_init(struct branch *b)
{
	b->prelen = 0;
	b->pre_open = true;
	b->runlen = 0;
	b->last_literal = false;
}

static void
branch_literal(struct branch *b, unsigned char c)
{
	c = lower(c);
	if (b->pre_open) {
		if (b->prelen < POLICY_LITERAL_MAX)
			b->pre[b->prelen++] = (char)c;
		else
			b->pre_open = false;    /* keep the first 255: still required */
	}
	if (b->runlen == POLICY_LITERAL_MAX) {
		/* Keep the last 255: a suffix of a required suffix is required. */
		memmove(b->run, b->run + 1, POLICY_LITERAL_MAX - 1);
		b->runlen--;
	}
	b->run[b->runlen++] = (char)c;
	b->last_literal = true;
}

/* An atom that may match other text, or none (group, class, '.', assertion). */
static void
branch_other(struct branch *b)
{
	b->pre_open = false;
	b->runlen = 0;
	b->last_literal = false;
}

/*
 * A quantifier: the previous atom may repeat or vanish.  If it was a literal
 * it is taken back from both ends; either way the trailing run starts again.
 */
static void
branch_quantifier(struct branch *b)
{
	if (b->last_literal && b->pre_open && b->prelen > 0)
		b->prelen--;
	branch_other(b);
}

/* Characters that stand for themselves unescaped, as we choose to read them. */
static bool
plain_literal(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '_';
}

/* Escapes of a letter that are single-character sets or assertions: harmless. */
static bool
harmless_class_escape(unsigned char c)
{
	return c != '\0' && strchr("dDwWsShHvVbBAzZG", c) != NULL;
}

/*
 * Skip a character class starting at p[i] == '['.  Returns the index after its
 * closing ']', or 0 if the class is not one we can read safely.
 */
static size_t
skip_class(const char *p, size_t len, size_t i)
{
	unsigned char c;

	i++;
	if (i < len && p[i] == '^')
		i++;
	if (i < len && p[i] == ']')
		i++;                        /* a ']' first is a literal */
	while (i < len) {
		c = (unsigned char)p[i];
		if (c == ']')
			return i + 1;
		if (c == '\\') {
			if (i + 1 >= len)
				return 0;
			c = (unsigned char)p[i + 1];
			/* \Q, \E, \c and friends could swallow the ']': give up. */
			if (((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) &&
			    !harmless_class_escape(c))
				return 0;
			i += 2;
			continue;
		}
		if (c == '[' && i + 1 < len && (p[i + 1] == ':' || p[i + 1] == '.' ||
		    p[i + 1] == '=')) {
			/*
			 * Only a well-formed [:name:] or [:^name:] is skipped;
			 * PCRE2's own rules for what else "[:" may start are
			 * subtle enough that we give up instead.
			 */
			if (p[i + 1] != ':')
				return 0;
			i += 2;
			if (i < len && p[i] == '^')
				i++;
			while (i < len && ((p[i] >= 'a' && p[i] <= 'z') ||
			    (p[i] >= 'A' && p[i] <= 'Z')))
				i++;
			if (i + 1 >= len || p[i] != ':' || p[i + 1] != ']')
				return 0;
			i += 2;
			continue;
		}
		i++;
	}
	return 0;
}

/*
 * Skip a group starting at p[i] == '('.  Only plain groups, (?: and the
 * lookarounds are read; anything else after "(?" or "(*" (options, names,
 * verbs, comments, conditionals) gives up.  Returns the index after the
 * matching ')', or 0.
 */
static size_t
skip_group(const char *p, size_t len, size_t i)
{
	size_t depth = 0, j;
	unsigned char c;

	while (i < len) {
		c = (unsigned char)p[i];
		switch (c) {
		case '\\':
			if (i + 1 >= len)
				return 0;
			c = (unsigned char)p[i + 1];
			if (((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9')) && !harmless_class_escape(c))
				return 0;
			i += 2;
			break;
		case '[':
			if ((j = skip_class(p, len, i)) == 0)
				return 0;
			i = j;
			break;
		case '(':
			if (i + 1 < len && p[i + 1] == '*')
				return 0;
			if (i + 1 < len && p[i + 1] == '?') {
				if (i + 2 >= len)
					return 0;
				c = (unsigned char)p[i + 2];
				if (c == '<' && i + 3 < len)
					c = (unsigned char)p[i + 3];   /* (?<= and (?<! */
				if (c != ':' && c != '=' && c != '!')
					return 0;
			}
			depth++;
			i++;
			break;
		case ')':
			if (depth == 0)
				return 0;
			i++;
			if (--depth == 0)
				return i;
			break;
		default:
			i++;
			break;
		}
	}
	return 0;
}

static size_t
common_prefix(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = 0;

	while (n < alen && n < blen && a[n] == b[n])
		n++;
	return n;
}

static size_t
common_suffix(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = 0;

	while (n < alen && n < blen && a[alen - 1 - n] == b[blen - 1 - n])
		n++;
	return n;
}

/*
 * Fold a finished branch into the pattern's literals: with top-level
 * alternatives, what every branch starts (ends) with is what the pattern
 * starts (ends) with.
 */
static void
literals_merge(struct policy_literals *out, const struct branch *b, bool first)
{
	size_t n;

	if (first) {
		memcpy(out->prefix, b->pre, b->prelen);
		out->prefixlen = b->prelen;
		memcpy(out->suffix, b->run, b->runlen);
		out->suffixlen = b->runlen;
		return;
	}
	out->prefixlen = common_prefix(out->prefix, out->prefixlen, b->pre, b->prelen);
	n = common_suffix(out->suffix, out->suffixlen, b->run, b->runlen);
	memmove(out->suffix, out->suffix + out->suffixlen - n, n);
	out->suffixlen = n;
}

void
policy_literals_extract(const char *p, size_t len, struct policy_literals *out)
{
	struct branch b;
	bool first = true;
	size_t i = 0, j;
	unsigned char c;

	out->prefixlen = out->suffixlen = 0;
	branch_init(&b);
	while (i < len) {
		c = (unsigned char)p[i];
		switch (c) {
		case '\\':
			if (i + 1 >= len)
				goto unknown;
			c = (unsigned char)p[i + 1];
			if (c >= 0x21 && c <= 0x7e && !((c >= 'a' && c <= 'z') ||
			    (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
				branch_literal(&b, c);
			else if (harmless_class_escape(c))
				branch_other(&b);
			else
				goto unknown;
			i += 2;
			break;
		case '[':
			if ((j = skip_class(p, len, i)) == 0)
				goto unknown;
			branch_other(&b);
			i = j;
			break;
		case '(':
			if ((j = skip_group(p, len, i)) == 0)
				goto unknown;
			branch_other(&b);
			i = j;
			break;
		case '?':
		case '*':
		case '+':
		case '{':
			/*
			 * A '{' that does not start a valid {n,m} is a literal
			 * to PCRE2; reading it as a quantifier is only
			 * conservative.  The digits that follow are read as
			 * literals, and the '}' ends the run again.
			 */
			branch_quantifier(&b);
			i++;
			break;
		case '|':
			literals_merge(out, &b, first);
			first = false;
			branch_init(&b);
			i++;
			break;
		case ')':
			goto unknown;               /* unbalanced: not a pattern we read */
		default:
			if (plain_literal(c))
				branch_literal(&b, c);
			else
				branch_other(&b);   /* '.', '^', '$', and punctuation we do not trust */
			i++;
			break;
		}
	}
	literals_merge(out, &b, first);
	return;
unknown:
	out->prefixlen = out->suffixlen = 0;
}

/* Compare host text (any case) with a lower-case literal. */
static bool
lit_equal(const char *host, const char *lit, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (lower((unsigned char)host[i]) != (unsigned char)lit[i])
			return false;
	return true;
}

bool
policy_rule_may_match(const struct policy_rule *r, const char *host, size_t len)
{
	if (r->suffix != NULL && (r->suffixlen > len ||
	    !lit_equal(host + len - r->suffixlen, r->suffix, r->suffixlen)))
		return false;
	if (r->prefix != NULL && (r->prefixlen > len ||
	    !lit_equal(host, r->prefix, r->prefixlen)))
		return false;
	return true;
}

/* ---- the index --------------------------------------------------------- */

/*
 * FNV-1a over the literal, read from its far end for suffixes (so that every
 * suffix of the host is hashed in one pass from the right) and from its start
 * for prefixes.
 */
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

struct ikey {
	const char *lit;                /* NULL: empty slot; else the rule's lower-case literal */
	size_t len;
	uint64_t hash;
	uint32_t *rules;                /* ascending rule numbers */
	uint32_t nrules;
	uint32_t cap;
};

struct iside {
	struct ikey *slots;             /* open addressing, linear probing */
	size_t mask;                    /* slots - 1 (a power of two), 0 if empty */
	size_t lens[POLICY_LITERAL_MAX];/* distinct key lengths, ascending */
	size_t nlens;
	bool haslen[POLICY_LITERAL_MAX + 1];
};

/* The rules of one domain list (list.c decides whether the list holds the host). */
struct ilist {
	uint32_t *rules;                /* ascending rule numbers */
	uint32_t nrules;
	uint32_t cap;
};

struct policy_index {
	struct iside side[2];           /* 0: by prefix, 1: by suffix */
	uint32_t *always;               /* rules with no literal: always candidates */
	size_t nalways;
	struct ilist *lists;            /* by list id: the rules naming that @FILE */
	size_t nlists;
};

static uint64_t
hash_lit(const char *s, size_t len, bool from_end)
{
	uint64_t h = FNV_OFFSET;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= lower((unsigned char)s[from_end ? len - 1 - i : i]);
		h *= FNV_PRIME;
	}
	return h;
}

static int
list_add(uint32_t **list, uint32_t *n, uint32_t *cap, uint32_t rule)
{
	uint32_t *nl;
	uint32_t ncap;

	if (*n == *cap) {
		ncap = *cap ? *cap * 2 : 2;
		if ((nl = reallocarray(*list, ncap, sizeof(*nl))) == NULL)
			return -1;
		*list = nl;
		*cap = ncap;
	}
	(*list)[(*n)++] = rule;
	return 0;
}

static int
side_add(struct iside *s, const char *lit, size_t len, bool from_end, uint32_t rule)
{
	uint64_t h = hash_lit(lit, len, from_end);
	struct ikey *k;
	size_t i;

	for (i = h & s->mask;; i = (i + 1) & s->mask) {
		k = &s->slots[i];
		if (k->lit == NULL)
			break;
		if (k->hash == h && k->len == len && memcmp(k->lit, lit, len) == 0)
			return list_add(&k->rules, &k->nrules, &k->cap, rule);
	}
	k->lit = lit;
	k->len = len;
	k->hash = h;
	if (!s->haslen[len]) {
		s->haslen[len] = true;
		s->nlens++;
	}
	return list_add(&k->rules, &k->nrules, &k->cap, rule);
}

void
policy_index_free(struct policy_index *ix)
{
	size_t s, i;

	if (ix == NULL)
		return;
	for (s = 0; s < 2; s++) {
		for (i = 0; ix->side[s].slots != NULL && i <= ix->side[s].mask; i++)
			free(ix->side[s].slots[i].rules);
		free(ix->side[s].slots);
	}
	free(ix->always);
	for (i = 0; i < ix->nlists; i++)
		free(ix->lists[i].rules);
	free(ix->lists);
	free(ix);
}

int
policy_index_build(struct policy *p)
{
	struct policy_index *ix;
	const struct policy_rule *r;
	size_t keyed[2] = { 0, 0 }, s, i, n;
	uint32_t always_cap = 0, nalways = 0;
	int which;

	if (p->nrules > UINT32_MAX)
		return -1;
	if ((ix = calloc(1, sizeof(*ix))) == NULL)
		return -1;
	if (p->lists != NULL && (ix->nlists = plists_count(p->lists)) > 0 &&
	    (ix->lists = calloc(ix->nlists, sizeof(*ix->lists))) == NULL)
		goto fail;
	/* Each rule is filed once, under its longer literal (the suffix on a tie). */
	for (i = 0; i < p->nrules; i++) {
		r = &p->rules[i];
		if (r->suffixlen > 0 || r->prefixlen > 0)
			keyed[r->suffixlen >= r->prefixlen ? 1 : 0]++;
	}
	for (s = 0; s < 2; s++) {
		if (keyed[s] == 0)
			continue;
		for (n = 8; n < keyed[s] * 2; n *= 2)
			;
		if ((ix->side[s].slots = calloc(n, sizeof(struct ikey))) == NULL)
			goto fail;
		ix->side[s].mask = n - 1;
	}
	for (i = 0; i < p->nrules; i++) {
		r = &p->rules[i];
		if (r->list >= 0) {
			if ((size_t)r->list >= ix->nlists || list_add(&ix->lists[r->list].rules,
			    &ix->lists[r->list].nrules, &ix->lists[r->list].cap, (uint32_t)i) == -1)
				goto fail;
			continue;
		}
		if (r->suffixlen == 0 && r->prefixlen == 0) {
			if (list_add(&ix->always, &nalways, &always_cap, (uint32_t)i) == -1)
				goto fail;
			continue;
		}
		which = r->suffixlen >= r->prefixlen ? 1 : 0;
		if (which == 1 ? side_add(&ix->side[1], r->suffix, r->suffixlen, true, (uint32_t)i) :
		    side_add(&ix->side[0], r->prefix, r->prefixlen, false, (uint32_t)i))
			goto fail;
	}
	ix->nalways = nalways;
	for (s = 0; s < 2; s++) {
		ix->side[s].nlens = 0;
		for (n = 1; n <= POLICY_LITERAL_MAX; n++)
			if (ix->side[s].haslen[n])
				ix->side[s].lens[ix->side[s].nlens++] = n;
	}
	p->index = ix;
	return 0;
fail:
	policy_index_free(ix);
	return -1;
}

/* The list filed under host's prefix (suffix) of length n, if any. */
static const struct ikey *
side_find(const struct iside *s, uint64_t h, const char *text, size_t n)
{
	const struct ikey *k;
	size_t i;

	for (i = h & s->mask;; i = (i + 1) & s->mask) {
		k = &s->slots[i];
		if (k->lit == NULL)
			return NULL;
		if (k->hash == h && k->len == n && lit_equal(text, k->lit, n))
			return k;
	}
}

/*
 * Walk the host once from one end, hashing as it goes, and look up the
 * lengths that some key has.
 */
static size_t
side_candidates(const struct iside *s, bool from_end, const char *host, size_t len,
    struct policy_cursor *cur)
{
	const struct ikey *k;
	uint64_t h = FNV_OFFSET;
	size_t n = 0, li = 0, i;

	if (s->slots == NULL)
		return 0;
	for (i = 1; i <= len && li < s->nlens; i++) {
		h ^= lower((unsigned char)host[from_end ? len - i : i - 1]);
		h *= FNV_PRIME;
		if (i != s->lens[li])
			continue;
		li++;
		if ((k = side_find(s, h, from_end ? host + len - i : host, i)) != NULL) {
			cur[n].next = k->rules;
			cur[n].end = k->rules + k->nrules;
			n++;
		}
	}
	return n;
}

size_t
policy_index_candidates(const struct policy_index *ix, const char *host, size_t len,
    const struct policy_list_match *lm, struct policy_cursor *cur)
{
	const struct ilist *il;
	size_t n = 0, i;

	for (i = 0; i < lm->n; i++) {
		if (lm->hits[i].list >= ix->nlists)
			continue;
		il = &ix->lists[lm->hits[i].list];
		if (il->nrules == 0)
			continue;
		cur[n].next = il->rules;
		cur[n].end = il->rules + il->nrules;
		n++;
	}
	if (ix->nalways > 0) {
		cur[n].next = ix->always;
		cur[n].end = ix->always + ix->nalways;
		n++;
	}
	n += side_candidates(&ix->side[0], false, host, len, cur + n);
	n += side_candidates(&ix->side[1], true, host, len, cur + n);
	return n;
}
