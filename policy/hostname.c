/*
 * hostname — what a host is, in one place.
 *
 * Every host the gateway compares (CONNECT authority, URL host, TLS server
 * name, policy test input) goes through host_normalize(), so a rule written
 * for "example.com" sees "EXAMPLE.com." the same way, and every IP literal
 * goes through ip_literal_parse(), the one IP parser of the program.
 *
 * The difficulty is numeric hosts.  inet_aton(), libevent, browsers and
 * resolvers each read a different set of spellings as an IPv4 address
 * ("2130706433", "0x7f.1", "127.1", "0177.0.0.1", the last read as 127.0.0.1
 * by glibc and as 177.0.0.1 by libevent).  If the policy saw one spelling and
 * the resolver another, a host rule or the internal-address check could be
 * walked around.  So exactly one IPv4 spelling is accepted, the canonical
 * dotted quad that inet_ntop() prints, and any DNS name whose last label is
 * numeric (no letter in it, or a 0x hex number) is refused rather than
 * guessed at: no resolver is ever asked about it.  IPv6 text is unambiguous once
 * inet_pton() accepts it, so it is accepted in any spelling and rewritten in
 * the canonical one.  An IPv4-mapped address (::ffff:a.b.c.d, in any of its
 * spellings) is the IPv4 address: a dual-stack socket connects to a.b.c.d
 * itself, so it becomes the dotted quad, or an IPv4 rule would be walked
 * around by writing the address in IPv6.  The other forms that carry an IPv4
 * address (NAT64, 6to4, Teredo, IPv4-compatible) stay IPv6: another machine
 * acts on them.  The result must be a fixed point: normalizing a normalized
 * host gives it back unchanged.
 */
#include "policy/policy.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <string.h>

#include "lib/fmt.h"

