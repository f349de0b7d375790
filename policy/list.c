/*
 * list — domain lists: `@FILE` in a rule's host column.
 *
 *	# allow.list
 *	example.com             that host only
 *	.example.org            example.org and every name under it
 *	192.0.2.10              that address (::ffff:192.0.2.10 is the same one)
 *	2001:db8::1
 *
 * Admins keep destination lists of tens of thousands of names, and category
 * feeds run to millions; one regex per name would take seconds to load and a
 * scan per decision.  So a list is not a pattern: every entry is normalized
 * exactly as the gateway normalizes a host (host_normalize: lower case, one
 * trailing dot dropped, IP literals canonical, an IPv4-mapped IPv6 address
 * as its IPv4 address), and filed in one hash table shared by every list of
 * the policy, keyed by the name.  A decision hashes the host's suffixes at
 * its label boundaries in one pass from the right and probes each: the cost
 * depends on the host's labels, never on the lists' sizes.
 *
 * Memory is the other constraint: a million entries must fit in well under
 * 150 MB and be freed without stalling the worker that drops the last
 * reference.  So there is no allocation per entry: names live once each in
 * one arena (a length byte, then the bytes), the entries that hold a name are
 * 16-byte records chained from its slot, and the table's slots are 8 bytes.
 * A few large arrays, grown by doubling, freed in a few calls.
 *
 * Errors are the parser's: every bad entry is "LIST:LINE: message" and the
 * whole policy is refused; past PLIST_ERRORS_MAX in one list (a file that is
 * not a list at all), one more line counts the rest.
 */
#include "policy/list.h"

#include <sys/mman.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL
#define SUFFIX_BIT 0x80000000u      /* in lhit.line: a .suffix entry */
#define LINE_MASK 0x7fffffffu
#define BOUNDS_MAX (HOST_MAX + 2)   /* label boundaries of any host we look up */

/* An entry: list `list` holds the name at arena offset `name`, from `line`. */
struct lhit {
	uint32_t name;                  /* arena offset of the name record */
	uint32_t list;
	uint32_t line;                  /* line number | SUFFIX_BIT */
	uint32_t next;                  /* next entry of the same name, index + 1; 0 ends */
};

/* A hash slot: one distinct name. */
struct lslot {
	uint32_t hash;                  /* folded hash of the name */
	uint32_t hit;                   /* first entry, index + 1; 0 = empty slot */
};

/* An entry dropped as a duplicate, kept for the lint. */
struct ldup {
	uint32_t list;
	uint32_t line;                  /* the duplicate's line | SUFFIX_BIT */
	uint32_t first;                 /* the line it repeats */
	uint32_t name;
};

struct plist {
	char *name;                     /* as the rule wrote it */
	size_t entries;
};

struct plists {
	struct plist *lists;
	size_t nlists, lists_cap;
	char *arena;                    /* name records: length byte, then the bytes */
	size_t alen, acap;
	struct lhit *hits;
	size_t nhits, hcap;
	struct lslot *slots;            /* NULL while empty */
	size_t mask, used;
	struct ldup *dups;
	size_t ndups, dcap;
	size_t total;
};

static inline unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static inline uint32_t
fold(uint64_t h)
{
	return (uint32_t)(h ^ (h >> 32));
}

/* The hash of s[0..len), read from its end (so that suffixes hash incrementally). */
static uint32_t
name_hash(const char *s, size_t len)
{
	uint64_t h = FNV_OFFSET;

	while (len-- > 0) {
		h ^= lower((unsigned char)s[len]);
		h *= FNV_PRIME;
	}
	return fold(h);
}

static bool
name_equal(const struct plists *p, uint32_t off, const char *s, size_t len)
{
	const unsigned char *rec = (const unsigned char *)p->arena + off;
	size_t i;

	if (rec[0] != len)
		return false;
	for (i = 0; i < len; i++)
		if (rec[1 + i] != lower((unsigned char)s[i]))
			return false;
	return true;
}

