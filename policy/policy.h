/*
 * policy — may this request go there?
 *
 * The public face of the policy engine: load an admin's rule file into an
 * immutable, reference-counted object, and decide requests against it.  The
 * module is pure: no sockets, no event loops, no LDAP, no logging.  Errors are
 * returned to the caller as text ("FILE:LINE: message\n" lines) so the daemon,
 * `egressd -t` and `egressctl` can each put them where they belong.
 *
 * Host names are normalized here too (hostname.c), because the policy defines
 * what a host is: lower case, one trailing dot dropped, IP literals in canonical
 * text form.  The gateway uses the same functions on CONNECT hosts, URL hosts and
 * SNI names, so every place compares like with like.
 */
#ifndef EGRESSD_POLICY_POLICY_H
#define EGRESSD_POLICY_POLICY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- host names -------------------------------------------------------- */

#define HOST_MAX 253                /* longest normalized DNS name */
#define HOST_BUF (HOST_MAX + 1)     /* buffer that holds any normalized host */

enum host_kind {
	HOST_NAME,                      /* a DNS name */
	HOST_IPV4,                      /* a canonical dotted-quad IPv4 literal */
	HOST_IPV6,                      /* an IPv6 literal (brackets removed) */
};

/*
 * Normalize the host text in[0..len) (no brackets around IPv6) into out:
 * lower case, one trailing dot dropped, IP literals in canonical form.
 * Accepts DNS names of letters, digits, '-', '_' and '.', labels of 1..63
 * bytes, at most 253 bytes; canonical dotted-quad IPv4; any IPv6 text that
 * inet_pton accepts (no zone id), written back with inet_ntop, except that an
 * IPv4-mapped address (::ffff:a.b.c.d in any spelling) becomes the dotted
 * quad a.b.c.d with kind HOST_IPV4 (a connect() to it reaches a.b.c.d; NAT64,
 * 6to4, Teredo and IPv4-compatible addresses stay HOST_IPV6).  Refuses every
 * other numeric form ("127.1", "0x7f.1", "2130706433", "0177.0.0.1", a last
 * label that is all digits), spaces, '+', '%', empty input.
 * Returns 0 and sets *kind, or -1 with a static message in *err.
 */
int host_normalize(const char *in, size_t len, char *out, size_t outsz,
    enum host_kind *kind, const char **err);

/*
 * The one strict IP-literal parser of the program.  text[0..len) must be a
 * canonical IPv4 dotted quad (exactly what inet_ntop would print) or an IPv6
 * literal inet_pton accepts (no brackets, no zone).  Fills *family (AF_INET or
 * AF_INET6) and addr (4 or 16 bytes, network order).  Returns 0 or -1.
 */
int ip_literal_parse(const char *text, size_t len, int *family, uint8_t addr[16]);

/*
 * If *family is AF_INET6 and addr is IPv4-mapped (::ffff:0:0/96), rewrite it
 * in place as that IPv4 address (AF_INET, first 4 bytes) and return true.
 * Anything else is left alone (false).  ip_literal_parse itself keeps the
 * IPv6 form, because a CIDR range or a PROXY header names exactly what it says.
 */
bool ip_addr_unmap(int *family, uint8_t addr[16]);

/* ---- rules and decisions ---------------------------------------------- */

struct policy;                      /* opaque, immutable once loaded */

enum policy_sni_mode {
	POLICY_SNI_REQUIRE,             /* a ClientHello with a server name is required */
	POLICY_SNI_OPTIONAL,            /* checked if present */
	POLICY_SNI_OFF,                 /* not read at all */
};

/*
 * What is being asked; every string is borrowed for the duration of the call.
 * A request zeroed with memset() and then given method, host and port is an
 * anonymous request under an authenticating gateway: identity rules take part
 * and may ask for credentials.
 */
struct policy_request {
	const char *user;               /* authenticated user name, NULL if anonymous */
	const char *const *groups;      /* the user's group names */
	size_t ngroups;                 /* number of entries in groups */
	const char *method;             /* request method, e.g. "CONNECT", "GET" */
	const char *host;               /* normalized host (host_normalize) */
	uint16_t port;                  /* destination port */
	bool no_identity;               /* true under "auth none": identity rules (authenticated,
	                                   user:, group:) never match and never ask for credentials */
};