#define LABEL_MAX 63
#define IPV4_TEXT_MAX 15            /* "255.255.255.255" */
#define IPV6_TEXT_MAX 45            /* "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" */

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned char
to_lower(unsigned char c)
{
	/* Not tolower(3): the locale must not decide what a host name is. */
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* true for the bytes a DNS name may hold: letters, digits, '-', '_' and '.'. */
static bool
is_name_byte(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    c == '-' || c == '_' || c == '.';
}

/*
 * Accepts text[0..len) and copies it into buf as a C string, refusing what
 * would make the copy differ from the text: an embedded NUL (inet_pton
 * would stop there and accept "::1\0junk") or more than bufsz - 1 bytes.
 */
static int
copy_cstring(const char *text, size_t len, char *buf, size_t bufsz)
{
	if (len == 0 || len >= bufsz || memchr(text, '\0', len) != NULL)
		return -1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	return 0;
}

/* ::ffff:0:0/96 */
static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool
ip_addr_unmap(int *family, uint8_t addr[16])
{
	if (*family != AF_INET6 || memcmp(addr, mapped_prefix, sizeof(mapped_prefix)) != 0)
		return false;
	memmove(addr, addr + 12, 4);
	memset(addr + 4, 0, 12);
	*family = AF_INET;
	return true;
}

int
ip_literal_parse(const char *text, size_t len, int *family, uint8_t addr[16])
{
	char buf[IPV6_TEXT_MAX + 1], canon[FMT_IPV4_MAX];
	struct in_addr in4;
	struct in6_addr in6;

	if (copy_cstring(text, len, buf, sizeof(buf)) == -1)
		return -1;

	if (memchr(buf, ':', len) != NULL) {
		/* glibc's inet_pton takes no zone id; refuse one explicitly anyway. */
		if (memchr(buf, '%', len) != NULL)
			return -1;
		if (inet_pton(AF_INET6, buf, &in6) != 1)
			return -1;
		*family = AF_INET6;
		memcpy(addr, &in6, 16);
		return 0;
	}

	if (len > IPV4_TEXT_MAX || inet_pton(AF_INET, buf, &in4) != 1)
		return -1;
	/*
	 * inet_pton already refuses most odd spellings, but whether it takes
	 * leading zeros differs between C libraries; comparing with the
	 * canonical text settles it for all of them.
	 */
	fmt_ipv4(canon, (const uint8_t *)&in4);
	if (strcmp(canon, buf) != 0)
		return -1;
	*family = AF_INET;
	memset(addr, 0, 16);
	memcpy(addr, &in4, 4);
	return 0;
}

/*
 * true if the label lab[0..n), the last of a name, reads as a number to some
 * IPv4 parser or could be mistaken for one: "0x" followed by hex digits ("0x"
 * alone included: the WHATWG URL parser reads it as 0), or no letter at all
 * (digits, octal, "-1", "1_0").  Top-level domains always hold a letter, so
 * this refuses no real name.
 */
static bool
label_is_numeric(const char *lab, size_t n)
{
	size_t i;

	if (n >= 2 && lab[0] == '0' && (lab[1] == 'x' || lab[1] == 'X')) {
		for (i = 2; i < n; i++)
			if (!is_hex((unsigned char)lab[i]))
				return false;
		return true;
	}
	for (i = 0; i < n; i++)
		if (to_lower((unsigned char)lab[i]) >= 'a' &&
		    to_lower((unsigned char)lab[i]) <= 'z')
			return false;
	return true;
}

static int
set_err(const char **err, const char *msg)
{
	if (err != NULL)
		*err = msg;
	return -1;
}

/*
 * The IPv6 branch: in[0..len) holds a ':'.  Written back by inet_ntop, which
 * prints lower-case hex, the longest zero run as "::", and the compatible form
 * in dotted quad; an IPv4-mapped address is written as its IPv4 address and
 * *kind says which it became.
 */
static int
normalize_ipv6(const char *in, size_t len, char *out, size_t outsz, enum host_kind *kind,
    const char **err)
{
	uint8_t addr[16];
	char text[INET6_ADDRSTRLEN];
	size_t n;
	int family;

	if (memchr(in, '%', len) != NULL)
		return set_err(err, "zone id in IPv6 address");
	if (ip_literal_parse(in, len, &family, addr) == -1 || family != AF_INET6)
		return set_err(err, "invalid IPv6 address");
	(void)ip_addr_unmap(&family, addr);
	if (inet_ntop(family, addr, text, sizeof(text)) == NULL)
		return set_err(err, "invalid IPv6 address");
	n = strlen(text);
	if (n >= outsz)
		return set_err(err, "host buffer too small");
	memcpy(out, text, n + 1);
	*kind = family == AF_INET ? HOST_IPV4 : HOST_IPV6;
	return 0;
}

int
host_normalize(const char *in, size_t len, char *out, size_t outsz,
    enum host_kind *kind, const char **err)
{
	uint8_t addr[16];
	size_t i, start;
	int family;

	if (len == 0)
		return set_err(err, "empty host");
	if (memchr(in, ':', len) != NULL)
		return normalize_ipv6(in, len, out, outsz, kind, err);

	for (i = 0; i < len; i++)
		if (!is_name_byte((unsigned char)in[i]))
			return set_err(err, "invalid character in host");

	/*
	 * Only the exact canonical quad is an address; "127.0.0.1." is not
	 * (its last label is numeric, so it is refused below), because
	 * "already canonical" means as written.
	 */
	if (ip_literal_parse(in, len, &family, addr) == 0 && family == AF_INET) {
		if (len >= outsz)
			return set_err(err, "host buffer too small");
		memcpy(out, in, len);
		out[len] = '\0';
		*kind = HOST_IPV4;
		return 0;
	}

	/* One trailing dot is the root and names the same host; two is an empty label. */
	if (in[len - 1] == '.')
		len--;
	if (len == 0)
		return set_err(err, "empty host");
	if (len > HOST_MAX)
		return set_err(err, "host name too long");
	if (len >= outsz)
		return set_err(err, "host buffer too small");

	for (start = 0, i = 0; i <= len; i++) {
		if (i < len && in[i] != '.')
			continue;
		if (i == start)
			return set_err(err, "empty label in host name");
		if (i - start > LABEL_MAX)
			return set_err(err, "label too long in host name");
		if (i == len && label_is_numeric(in + start, i - start))
			return set_err(err, "numeric host not in canonical IPv4 form");
		start = i + 1;
	}

	for (i = 0; i < len; i++)
		out[i] = (char)to_lower((unsigned char)in[i]);
	out[len] = '\0';
	*kind = HOST_NAME;
	return 0;
}
