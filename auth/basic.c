/*
 * basic — parse "Basic <token68>" from a Proxy-Authorization value.
 *
 * This is the first code an attacker's bytes reach on the authentication
 * path, so it accepts exactly one spelling of each thing and refuses the
 * rest:
 *
 *   credentials = auth-scheme 1*SP token68            (RFC 9110 11.4)
 *   auth-scheme = "Basic"  (case-insensitive)         (RFC 7617 2)
 *   token68     = base64 with padding, RFC 4648 section 4 alphabet only,
 *                 length a multiple of 4, '=' only at the end, the unused
 *                 bits of the last symbol zero (canonical encoding, 3.5)
 *   decoded     = user-id ":" password, split at the FIRST colon
 *
 * The field value's own leading and trailing OWS is not part of it (RFC 9110
 * 5.5), so it is skipped; whitespace anywhere else is an error.  Several
 * spaces between scheme and token68 are allowed because the grammar says
 * 1*SP; a tab is not.
 *
 * The difficulty is in what the decoded bytes may be.  The user name ends
 * up in an LDAP filter (escaped elsewhere), in policy comparisons and in the
 * audit record, so it must be valid UTF-8 without control characters (C0,
 * DEL and C1), and without leading, trailing or doubled spaces: directories
 * compare names ignoring such spaces, so " alice" would otherwise find
 * alice's entry under a name the policy does not know.  The password is
 * opaque octets for the directory, but a NUL would truncate it in libldap's
 * C strings and a control character has no business there either.  An empty
 * user or password is refused here: an empty-password simple bind is an
 * unauthenticated bind that many directories accept (RFC 4513 5.1.2).
 */
#include "auth/basic.h"

#include <string.h>

/* Decoded value of each base64 symbol, or -1; -2 for the padding '='. */
static int
basic_b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	if (ch == '=')
		return -2;
	return -1;
}

/*
 * Decode the canonical padded base64 in[0..len) into out (room for outsz
 * bytes).  Returns the decoded length, or -1 for anything not canonical or
 * too long.
 */
static long
basic_b64_decode(const unsigned char *in, size_t len, unsigned char *out, size_t outsz)
{
	size_t i, o = 0;

	if (len == 0 || len % 4 != 0 || len / 4 * 3 > outsz + 2)
		return -1;
	for (i = 0; i < len; i += 4) {
		int v[4], k, npad = 0;
		unsigned long w;

		for (k = 0; k < 4; k++) {
			v[k] = basic_b64_value(in[i + k]);
			if (v[k] == -1)
				return -1;
			if (v[k] == -2) {
				npad++;
				v[k] = 0;
			} else if (npad > 0)
				return -1;      /* a symbol after '=' */
		}
		/* '=' only in the last quantum, and never more than two. */
		if (npad > 0 && i + 4 != len)
			return -1;
		if (npad > 2)
			return -1;
		w = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 |
		    (unsigned long)v[2] << 6 | (unsigned long)v[3];
		/* Canonical: the bits the padding leaves unused must be zero. */
		if ((npad == 1 && (w & 0xff) != 0) || (npad == 2 && (w & 0xffff) != 0))
			return -1;
		if (o + 3 - (size_t)npad > outsz)
			return -1;
		out[o++] = (unsigned char)(w >> 16);
		if (npad < 2)
			out[o++] = (unsigned char)(w >> 8);
		if (npad < 1)
			out[o++] = (unsigned char)w;
	}
	return (long)o;
}

int
basic_utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n, k;
		unsigned long cp, min;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
			min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
			min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else
			return 0;       /* continuation byte, C0/C1 overlong lead, > F4 */
		if (len - i - 1 < n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

/*
 * The user name rules above, on a name already known to be valid UTF-8 and
 * free of C0 controls and DEL: no C1 control (U+0080..U+009F, encoded
 * C2 80..C2 9F), no space at either end, no two spaces in a row.
 */
static int
basic_user_valid(const unsigned char *u, size_t len)
{
	size_t i;

	if (u[0] == ' ' || u[len - 1] == ' ')
		return 0;
	for (i = 0; i < len; i++) {
		if (u[i] == ' ' && i + 1 < len && u[i + 1] == ' ')
			return 0;
		if (u[i] == 0xc2 && i + 1 < len && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f)
			return 0;
	}
	return 1;
}

/* NUL, C0 controls and DEL: never in a user name or a password. */
static int
basic_has_control(const unsigned char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] == 0x7f)
			return 1;
	return 0;
}

enum basic_status
basic_parse(const char *hdr, size_t len, struct basic_cred *out, const char **err)
{
	const unsigned char *p = (const unsigned char *)hdr, *end;
	const unsigned char *tok;
	unsigned char *colon;
	const char *dummy;
	long n;

	if (err == NULL)
		err = &dummy;
	memset(out, 0, sizeof(*out));
	*err = NULL;
	if (hdr == NULL) {
		*err = "no credentials";
		return BASIC_MALFORMED;
	}
	end = p + len;
	/* The field value proper excludes its surrounding OWS. */
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;

	if (end - p < 5 || strncasecmp((const char *)p, "basic", 5) != 0 ||
	    (end - p > 5 && p[5] != ' ')) {
		*err = "not the Basic scheme";
		return BASIC_NOT_BASIC;
	}
	p += 5;
	if (p == end || *p != ' ') {
		*err = "no credentials after the scheme";
		return BASIC_MALFORMED;
	}
	while (p < end && *p == ' ')
		p++;
	tok = p;
	/* Any byte outside the alphabet (a space, a comma: auth-params) fails below. */
	n = basic_b64_decode(tok, (size_t)(end - tok), (unsigned char *)out->buf,
	    BASIC_DECODED_MAX);
	if (n == -1) {
		basic_wipe(out);
		*err = (size_t)(end - tok) / 4 * 3 > BASIC_DECODED_MAX + 2 ?
		    "credentials too long" : "not canonical base64";
		return BASIC_MALFORMED;
	}
	out->buf[n] = '\0';
	if (basic_has_control((unsigned char *)out->buf, (size_t)n)) {
		basic_wipe(out);
		*err = "control character in the credentials";
		return BASIC_MALFORMED;
	}
	colon = memchr(out->buf, ':', (size_t)n);
	if (colon == NULL) {
		basic_wipe(out);
		*err = "no colon in the credentials";
		return BASIC_MALFORMED;
	}
	*colon = '\0';
	out->user = out->buf;
	out->userlen = (size_t)(colon - (unsigned char *)out->buf);
	out->pass = (const char *)colon + 1;
	out->passlen = (size_t)n - out->userlen - 1;
	if (out->userlen > 0 &&
	    (!basic_utf8_valid((const unsigned char *)out->user, out->userlen) ||
	    !basic_user_valid((const unsigned char *)out->user, out->userlen))) {
		basic_wipe(out);
		*err = "user name not valid UTF-8 or badly spaced";
		return BASIC_MALFORMED;
	}
	if (out->userlen == 0 || out->passlen == 0) {
		/* Keep the name (for the audit), drop the rest. */
		if (out->passlen > 0)
			explicit_bzero(colon + 1, out->passlen);
		out->pass = NULL;
		out->passlen = 0;
		*err = out->userlen == 0 ? "empty user name" : "empty password";
		return BASIC_EMPTY;
	}
	return BASIC_OK;
}

void
basic_wipe(struct basic_cred *c)
{
	explicit_bzero(c, sizeof(*c));
}