/*
 * The big arrays (names, entries, slots, duplicates) are mapped pages of
 * their own, grown with mremap: growing never copies, and freeing gives the
 * memory back to the system at once.  From malloc, a reload would leave the
 * old policy's tens of megabytes in the allocator's heaps, and the daemon's
 * RSS would climb with every reload.
 */
static void *
big_resize(void *old, size_t oldsz, size_t newsz)
{
	void *p;

	if (old == NULL)
		p = mmap(NULL, newsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	else
		p = mremap(old, oldsz, newsz, MREMAP_MAYMOVE);
	return p == MAP_FAILED ? NULL : p;
}

static void
big_free(void *p, size_t sz)
{
	if (p != NULL)
		(void)munmap(p, sz);
}

struct plists *
plists_new(void)
{
	return calloc(1, sizeof(struct plists));
}

void
plists_free(struct plists *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nlists; i++)
		free(p->lists[i].name);
	free(p->lists);
	big_free(p->arena, p->acap);
	big_free(p->hits, p->hcap * sizeof(*p->hits));
	big_free(p->slots, p->slots != NULL ? (p->mask + 1) * sizeof(*p->slots) : 0);
	big_free(p->dups, p->dcap * sizeof(*p->dups));
	free(p);
}

int
plists_find(const struct plists *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->nlists; i++)
		if (strcmp(p->lists[i].name, name) == 0)
			return (int)i;
	return -1;
}

size_t
plists_count(const struct plists *p)
{
	return p->nlists;
}

const char *
plists_name(const struct plists *p, int list)
{
	return p->lists[list].name;
}

size_t
plists_entries(const struct plists *p, int list)
{
	return p->lists[list].entries;
}

size_t
plists_total(const struct plists *p)
{
	return p->total;
}

/* ---- building ----------------------------------------------------------- */

/* Grow the malloc'd *buf (of *cap elements of size sz) to hold need; -1 out of memory. */
static int
grow(void *bufp, size_t *cap, size_t need, size_t sz, size_t first)
{
	void **buf = bufp, *nb;
	size_t ncap = *cap ? *cap : first;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	if ((nb = reallocarray(*buf, ncap, sz)) == NULL)
		return -1;
	*buf = nb;
	*cap = ncap;
	return 0;
}

/* The same for a big array (big_resize); capacities are whole pages. */
static int
big_grow(void *bufp, size_t *cap, size_t need, size_t sz)
{
	void **buf = bufp, *nb;
	size_t ncap = *cap ? *cap : 65536 / sz;

	if (need <= *cap)
		return 0;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / sz)
			return -1;
		ncap *= 2;
	}
	if ((nb = big_resize(*buf, *cap * sz, ncap * sz)) == NULL)
		return -1;
	*buf = nb;
	*cap = ncap;
	return 0;
}

/* The slot for hash h and name s, or the empty slot where it would go. */
static struct lslot *
slot_find(const struct plists *p, uint32_t h, const char *s, size_t len)
{
	struct lslot *sl;
	size_t i;

	for (i = h & p->mask;; i = (i + 1) & p->mask) {
		sl = &p->slots[i];
		if (sl->hit == 0)
			return sl;
		if (sl->hash == h && name_equal(p, p->hits[sl->hit - 1].name, s, len))
			return sl;
	}
}

/* Double the table (or make the first one); -1 out of memory. */
static int
table_grow(struct plists *p)
{
	struct lslot *old = p->slots, *ns;
	size_t oldn = old != NULL ? p->mask + 1 : 0, n = oldn ? oldn * 2 : 1024, i, j;

	if ((ns = big_resize(NULL, 0, n * sizeof(*ns))) == NULL)
		return -1;      /* fresh pages are zero: every slot empty */
	for (i = 0; i < oldn; i++) {
		if (old[i].hit == 0)
			continue;
		for (j = old[i].hash & (n - 1); ns[j].hit != 0; j = (j + 1) & (n - 1))
			;
		ns[j] = old[i];
	}
	big_free(old, oldn * sizeof(*old));
	p->slots = ns;
	p->mask = n - 1;
	return 0;
}

