/*
 * netaddr — socket addresses as the gateway's security checks see them.
 *
 * Parses listen addresses and CIDR ranges (strictly, through the one
 * IP-literal parser in policy/), prints addresses, and decides whether a
 * resolved destination is internal and whether allow_internal lets it
 * through.  Everything here is a pure function of its arguments, except
 * netaddr_is_local, which asks the kernel about the host's addresses.
 *
 * The difficulty is that one IPv4 host has many IPv6 names.  A connect() to
 * ::ffff:127.0.0.1 reaches 127.0.0.1 on a dual-stack socket: that one is the
 * IPv4 address (netaddr_unmap turns it into one before anything else looks at
 * it).  64:ff9b::7f00:1 reaches 127.0.0.1 through a NAT64 gateway, and
 * 2002:7f00:1:: and Teredo addresses carry an IPv4 address that a relay may
 * act on: there another machine reaches "its" 127.0.0.1.  So an IPv6 address
 * is judged internal by the IPv4 addresses embedded in it wherever a
 * translation mechanism would extract one, but an allow_internal range
 * written in IPv4 covers only the plain (or mapped) IPv4 address, never the
 * embedded forms: letting this host reach 127.0.0.1 says nothing about what
 * a NAT64 gateway may reach.  Only an IPv6 range that contains the IPv6
 * address itself lets one of those through.  Outside the embedded forms the
 * rule is a default deny: only global unicast (2000::/3) can be external, and
 * within it the documentation and special-purpose blocks are internal.
 */
#include "config/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "lib/fmt.h"
#include "policy/policy.h" /* ip_literal_parse: the one strict IP-literal parser */

/* An IPv4 range in host order, for the internal table. */
struct v4range {
	uint32_t net;
	unsigned prefix;
};

/* IANA special-purpose IPv4 blocks that must not be reached from outside. */
static const struct v4range v4_internal[] = {
	{ 0x00000000, 8 },              /* 0.0.0.0/8 "this network" */
	{ 0x0a000000, 8 },              /* 10.0.0.0/8 private */
	{ 0x64400000, 10 },             /* 100.64.0.0/10 CGNAT */
	{ 0x7f000000, 8 },              /* 127.0.0.0/8 loopback */
	{ 0xa9fe0000, 16 },             /* 169.254.0.0/16 link-local, cloud metadata */
	{ 0xac100000, 12 },             /* 172.16.0.0/12 private */
	{ 0xc0000000, 24 },             /* 192.0.0.0/24 IETF protocol assignments */
	{ 0xc0000200, 24 },             /* 192.0.2.0/24 TEST-NET-1 */
	{ 0xc0586300, 24 },             /* 192.88.99.0/24 6to4 relay anycast */
	{ 0xc0a80000, 16 },             /* 192.168.0.0/16 private */
	{ 0xc6120000, 15 },             /* 198.18.0.0/15 benchmarking */
	{ 0xc6336400, 24 },             /* 198.51.100.0/24 TEST-NET-2 */
	{ 0xcb007100, 24 },             /* 203.0.113.0/24 TEST-NET-3 */
	{ 0xe0000000, 4 },              /* 224.0.0.0/4 multicast */
	{ 0xf0000000, 4 },              /* 240.0.0.0/4 reserved, 255.255.255.255 */
};

/* An IPv6 range: the first prefix/8 bytes (rounded up) of net matter. */
struct v6range {
	uint8_t net[16];
	unsigned prefix;
};

/*
 * Special-purpose blocks inside 2000::/3 (everything outside it is internal
 * anyway, see v6_direct_internal).  2001::/32 and 2002::/16 are not here:
 * they are judged by the IPv4 they carry.
 */
static const struct v6range v6_internal_global[] = {
	{ { 0x20, 0x01, 0x00, 0x02 }, 48 },             /* 2001:2::/48 benchmarking */
	{ { 0x20, 0x01, 0x00, 0x10 }, 28 },             /* 2001:10::/28 ORCHID */
	{ { 0x20, 0x01, 0x00, 0x20 }, 28 },             /* 2001:20::/28 ORCHIDv2 */
	{ { 0x20, 0x01, 0x0d, 0xb8 }, 32 },             /* 2001:db8::/32 documentation */
	{ { 0x3f, 0xff }, 20 },                         /* 3fff::/20 documentation */
};

