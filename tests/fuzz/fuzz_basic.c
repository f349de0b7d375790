/*
 * fuzz_basic — the Proxy-Authorization: Basic parser (auth/basic.c).
 *
 * The input is the raw field value, as an attacker sends it.  Properties,
 * beyond "no crash" and no read past size (the buffer is not NUL-terminated):
 *
 *  - BASIC_OK: user and password point into buf, are NUL-terminated at
 *    their lengths, both non-empty, and "user:password" fits the bound; the
 *    user name is valid UTF-8 (checked here by an independent decoder), has
 *    no C0, DEL or C1 control, no colon, no space at either end and no two
 *    spaces in a row; the password has no NUL, C0 control or DEL.  The value
 *    starts (after OWS) with the Basic scheme, and encoding "user:password"
 *    again in canonical base64 and parsing "Basic <that>" gives back the
 *    same user and password (the parser accepts one spelling of each
 *    credential, and the one it accepts is the canonical one).
 *  - BASIC_EMPTY: user is set (possibly empty) and valid as above when not
 *    empty; the password is not exposed and no byte of it is left in buf.
 *  - every other status: user and pass are NULL.
 *  - every status has an error text except BASIC_OK;
 *  - basic_wipe() leaves the whole struct zero.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/basic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An independent strict UTF-8 check (RFC 3629 table 3-7 ranges). */
static int
utf8_ok(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		unsigned char lo = 0x80, hi = 0xbf;
		size_t n;

		if (c <= 0x7f) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c == 0xe0) {
			n = 2;
			lo = 0xa0;
		} else if (c == 0xed) {
			n = 2;
			hi = 0x9f;
		} else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
			n = 2;
		else if (c == 0xf0) {
			n = 3;
			lo = 0x90;
		} else if (c >= 0xf1 && c <= 0xf3)
			n = 3;
		else if (c == 0xf4) {
			n = 3;
			hi = 0x8f;
		} else
			return 0;
		if (len - i - 1 < n)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return 0;
		i += n + 1;
	}
	return 1;
}

static void
check_user(const struct basic_cred *c)
{
	const unsigned char *u = (const unsigned char *)c->user;
	size_t i, n = c->userlen;

	if (u < (const unsigned char *)c->buf || u + n > (const unsigned char *)c->buf + sizeof(c->buf) - 1)
		abort();
	if (strlen(c->user) != n || n > BASIC_DECODED_MAX - 2 + 1)
		abort();
	if (!utf8_ok(u, n) || !basic_utf8_valid(u, n))
		abort();
	for (i = 0; i < n; i++) {
		if (u[i] < 0x20 || u[i] == 0x7f || u[i] == ':')
			abort();
		if (u[i] == 0xc2 && i + 1 < n && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f)
			abort();        /* C1 control */
		if (u[i] == ' ' && (i == 0 || i == n - 1 || u[i + 1] == ' '))
			abort();
	}
}

static size_t
b64(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		unsigned long w = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
		out[o++] = tab[w >> 18 & 63];
		out[o++] = tab[w >> 12 & 63];
		out[o++] = tab[w >> 6 & 63];
		out[o++] = tab[w & 63];
	}
	if (len - i == 1) {
		unsigned long w = (unsigned long)in[i] << 16;
		out[o++] = tab[w >> 18 & 63];
		out[o++] = tab[w >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		unsigned long w = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8;
		out[o++] = tab[w >> 18 & 63];
		out[o++] = tab[w >> 12 & 63];
		out[o++] = tab[w >> 6 & 63];
		out[o++] = '=';
	}
	return o;
}

static void
check_wiped(const struct basic_cred *c)
{
	const unsigned char *p = (const unsigned char *)c;

	for (size_t i = 0; i < sizeof(*c); i++)
		if (p[i] != 0)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct basic_cred c, c2;
	static unsigned char raw[BASIC_DECODED_MAX + 1];
	static char hdr[6 + (BASIC_DECODED_MAX + 2) / 3 * 4 + 1];
	const char *err = (const char *)1;
	enum basic_status st;
	size_t i;

	st = basic_parse((const char *)data, size, &c, &err);
	switch (st) {
	case BASIC_OK:
		if (err != NULL)
			abort();
		if (c.user == NULL || c.pass == NULL || c.userlen == 0 || c.passlen == 0)
			abort();
		check_user(&c);
		if (c.userlen + 1 + c.passlen > BASIC_DECODED_MAX)
			abort();
		if (c.pass != c.user + c.userlen + 1 || strlen(c.pass) != c.passlen)
			abort();
		for (i = 0; i < c.passlen; i++) {
			unsigned char ch = (unsigned char)c.pass[i];
			if (ch < 0x20 || ch == 0x7f)
				abort();
		}
		/* The value held the Basic scheme (after optional whitespace). */
		for (i = 0; i < size && (data[i] == ' ' || data[i] == '\t'); i++)
			;
		if (size - i < 6 || strncasecmp((const char *)data + i, "basic ", 6) != 0)
			abort();
		/* Canonical re-encoding parses back to the same credentials. */
		memcpy(raw, c.user, c.userlen);
		raw[c.userlen] = ':';
		memcpy(raw + c.userlen + 1, c.pass, c.passlen);
		memcpy(hdr, "Basic ", 6);
		i = 6 + b64(raw, c.userlen + 1 + c.passlen, hdr + 6);
		if (basic_parse(hdr, i, &c2, NULL) != BASIC_OK || c2.userlen != c.userlen ||
		    c2.passlen != c.passlen || memcmp(c2.user, c.user, c.userlen) != 0 ||
		    memcmp(c2.pass, c.pass, c.passlen) != 0)
			abort();
		basic_wipe(&c2);
		check_wiped(&c2);
		break;
	case BASIC_EMPTY:
		if (err == NULL || c.user == NULL || c.pass != NULL || c.passlen != 0)
			abort();
		if (c.userlen > 0)
			check_user(&c);
		else if (c.user[0] != '\0')
			abort();
		/* Whatever followed the colon (a password) is already gone. */
		for (i = c.userlen; i < sizeof(c.buf); i++)
			if (c.buf[i] != '\0')
				abort();
		break;
	case BASIC_NOT_BASIC:
	case BASIC_MALFORMED:
		if (err == NULL || c.user != NULL || c.pass != NULL)
			abort();
		break;
	default:
		abort();
	}
	basic_wipe(&c);
	check_wiped(&c);
	return 0;
}
