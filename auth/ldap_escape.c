/*
 * ldap_escape — build LDAP search filters from operator templates and
 * attacker-chosen values.
 *
 * The user name comes straight from a Proxy-Authorization header, so it is
 * an LDAP injection vector: "alice)(uid=*" or "*" would widen the user
 * search, and a lone "*" turns an equality match into a presence test.  RFC
 * 4515 section 3 requires escaping '*', '(', ')', '\\' and NUL as \XX inside
 * an assertion value; we escape every byte >= 0x80 as well, which the RFC
 * allows (any octet may be escaped) and which keeps the filter pure ASCII,
 * so no server-side UTF-8 handling can reinterpret it.  The same escaping
 * applies to a DN substituted for %d: a DN's own escaping ('\\,' etc.) is
 * not filter escaping, and a DN may contain any of the special bytes.
 *
 * Expansion is bounded: a result that does not fit is an error, never a
 * silently truncated (and therefore different) filter.
 */
#include "auth/ldap_escape.h"

#include <string.h>

static const char hexdig[] = "0123456789abcdef";

long
ldap_escape_value(const char *in, size_t len, char *out, size_t outsz)
{
	size_t i, o = 0;

	if (outsz == 0)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch == '*' || ch == '(' || ch == ')' || ch == '\\' || ch == '\0' ||
		    ch >= 0x80) {
			if (outsz - o < 4)
				goto toolong;
			out[o++] = '\\';
			out[o++] = hexdig[ch >> 4];
			out[o++] = hexdig[ch & 0xf];
		} else {
			if (outsz - o < 2)
				goto toolong;
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
	return (long)o;
toolong:
	out[0] = '\0';
	return -1;
}

long
ldap_filter_expand(const char *tmpl, const char *u, size_t ulen, const char *d,
    size_t dlen, char *out, size_t outsz, const char **err)
{
	const char *p;
	size_t o = 0;
	long n;

	if (outsz == 0) {
		*err = "no room for the filter";
		return -1;
	}
	for (p = tmpl; *p != '\0'; p++) {
		if (*p != '%') {
			if (outsz - o < 2)
				goto toolong;
			out[o++] = *p;
			continue;
		}
		p++;
		switch (*p) {
		case '%':
			if (outsz - o < 2)
				goto toolong;
			out[o++] = '%';
			break;
		case 'u':
		case 'd':
			if (*p == 'u' ? u == NULL : d == NULL) {
				*err = "no value for a % sequence in the filter";
				goto fail;
			}
			n = *p == 'u' ? ldap_escape_value(u, ulen, out + o, outsz - o) :
			    ldap_escape_value(d, dlen, out + o, outsz - o);
			if (n == -1)
				goto toolong;
			o += (size_t)n;
			break;
		default:
			*err = "unknown % sequence in the filter (only %u, %d and %%)";
			goto fail;
		}
	}
	out[o] = '\0';
	return (long)o;
toolong:
	*err = "filter too long";
fail:
	out[0] = '\0';
	return -1;
}

int
ldap_filter_check(const char *tmpl, const char *allowed, const char **err)
{
	const char *p;
	int depth = 0;

	if (tmpl[0] != '(') {
		*err = "the filter must be in parentheses";
		return -1;
	}
	for (p = tmpl; *p != '\0'; p++) {
		if (*p == '%') {
			p++;
			if (*p != '%' && (*p == '\0' || strchr(allowed, *p) == NULL)) {
				*err = "unknown % sequence in the filter";
				return -1;
			}
		} else if (*p == '(')
			depth++;
		else if (*p == ')') {
			if (--depth < 0)
				break;
			if (depth == 0 && p[1] != '\0')
				break;
		}
	}
	if (depth != 0 || *p != '\0') {
		*err = "unbalanced parentheses in the filter";
		return -1;
	}
	if (strlen(tmpl) > LDAP_FILTER_MAX / 2) {
		*err = "filter too long";
		return -1;
	}
	return 0;
}

int
ldap_filter_user_attr(const char *tmpl, char *out, size_t outsz)
{
	size_t n;

	if (tmpl[0] != '(' || !((tmpl[1] >= 'a' && tmpl[1] <= 'z') ||
	    (tmpl[1] >= 'A' && tmpl[1] <= 'Z')))
		return -1;
	n = strspn(tmpl + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789-");
	if (strcmp(tmpl + 1 + n, "=%u)") != 0 || n + 1 > outsz)
		return -1;
	memcpy(out, tmpl + 1, n);
	out[n] = '\0';
	return 0;
}