/*
 * File one entry.  Returns 0, 1 when it repeats an entry of the same list
 * (kept for the lint, not stored), -1 out of memory.
 */
static int
entry_add(struct plists *p, uint32_t list, const char *name, size_t len, bool suffix,
    uint32_t line)
{
	struct lslot *sl;
	struct lhit *h;
	uint32_t hash = name_hash(name, len), i, off;

	if ((p->used + 1) * 2 > (p->slots != NULL ? p->mask + 1 : 0) && table_grow(p) == -1)
		return -1;
	sl = slot_find(p, hash, name, len);
	if (sl->hit != 0) {
		for (i = sl->hit; i != 0; i = p->hits[i - 1].next) {
			h = &p->hits[i - 1];
			if (h->list == list && ((h->line & SUFFIX_BIT) != 0) == suffix) {
				if (big_grow(&p->dups, &p->dcap, p->ndups + 1, sizeof(*p->dups)) == -1)
					return -1;
				p->dups[p->ndups].list = list;
				p->dups[p->ndups].line = line | (suffix ? SUFFIX_BIT : 0);
				p->dups[p->ndups].first = h->line & LINE_MASK;
				p->dups[p->ndups].name = h->name;
				p->ndups++;
				return 1;
			}
		}
		off = p->hits[sl->hit - 1].name;
	} else {
		if (p->alen + len + 1 > UINT32_MAX ||
		    big_grow(&p->arena, &p->acap, p->alen + len + 1, 1) == -1)
			return -1;
		off = (uint32_t)p->alen;
		p->arena[p->alen] = (char)len;
		memcpy(p->arena + p->alen + 1, name, len);
		p->alen += len + 1;
		sl->hash = hash;
		p->used++;
	}
	if (p->nhits + 1 > UINT32_MAX - 1 ||
	    big_grow(&p->hits, &p->hcap, p->nhits + 1, sizeof(*p->hits)) == -1)
		return -1;
	h = &p->hits[p->nhits];
	h->name = off;
	h->list = list;
	h->line = line | (suffix ? SUFFIX_BIT : 0);
	h->next = sl->hit;
	sl->hit = (uint32_t)++p->nhits;
	return 0;
}

/*
 * Room for about `lines` more entries of `bytes` bytes of names, before any
 * is filed: no rehash or copy of a big array while a million entries go in
 * (pages reserved but never written are not resident).  The hash table is
 * another matter: probes touch its pages at random, so one twice too big
 * costs its size in RSS.  It is sized for table_lines (a cautious estimate)
 * and doubles if the list turns out longer.
 */
static int
reserve(struct plists *p, size_t lines, size_t table_lines, size_t bytes)
{
	size_t n;

	if (big_grow(&p->hits, &p->hcap, p->nhits + lines, sizeof(*p->hits)) == -1 ||
	    big_grow(&p->arena, &p->acap, p->alen + bytes + 1, 1) == -1)
		return -1;
	for (n = p->slots != NULL ? p->mask + 1 : 0; (p->used + table_lines) * 2 > n;) {
		if (table_grow(p) == -1)
			return -1;
		n = p->mask + 1;
	}
	return 0;
}

/* One list being read. */
struct lread {
	const char *name;
	size_t line;
	size_t nerr;
	size_t first_hidden;            /* line of the first error not shown */
	plist_error_fn *err;
	void *arg;
};

static void lerr(struct lread *, const char *, ...) __attribute__((format(printf, 2, 3)));