/* 64:ff9b::/96, the NAT64 well-known prefix: the low 32 bits are an IPv4 address. */
static const uint8_t nat64_prefix[12] = { 0x00, 0x64, 0xff, 0x9b };
/* ::ffff:0:0/96, IPv4-mapped. */
static const uint8_t mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

static int
set_err(const char **err, const char *msg)
{
	if (err != NULL)
		*err = msg;
	return -1;
}

/* true if the first prefix bits of a and b are equal. */
static bool
prefix_match(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned bytes = prefix / 8, bits = prefix % 8;
	uint8_t mask;

	if (memcmp(a, b, bytes) != 0)
		return false;
	if (bits == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - bits));
	return ((a[bytes] ^ b[bytes]) & mask) == 0;
}

static uint32_t
load32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Accepts an IPv4 address in host order. */
static bool
v4_is_internal(uint32_t a)
{
	size_t i;

	for (i = 0; i < sizeof(v4_internal) / sizeof(v4_internal[0]); i++) {
		uint32_t mask = v4_internal[i].prefix == 0 ? 0 :
		    0xffffffffU << (32 - v4_internal[i].prefix);

		if ((a & mask) == v4_internal[i].net)
			return true;
	}
	return false;
}

/*
 * The IPv4 addresses (host order) a translation mechanism would extract from
 * the IPv6 address a: at most two (Teredo).  Returns how many.
 */
static size_t
v6_embedded_v4(const uint8_t a[16], uint32_t v4[2])
{
	if (memcmp(a, mapped_prefix, 12) == 0 || memcmp(a, nat64_prefix, 12) == 0) {
		v4[0] = load32(a + 12);
		return 1;
	}
	if (a[0] == 0x20 && a[1] == 0x02) {
		/* 6to4 2002:AABB:CCDD::/48: the relay tunnels to AA.BB.CC.DD. */
		v4[0] = load32(a + 2);
		return 1;
	}
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) {
		/* Teredo 2001:0:SERVER:flags:port:~CLIENT (RFC 4380 §4). */
		v4[0] = load32(a + 4);
		v4[1] = ~load32(a + 12);
		return 2;
	}
	return 0;
}

/* true if a is internal in its own right, not because of an embedded IPv4. */
static bool
v6_direct_internal(const uint8_t a[16])
{
	size_t i;

	if (memcmp(a, mapped_prefix, 12) == 0 || memcmp(a, nat64_prefix, 12) == 0)
		return false;
	/*
	 * Only 2000::/3 is allocated as global unicast.  The rest holds ::,
	 * ::1, IPv4-compatible ::/96, SIIT ::ffff:0:0:0/96, the local-use NAT64
	 * 64:ff9b:1::/48, discard 100::/64, ULA fc00::/7, link-local fe80::/10,
	 * site-local fec0::/10 and multicast ff00::/8, and nothing reachable.
	 */
	if ((a[0] & 0xe0) != 0x20)
		return true;
	for (i = 0; i < sizeof(v6_internal_global) / sizeof(v6_internal_global[0]); i++)
		if (prefix_match(a, v6_internal_global[i].net, v6_internal_global[i].prefix))
			return true;
	return false;
}

static bool
v6_is_internal(const uint8_t a[16])
{
	uint32_t v4[2];
	size_t i, n;

	if (v6_direct_internal(a))
		return true;
	n = v6_embedded_v4(a, v4);
	for (i = 0; i < n; i++)
		if (v4_is_internal(v4[i]))
			return true;
	return false;
}

/*
 * Accepts the text of a prefix length: decimal, no sign, no leading zero
 * (except "0" itself), at most max.
 */
static int
parse_prefix(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 3)
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

int
netaddr_parse_cidr(const char *text, struct cidr *out, const char **err)
{
	const char *slash;
	uint8_t addr[16];
	unsigned prefix, max, i;
	size_t alen;
	int family;

	slash = strchr(text, '/');
	alen = slash != NULL ? (size_t)(slash - text) : strlen(text);
	if (ip_literal_parse(text, alen, &family, addr) == -1)
		return set_err(err, "invalid address in range");
	max = family == AF_INET ? 32 : 128;
	if (slash == NULL)
		prefix = max;
	else if (parse_prefix(slash + 1, max, &prefix) == -1)
		return set_err(err, "invalid prefix length in range");

	/* "10.0.0.1/8" is a typo for a host or for a network: say so. */
	for (i = prefix; i < max; i++)
		if (addr[i / 8] & (0x80 >> (i % 8)))
			return set_err(err, "host bits set beyond the prefix length");

	memset(out, 0, sizeof(*out));
	out->family = family;
	memcpy(out->addr, addr, 16);
	out->prefix = prefix;
	return 0;
}

