/*
 * list — the domain lists of one policy (`@FILE` in the host column).
 *
 * Private to policy/.  Every list a policy names is read into one shared
 * store: a hash table keyed by the normalized name, each name carrying the
 * entries (list, line, exact or .suffix) that hold it.  A lookup walks the
 * host's suffixes at label boundaries, longest first, so it costs one pass
 * over the host and one probe per label, whatever the lists' sizes.
 *
 * The store is built once by the load and read-only afterwards; a handful of
 * large arrays (no allocation per entry) so that a million entries load,
 * and are freed, quickly.
 */
#ifndef EGRESSD_POLICY_LIST_H
#define EGRESSD_POLICY_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct plists;                      /* the lists of one policy */

/* Collects "NAME:LINE: message" errors; the parser's error sink. */
typedef void plist_error_fn(void *arg, const char *name, size_t line, const char *msg);

struct plists *plists_new(void);
void plists_free(struct plists *);

/*
 * The id of the list called name (as the rule wrote it), or -1 if no list of
 * that name was added yet.
 */
int plists_find(const struct plists *, const char *name);

/*
 * Add the list called name, whose text is text[0..len).  Every bad entry is
 * reported through err (at most PLIST_ERRORS_MAX per list, then one line
 * counting the rest).  Returns the new list's id, -1 when the text had errors,
 * -2 out of memory.
 */
#define PLIST_ERRORS_MAX 100
int plists_add(struct plists *, const char *name, const char *text, size_t len,
    plist_error_fn *err, void *arg);

/*
 * The same in pieces, for a file read a block at a time (so that a list of a
 * million names is never held whole in memory): open with the text's size if
 * known (to reserve room once), feed the bytes as they come (lines may span
 * pieces; a line over PLIST_LINE_MAX bytes is an error), close for the
 * result as plists_add gives it.  feed returns -1 out of memory (close then
 * says -2); close frees the reader.
 */
#define PLIST_LINE_MAX 4096
struct plist_reader;
struct plist_reader *plists_open(struct plists *, const char *name, size_t size_hint,
    plist_error_fn *err, void *arg);
int plists_feed(struct plist_reader *, const char *buf, size_t len);
int plists_close(struct plist_reader *);

size_t plists_count(const struct plists *);                 /* lists */
const char *plists_name(const struct plists *, int list);
size_t plists_entries(const struct plists *, int list);     /* entries kept (duplicates not) */
size_t plists_total(const struct plists *);                 /* entries of every list */

/* A list that holds a host, and the line of the entry that matched. */
struct plist_hit {
	uint32_t list;
	uint32_t line;
};

/*
 * The lists that hold host[0..len) (normalized): an exact entry equal to it,
 * or a .suffix entry equal to it or to one of its parent domains.  One hit per
 * list, the most specific entry (the longest name; the exact entry before a
 * .suffix one of the same name).  At most max hits are written; *overflow is
 * set when there were more lists to report.  Returns the number written.
 */
size_t plists_match(const struct plists *, const char *host, size_t len,
    struct plist_hit *out, size_t max, bool *overflow);

/* Whether list holds host; *line gets the entry's line.  For overflowed lookups. */
bool plists_match_one(const struct plists *, int list, const char *host, size_t len,
    uint32_t *line);

/*
 * Lint (warnings, not errors): duplicate entries, and entries that a .suffix
 * entry of the same list already covers.  Calls warn once per warning with
 * the list's name, the entry's line and a message.  Returns the count.
 */
typedef void plist_warn_fn(void *arg, const char *name, size_t line, const char *msg);
size_t plists_lint(const struct plists *, plist_warn_fn *warn, void *arg);

#endif