/* The answer; every pointer refers into the policy and lives as long as it. */
struct policy_decision {
	bool allow;                     /* true: let it through */
	bool need_credentials;          /* deny because an identity is needed and absent: send 407 */
	const char *reason;             /* "ok", "policy", "default_deny", "auth_required", "policy_error" */
	const char *rule;               /* "FILE:LINE" of the deciding rule, NULL for default deny */
	const char *rule_text;          /* the deciding rule's text as written, NULL for default deny */
	enum policy_sni_mode sni;       /* the deciding rule's SNI mode (allow only) */
	const char *list;               /* the deciding rule's @FILE list as written, else NULL */
	unsigned list_line;             /* ... and the line of the entry that matched */
	const char *report;             /* "FILE:LINE" of the first mode=report rule that
	                                   matched (it would have denied), else NULL */
	const char *report_text;        /* that rule's text */
	const char *report_list;        /* its list and entry line, when it is a list rule */
	unsigned report_line;
	unsigned report_id;             /* which report rule, for policy_report_count(); 0 none */
};

/*
 * Parse the rule file at path.  display_name is what rule references and error
 * messages call the file (the name as the configuration wrote it).  On success
 * returns a policy with one reference.  On any error returns NULL and sets
 * *errors to a malloc'd string of "FILE:LINE: message\n" lines (every error in
 * the file, not just the first), which the caller frees.
 */
struct policy *policy_load(const char *path, const char *display_name, char **errors);

/*
 * Same, from a buffer (for tests and fuzzing); @FILE lists are read relative
 * to the current folder.
 */
struct policy *policy_load_buffer(const char *text, size_t len, const char *display_name,
    char **errors);

/*
 * Same, with the @FILE lists read by read_list instead of from files: it is
 * given the list's name as the rule wrote it and returns 0 with a malloc'd
 * *text of *len bytes (the load frees it), or -1 with *why a static reason.
 */
typedef int policy_list_reader(void *arg, const char *name, char **text, size_t *len,
    const char **why);
struct policy *policy_load_buffer_with(const char *text, size_t len, const char *display_name,
    policy_list_reader *read_list, void *arg, char **errors);

struct policy *policy_ref(struct policy *);
void policy_unref(struct policy *);
size_t policy_rule_count(const struct policy *);
size_t policy_list_count(const struct policy *);    /* distinct @FILE lists */
size_t policy_entry_count(const struct policy *);   /* their entries, all lists together */

/*
 * Count one request whose record names d's report rule (d->report_id != 0;
 * anything else is ignored).  Any thread; the counts are per policy, so they
 * start again at zero with each reload.
 */
void policy_report_count(const struct policy *, const struct policy_decision *d);

/* The report rules, for /metrics: rule i's "FILE:LINE" and its count so far. */
size_t policy_report_rules(const struct policy *);
const char *policy_report_rule(const struct policy *, size_t i, uint64_t *matches);

/*
 * A second decision on the same request (the SNI re-check) may match a report
 * rule the first did not: the record names the first report rule matched,
 * so into takes from's report only if it has none.
 */
void policy_report_merge(struct policy_decision *into, const struct policy_decision *from);

/*
 * First-match decision over the rules.  Allocates nothing per call (the first
 * call on a thread creates that thread's PCRE2 match data, kept until the
 * thread exits); safe to call from several threads on the same policy.  A
 * pattern that hits its match limit or fails to evaluate makes the decision
 * deny/"policy_error" at that rule, never a fall-through to a later rule.
 *
 * Rules that need an identity are skipped entirely when req->no_identity is
 * set (the gateway has no way to authenticate, so asking with 407 would only
 * leave the client retrying credentials nobody can check).  Otherwise an
 * anonymous request whose first host/port/method match is an identity rule
 * gets need_credentials (407).
 *
 * A pattern whose required literal text (e.g. "github.com" in
 * "(.+\.)?github\.com") the host lacks cannot match, so it is not run, and
 * cannot hit a limit either.  The rules are indexed by that literal (see
 * index.c), so a policy of thousands of rules costs a few regex runs per
 * decision, with exactly the answer of a top-to-bottom scan.
 *
 * A rule with an @FILE list matches a host the list holds (list.c: one hash
 * probe per label of the host, whatever the list's size); d->list and
 * d->list_line name the entry.  A mode=report rule never decides: evaluation
 * goes on as if it were absent, and the first one that matches is named in
 * d->report (a report rule whose pattern cannot be evaluated counts as
 * matched: it would have denied, with policy_error).
 */
void policy_decide(const struct policy *, const struct policy_request *,
    struct policy_decision *);

/*
 * Warnings about a policy that loads but is probably not what its author
 * meant (lint.c): an unescaped "." in a name, ".example.com" or "*.example.com",
 * a host:port or URL in the host column, identity rules when no_identity
 * ("auth none"), a rule written twice, a rule an earlier one always answers
 * first.  Returns the number of warnings; *warnings gets them as
 * "FILE:LINE: warning: message\n" lines (malloc'd; NULL when there are none).
 */
size_t policy_lint(const struct policy *, bool no_identity, char **warnings);

#endif