static void
lerr(struct lread *r, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (r->nerr++ >= PLIST_ERRORS_MAX) {
		if (r->first_hidden == 0)
			r->first_hidden = r->line;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->err(r->arg, r->name, r->line, msg);
}

/*
 * The entry e[0..n): normalized into out (*suffix for ".name"), or an error
 * reported and -1.  The messages name the habits of other tools' lists.
 */
static int
entry_parse(struct lread *r, const char *e, size_t n, char *out, size_t *outlen, bool *suffix)
{
	enum host_kind kind;
	const char *err = NULL, *colon;
	int show = n > 200 ? 200 : (int)n;

	*suffix = false;
	if (n >= 2 && e[0] == '*' && e[1] == '.') {
		lerr(r, "bad entry \"%.*s\": not a glob; write \"%.*s\" for the domain and every "
		    "name under it", show, e, show - 1, e + 1);
		return -1;
	}
	if (memchr(e, '/', n) != NULL) {
		lerr(r, "bad entry \"%.*s\": a list holds host names and IP addresses, not URLs, "
		    "paths or CIDR ranges", show, e);
		return -1;
	}
	if (e[0] == '[') {
		lerr(r, "bad entry \"%.*s\": write an IPv6 address without brackets", show, e);
		return -1;
	}
	colon = memchr(e, ':', n);
	if (colon != NULL && memchr(colon + 1, ':', n - (size_t)(colon - e) - 1) == NULL) {
		lerr(r, "bad entry \"%.*s\": looks like host:port; a list holds hosts only (the "
		    "port goes in the rule's ports column)", show, e);
		return -1;
	}
	if (e[0] == '.') {
		*suffix = true;
		e++;
		n--;
		if (n == 0) {
			lerr(r, "bad entry \".\": a .suffix entry needs a domain after the dot");
			return -1;
		}
		show--;
	}
	if (host_normalize(e, n, out, HOST_BUF, &kind, &err) == -1) {
		lerr(r, "bad entry \"%s%.*s\": %s", *suffix ? "." : "", show, e, err);
		return -1;
	}
	if (*suffix && kind != HOST_NAME) {
		lerr(r, "bad entry \".%.*s\": a .suffix entry needs a domain name, not an IP "
		    "address", show, e);
		return -1;
	}
	*outlen = strlen(out);
	return 0;
}

/* One line s[0..len) without its LF.  Returns -1 out of memory, else 0. */
static int
line_parse(struct plists *p, struct lread *r, uint32_t list, const char *s, size_t len)
{
	char host[HOST_BUF];
	const char *end = s + len, *q, *e;
	size_t hlen;
	bool suffix;
	int rc;

	if (len > 0 && s[len - 1] == '\r')
		end--;
	for (q = s; q < end; q++)
		if (((unsigned char)*q < 0x20 && *q != '\t') || (unsigned char)*q == 0x7f) {
			lerr(r, "control character 0x%02x in line", (unsigned)(unsigned char)*q);
			return 0;
		}
	for (q = s; q < end && (*q == ' ' || *q == '\t'); q++)
		;
	if (q == end || *q == '#')
		return 0;
	for (e = q; e < end && *e != ' ' && *e != '\t'; e++)
		;
	hlen = (size_t)(e - q);
	while (e < end && (*e == ' ' || *e == '\t'))
		e++;
	if (e < end && *e != '#') {
		lerr(r, "more than one entry on the line (one entry a line; \"#\" starts a comment)");
		return 0;
	}
	if (entry_parse(r, q, hlen, host, &hlen, &suffix) == -1)
		return 0;
	if (r->nerr > 0)
		return 0;                   /* refused anyway: only errors matter now */
	if ((rc = entry_add(p, list, host, hlen, suffix, (uint32_t)r->line)) == -1)
		return -1;
	if (rc == 0) {
		p->lists[list].entries++;
		p->total++;
	}
	return 0;
}

/* One list being read, in pieces. */
struct plist_reader {
	struct plists *p;
	struct lread r;
	uint32_t list;
	size_t size_hint;               /* the whole text's size, if known */
	bool started;                   /* the first bytes were seen (BOM, estimate) */
	bool overlong;                  /* the line being read passed PLIST_LINE_MAX */
	bool stopped;                   /* too many lines: the rest is not read */
	bool oom;
	size_t ncarry;                  /* bytes of an unfinished line kept in carry */
	char carry[PLIST_LINE_MAX];
};

struct plist_reader *
plists_open(struct plists *p, const char *name, size_t size_hint, plist_error_fn *err,
    void *arg)
{
	struct plist_reader *rd;

	if (p->nlists >= UINT32_MAX / 2 ||
	    grow(&p->lists, &p->lists_cap, p->nlists + 1, sizeof(*p->lists), 4) == -1)
		return NULL;
	if ((rd = calloc(1, sizeof(*rd))) == NULL)
		return NULL;
	if ((p->lists[p->nlists].name = strdup(name)) == NULL) {
		free(rd);
		return NULL;
	}
	p->lists[p->nlists].entries = 0;
	rd->list = (uint32_t)p->nlists++;
	rd->p = p;
	rd->size_hint = size_hint;
	rd->r.name = p->lists[rd->list].name;
	rd->r.err = err;
	rd->r.arg = arg;
	return rd;
}

/* One whole line s[0..n), without its LF. */
static void
reader_line(struct plist_reader *rd, const char *s, size_t n)
{
	if (rd->stopped || rd->oom)
		return;
	if (++rd->r.line > LINE_MASK) {
		lerr(&rd->r, "too many lines");
		rd->stopped = true;
		return;
	}
	if (rd->overlong) {
		rd->overlong = false;
		lerr(&rd->r, "line longer than %d bytes (a list holds one host name a line)",
		    PLIST_LINE_MAX);
		return;
	}
	/* An invisible UTF-8 BOM (Windows editors) is not part of the first entry. */
	if (rd->r.line == 1 && n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;
		n -= 3;
	}
	if (memchr(s, '\0', n) != NULL) {
		lerr(&rd->r, "NUL byte in line (is this a text file?)");
		return;
	}
	if (line_parse(rd->p, &rd->r, rd->list, s, n) == -1)
		rd->oom = true;
}

/* Keep s[0..n), part of a line not finished yet. */
static void
reader_carry(struct plist_reader *rd, const char *s, size_t n)
{
	if (rd->overlong)
		return;
	if (rd->ncarry + n > sizeof(rd->carry)) {
		rd->overlong = true;
		rd->ncarry = 0;
		return;
	}
	memcpy(rd->carry + rd->ncarry, s, n);
	rd->ncarry += n;
}

int
plists_feed(struct plist_reader *rd, const char *buf, size_t len)
{
	const char *q = buf, *end = buf + len, *nl;
	size_t lines = 1, est;

	if (!rd->started && len > 0) {
		rd->started = true;
		/* The lines to expect, from the first piece's: reserve once for all. */
		for (nl = q; (nl = memchr(nl, '\n', (size_t)(end - nl))) != NULL; nl++)
			lines++;
		est = rd->size_hint > len ? (size_t)((double)lines * (double)rd->size_hint /
		    (double)len) : lines;
		if (est > rd->size_hint / 2 + 1)
			est = rd->size_hint / 2 + 1;
		if (reserve(rd->p, est, rd->size_hint > len ? est / 4 * 3 : est,
		    rd->size_hint > len ? rd->size_hint : len) == -1)
			rd->oom = true;
	}
	while (q < end && !rd->oom) {
		if ((nl = memchr(q, '\n', (size_t)(end - q))) == NULL) {
			reader_carry(rd, q, (size_t)(end - q));
			break;
		}
		if (rd->ncarry > 0 || rd->overlong) {
			reader_carry(rd, q, (size_t)(nl - q));
			reader_line(rd, rd->carry, rd->ncarry);
			rd->ncarry = 0;
		} else
			reader_line(rd, q, (size_t)(nl - q));
		q = nl + 1;
	}
	return rd->oom ? -1 : 0;
}

int
plists_close(struct plist_reader *rd)
{
	char msg[128];
	int rc;

	if (!rd->oom && (rd->ncarry > 0 || rd->overlong))
		reader_line(rd, rd->carry, rd->ncarry);         /* a last line without LF */
	if (rd->r.nerr > PLIST_ERRORS_MAX) {
		snprintf(msg, sizeof(msg), "%zu more bad entries in %s not shown (the first %d are)",
		    rd->r.nerr - PLIST_ERRORS_MAX, rd->r.name, PLIST_ERRORS_MAX);
		rd->r.err(rd->r.arg, rd->r.name, rd->r.first_hidden, msg);
	}
	rc = rd->oom ? -2 : rd->r.nerr > 0 ? -1 : (int)rd->list;
	free(rd);
	return rc;
}

int
plists_add(struct plists *p, const char *name, const char *text, size_t len,
    plist_error_fn *err, void *arg)
{
	struct plist_reader *rd;

	if ((rd = plists_open(p, name, len, err, arg)) == NULL)
		return -2;
	(void)plists_feed(rd, text, len);
	return plists_close(rd);
}

/* ---- lookup ------------------------------------------------------------- */

/* A label boundary of the host: the suffix host[pos..len) and its hash. */
struct bound {
	uint32_t pos;
	uint32_t hash;
};

/*
 * The host's suffixes that start a label, longest first (out[0] is the whole
 * host).  Returns how many, 0 for a host no entry can equal.
 */
static size_t
bounds(const char *host, size_t len, struct bound *out)
{
	struct bound tmp[BOUNDS_MAX];
	uint64_t h = FNV_OFFSET;
	size_t n = 0, i, k;

	if (len == 0 || len > HOST_MAX)
		return 0;
	for (i = len; i-- > 0;) {
		h ^= lower((unsigned char)host[i]);
		h *= FNV_PRIME;
		if (i == 0 || host[i - 1] == '.') {
			tmp[n].pos = (uint32_t)i;
			tmp[n].hash = fold(h);
			n++;
		}
	}
	for (k = 0; k < n; k++)
		out[k] = tmp[n - 1 - k];
	return n;
}

/* The first entry (index + 1) of the name host[pos..len), 0 if none. */
static uint32_t
name_lookup(const struct plists *p, const char *host, size_t len, const struct bound *b)
{
	const struct lslot *sl;
	size_t i, n = len - b->pos;

	for (i = b->hash & p->mask;; i = (i + 1) & p->mask) {
		sl = &p->slots[i];
		if (sl->hit == 0)
			return 0;
		if (sl->hash == b->hash && name_equal(p, p->hits[sl->hit - 1].name, host + b->pos, n))
			return sl->hit;
	}
}

static bool
hit_add(struct plist_hit *out, size_t *n, size_t max, bool *overflow, const struct lhit *h)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (out[i].list == h->list)
			return true;
	if (*n == max) {
		*overflow = true;
		return false;
	}
	out[*n].list = h->list;
	out[*n].line = h->line & LINE_MASK;
	(*n)++;
	return true;
}