/* Accepts 1..5 decimal digits naming a port 1..65535. */
static int
parse_port(const char *s, uint16_t *out)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5)
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (i == 0 || v < 1 || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

int
netaddr_parse_hostport(const char *text, struct sockaddr_storage *ss, socklen_t *len,
    const char **err)
{
	const char *host, *colon, *close;
	uint8_t addr[16];
	uint16_t port;
	size_t hlen;
	int family;

	if (text[0] == '[') {
		close = strchr(text, ']');
		if (close == NULL || close[1] != ':')
			return set_err(err, "expected [IPv6]:PORT");
		host = text + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
		if (ip_literal_parse(host, hlen, &family, addr) == -1 || family != AF_INET6)
			return set_err(err, "invalid IPv6 address");
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL)
			return set_err(err, "expected IPv4:PORT or [IPv6]:PORT");
		host = text;
		hlen = (size_t)(colon - host);
		/* A bare IPv6 address has more than one ':' and must be bracketed. */
		if (ip_literal_parse(host, hlen, &family, addr) == -1 || family != AF_INET)
			return set_err(err, "invalid IPv4 address (IPv6 needs brackets)");
	}
	if (parse_port(colon + 1, &port) == -1)
		return set_err(err, "invalid port (1-65535)");

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, addr, 4);
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, addr, 16);
		*len = sizeof(*sin6);
	}
	return 0;
}

/*
 * The address of sa as 16 bytes in IPv6 form (IPv4 as ::ffff:a.b.c.d), so
 * ranges of either family can be matched against either family.  Returns -1
 * for other families.
 */
static int
sa_to_v6(const struct sockaddr *sa, uint8_t out[16])
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		memcpy(out, mapped_prefix, 12);
		memcpy(out + 12, &sin->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		memcpy(out, &sin6->sin6_addr, 16);
		return 0;
	}
	return -1;
}

/* Accepts a, 16 bytes with IPv4 as mapped; true if it lies in c. */
static bool
v6bytes_in_cidr(const uint8_t a[16], const struct cidr *c)
{
	if (c->family == AF_INET)
		return memcmp(a, mapped_prefix, 12) == 0 &&
		    c->prefix <= 32 && prefix_match(a + 12, c->addr, c->prefix);
	if (c->family == AF_INET6)
		return c->prefix <= 128 && prefix_match(a, c->addr, c->prefix);
	return false;
}

bool
netaddr_in_cidr(const struct sockaddr *sa, const struct cidr *c)
{
	uint8_t a[16];

	if (sa_to_v6(sa, a) == -1)
		return false;
	return v6bytes_in_cidr(a, c);
}

bool
netaddr_is_internal(const struct sockaddr *sa)
{
	uint8_t a[16];

	if (sa_to_v6(sa, a) == -1)
		return true;
	/* An AF_INET address is now mapped, and judged by its IPv4. */
	return v6_is_internal(a);
}

static bool
any_cidr_contains(const uint8_t a[16], const struct cidr *allow, size_t nallow)
{
	size_t i;

	for (i = 0; i < nallow; i++)
		if (v6bytes_in_cidr(a, &allow[i]))
			return true;
	return false;
}

bool
netaddr_destination_allowed(const struct sockaddr *sa, const struct cidr *allow,
    size_t nallow)
{
	uint8_t a[16];

	if (sa_to_v6(sa, a) == -1)
		return false;
	if (!v6_is_internal(a))
		return true;
	/*
	 * The address itself must lie in a range: an IPv4 range matches the
	 * IPv4 address and its mapped form only (v6bytes_in_cidr), so a NAT64,
	 * 6to4 or Teredo address that embeds an allowed IPv4 address stays
	 * refused unless an IPv6 range names it.
	 */
	return any_cidr_contains(a, allow, nallow);
}

