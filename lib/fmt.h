/*
 * fmt — the few formatting steps on the per-request path, without printf.
 *
 * snprintf parses its format string on every call; a record, a tunnel
 * listing and a response head together made dozens of calls per request,
 * a quarter of the instructions a tunnel cost.  These do the same work
 * directly.  Header-only and dependency-free, so every module may use it.
 */
#ifndef EGRESSD_LIB_FMT_H
#define EGRESSD_LIB_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FMT_U64_MAX 20              /* digits of UINT64_MAX */

/* Copy src into dst[size], cut to fit and always terminated; the length copied. */
static inline size_t
str_copy(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
	return n;
}

/* v in decimal into buf (FMT_U64_MAX bytes at least), not terminated; the length. */
static inline size_t
fmt_u64(char *buf, uint64_t v)
{
	char tmp[FMT_U64_MAX];
	size_t i = sizeof(tmp), n;

	do
		tmp[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	n = sizeof(tmp) - i;
	memcpy(buf, tmp + i, n);
	return n;
}

/* v as exactly width decimal digits, zero-padded (v < 10^width). */
static inline void
fmt_dec_fixed(char *buf, unsigned v, size_t width)
{
	while (width-- > 0) {
		buf[width] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* v as 16 lower-case hex digits, not terminated ("%016" PRIx64). */
static inline void
fmt_hex64(char *buf, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 15; i >= 0; i--) {
		buf[i] = hex[v & 0xf];
		v >>= 4;
	}
}

#define FMT_IPV4_MAX 16             /* "255.255.255.255" and its NUL */

/* The IPv4 address a[0..4) as the dotted quad inet_ntop() prints, terminated
 * (glibc's inet_ntop makes a sprintf call per address). */
static inline void
fmt_ipv4(char buf[FMT_IPV4_MAX], const uint8_t a[4])
{
	char *o = buf;
	unsigned v;
	int i;

	for (i = 0; i < 4; i++) {
		v = a[i];
		if (i > 0)
			*o++ = '.';
		if (v >= 100)
			*o++ = (char)('0' + v / 100);
		if (v >= 10)
			*o++ = (char)('0' + v / 10 % 10);
		*o++ = (char)('0' + v % 10);
	}
	*o = '\0';
}

#endif