size_t
plists_match(const struct plists *p, const char *host, size_t len, struct plist_hit *out,
    size_t max, bool *overflow)
{
	struct bound b[BOUNDS_MAX];
	const struct lhit *h;
	size_t nb, k, n = 0;
	uint32_t first, i;
	int pass;

	*overflow = false;
	if (p == NULL || p->slots == NULL || (nb = bounds(host, len, b)) == 0)
		return 0;
	for (k = 0; k < nb; k++) {
		if ((first = name_lookup(p, host, len, &b[k])) == 0)
			continue;
		/* The whole host: exact entries first, then .suffix; parents: .suffix only. */
		for (pass = k == 0 ? 0 : 1; pass < 2; pass++)
			for (i = first; i != 0; i = h->next) {
				h = &p->hits[i - 1];
				if (((h->line & SUFFIX_BIT) != 0) == (pass == 1) &&
				    !hit_add(out, &n, max, overflow, h))
					return n;
			}
	}
	return n;
}

bool
plists_match_one(const struct plists *p, int list, const char *host, size_t len,
    uint32_t *line)
{
	struct bound b[BOUNDS_MAX];
	const struct lhit *h;
	size_t nb, k;
	uint32_t first, i;
	int pass;

	if (p == NULL || p->slots == NULL || (nb = bounds(host, len, b)) == 0)
		return false;
	for (k = 0; k < nb; k++) {
		if ((first = name_lookup(p, host, len, &b[k])) == 0)
			continue;
		for (pass = k == 0 ? 0 : 1; pass < 2; pass++)
			for (i = first; i != 0; i = h->next) {
				h = &p->hits[i - 1];
				if (h->list == (uint32_t)list &&
				    ((h->line & SUFFIX_BIT) != 0) == (pass == 1)) {
					*line = h->line & LINE_MASK;
					return true;
				}
			}
	}
	return false;
}