bool
netaddr_unmap(struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in sin;

	if (ss->ss_family != AF_INET6 ||
	    memcmp(&sin6->sin6_addr, mapped_prefix, sizeof(mapped_prefix)) != 0)
		return false;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = sin6->sin6_port;
	memcpy(&sin.sin_addr, (const uint8_t *)&sin6->sin6_addr + 12, 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &sin, sizeof(sin));
	if (len != NULL)
		*len = sizeof(sin);
	return true;
}

bool
netaddr_is_unspecified(const struct sockaddr *sa)
{
	static const uint8_t zero[16];
	uint8_t a[16];

	if (sa_to_v6(sa, a) == -1)
		return false;
	/* 0.0.0.0 (as itself or mapped) or :: */
	return memcmp(a, zero, 16) == 0 ||
	    (memcmp(a, mapped_prefix, 12) == 0 && memcmp(a + 12, zero, 4) == 0);
}

/*
 * The one function here that asks the kernel rather than a table: whether sa
 * (already unmapped, see netaddr_unmap) is an address of this host now.  127.0.0.0/8, ::1 and the unspecified addresses
 * always are (a connect() to 0.0.0.0 or :: reaches the loopback).  For the
 * rest the kernel decides, with the interfaces as they are at this moment:
 * bind() of a throwaway socket succeeds exactly for a local address
 * (EADDRNOTAVAIL otherwise); IP_BIND_ADDRESS_NO_PORT keeps it from taking an
 * ephemeral port.  Anything unclear (no socket, another error) counts as
 * local: the cost is a refusal on a listener's port, never a loop.
 */
bool
netaddr_is_local(const struct sockaddr *sa)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, rc, err, one = 1;

	if (netaddr_is_unspecified(sa))
		return true;
	memset(&ss, 0, sizeof(ss));
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		memcpy(sin, sa, sizeof(*sin));
		if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127)
			return true;
		sin->sin_port = 0;
		len = sizeof(*sin);
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		memcpy(sin6, sa, sizeof(*sin6));
		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return true;
		sin6->sin6_port = 0;
		len = sizeof(*sin6);
	} else
		return true;

	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return true;
	(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	rc = bind(fd, (struct sockaddr *)&ss, len);
	err = errno;
	close(fd);
	return rc == 0 || err != EADDRNOTAVAIL;
}

const char *
netaddr_ntop(const struct sockaddr *sa, char *buf, size_t bufsz)
{
	const void *src = NULL;

	if (bufsz == 0)
		return buf;
	if (sa->sa_family == AF_INET && bufsz >= FMT_IPV4_MAX) {
		fmt_ipv4(buf, (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr);
		return buf;
	}
	if (sa->sa_family == AF_INET)
		src = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		src = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (src == NULL || bufsz > (socklen_t)-1 ||
	    inet_ntop(sa->sa_family, src, buf, (socklen_t)bufsz) == NULL)
		buf[0] = '\0';
	return buf;
}

uint16_t
netaddr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	return 0;
}

bool
netaddr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)(const void *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)(const void *)b;

		return x->sin_port == y->sin_port &&
		    memcmp(&x->sin_addr, &y->sin_addr, 4) == 0;
	}
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)(const void *)a;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)(const void *)b;

		return x->sin6_port == y->sin6_port &&
		    memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
	}
	return false;
}

void
netaddr_interleave_families(struct sockaddr_storage *addr, socklen_t *len, size_t n)
{
	struct sockaddr_storage moved;
	socklen_t moved_len;
	size_t out, j;
	bool six;

	if (n < 2)
		return;
	six = addr[0].ss_family == AF_INET6;
	/* In place and stable: bring the next address of the wanted family
	 * forward to position out, shifting the ones it passes down by one. */
	for (out = 1; out < n; out++) {
		six = !six;
		for (j = out; j < n && (addr[j].ss_family == AF_INET6) != six; j++)
			;
		if (j == n)
			break;          /* that family is used up: the rest keep their order */
		if (j == out)
			continue;
		moved = addr[j];
		moved_len = len[j];
		memmove(&addr[out + 1], &addr[out], (j - out) * sizeof(*addr));
		memmove(&len[out + 1], &len[out], (j - out) * sizeof(*len));
		addr[out] = moved;
		len[out] = moved_len;
	}
}
