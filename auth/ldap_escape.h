/*
 * ldap_escape — RFC 4515 filter-value escaping and the substitution of %u
 * and %d into the configured filter templates.  Pure: bytes in, bytes out.
 */
#ifndef EGRESSD_AUTH_LDAP_ESCAPE_H
#define EGRESSD_AUTH_LDAP_ESCAPE_H

#include <stddef.h>

/* Longest filter built from a template (the user name is <= 1 KiB, x3 escaped). */
#define LDAP_FILTER_MAX		8192

/*
 * Escape in[0..len) as an RFC 4515 assertion value into out (outsz bytes,
 * NUL-terminated): '*', '(', ')', '\\', NUL and every byte >= 0x80 become
 * \XX (lower-case hex).  Returns the length written, or -1 if it does not
 * fit (out is then the empty string).
 */
long ldap_escape_value(const char *in, size_t len, char *out, size_t outsz);

/*
 * Expand tmpl into out (outsz bytes, NUL-terminated): "%u" becomes the
 * escaped u[0..ulen), "%d" the escaped d[0..dlen), "%%" a '%'.  Any other
 * '%' sequence, a template longer than the result buffer, or a result that
 * does not fit returns -1 (with a static *err); the length otherwise.
 * u or d may be NULL when the template does not use them.
 */
long ldap_filter_expand(const char *tmpl, const char *u, size_t ulen, const char *d,
    size_t dlen, char *out, size_t outsz, const char **err);

/*
 * Check a configured template: balanced parentheses around the whole, and
 * only the % sequences in allowed ("u" or "d").  0 or -1 with a static *err.
 */
int ldap_filter_check(const char *tmpl, const char *allowed, const char **err);

/*
 * If tmpl has the simple shape "(ATTR=%u)" (ATTR a descriptor: a letter,
 * then letters, digits and '-'), copy ATTR into out and return 0; else -1.
 * The authenticator reads the stored user name from that attribute.
 */
int ldap_filter_user_attr(const char *tmpl, char *out, size_t outsz);

#endif