/* ---- lint --------------------------------------------------------------- */

/* The entry as written back: ".name" or "name". */
static void
entry_text(const struct plists *p, uint32_t name, bool suffix, char *out, size_t outsz)
{
	const unsigned char *rec = (const unsigned char *)p->arena + name;

	snprintf(out, outsz, "%s%.*s", suffix ? "." : "", (int)rec[0], (const char *)rec + 1);
}

/*
 * The .suffix entry of the same list that covers entry h: the same name (for
 * an exact entry) or a parent domain, the closest one.  0 if none.
 */
static const struct lhit *
covering(const struct plists *p, const struct lhit *h)
{
	const unsigned char *rec = (const unsigned char *)p->arena + h->name;
	const char *name = (const char *)rec + 1;
	struct bound b[BOUNDS_MAX];
	const struct lhit *c;
	size_t nb, k;
	uint32_t first, i;

	if ((nb = bounds(name, rec[0], b)) == 0)
		return NULL;
	for (k = (h->line & SUFFIX_BIT) != 0 ? 1 : 0; k < nb; k++) {
		if ((first = name_lookup(p, name, rec[0], &b[k])) == 0)
			continue;
		for (i = first; i != 0; i = c->next) {
			c = &p->hits[i - 1];
			if (c->list == h->list && (c->line & SUFFIX_BIT) != 0)
				return c;
		}
	}
	return NULL;
}

size_t
plists_lint(const struct plists *p, plist_warn_fn *warn, void *arg)
{
	char a[HOST_BUF + 2], b[HOST_BUF + 2], msg[2 * HOST_BUF + 128];
	const struct lhit *h, *c;
	const struct ldup *d;
	size_t n = 0, i;

	if (p == NULL)
		return 0;
	for (i = 0; i < p->ndups; i++) {
		d = &p->dups[i];
		entry_text(p, d->name, (d->line & SUFFIX_BIT) != 0, a, sizeof(a));
		snprintf(msg, sizeof(msg), "duplicate entry %s (first at %s:%u)", a,
		    p->lists[d->list].name, d->first);
		warn(arg, p->lists[d->list].name, d->line & LINE_MASK, msg);
		n++;
	}
	for (i = 0; i < p->nhits; i++) {
		h = &p->hits[i];
		if ((c = covering(p, h)) == NULL)
			continue;
		entry_text(p, h->name, (h->line & SUFFIX_BIT) != 0, a, sizeof(a));
		entry_text(p, c->name, true, b, sizeof(b));
		snprintf(msg, sizeof(msg), "entry %s is already covered by %s (%s:%u)", a, b,
		    p->lists[h->list].name, c->line & LINE_MASK);
		warn(arg, p->lists[h->list].name, h->line & LINE_MASK, msg);
		n++;
	}
	return n;
}
