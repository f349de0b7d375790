/*
 * proxy_proto — the HAProxy PROXY protocol header, versions 1 and 2.
 *
 * A load balancer in front of the gateway prefixes each connection with the
 * address of the real client, and that address is what the audit trail
 * records.  The header arrives in pieces like any TCP data, so the parser is
 * called again with more bytes until it answers DONE or ERROR.
 *
 * The difficulty is answering early and exactly: NEED_MORE only while the
 * bytes so far can still become a valid header, ERROR as soon as they
 * cannot, so a peer that is not a load balancer is dropped at its first
 * wrong byte instead of holding a slot until the deadline.  The first byte
 * decides the version ('P' for v1, CR for v2).  v1 is checked token by token
 * on whatever prefix has arrived; v2 is checked field by field as the fixed
 * part arrives, and its variable part once it is complete (at most
 * PROXY_V2_MAX bytes).  Addresses go through the program's one strict
 * IP-literal parser, so "PROXY TCP4 127.1 ..." is refused like "CONNECT 127.1".
 * The spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
 */
#include "gateway/proxy_proto.h"

#include <netinet/in.h>

#include <string.h>

#include "policy/policy.h"

/*
 * Version 2, all fields big-endian:
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +---------------------------------------------------------------+
 *  |    signature \r\n\r\n\0\r\nQUIT\n (12 bytes)                   |
 *  +-------+-------+---------------+-------------------------------+
 *  |ver=2  |cmd    | fam   | proto |  len (bytes that follow)      |
 *  +-------+-------+---------------+-------------------------------+
 *  | addresses: 0x11 src4 dst4 sport dport (12), 0x21 src6 dst6    |
 *  |            sport dport (36), 0x00 none                        |
 *  +---------------------------------------------------------------+
 *  | TLVs to the end of len: type (1) length (2) value (length)    |
 *  +---------------------------------------------------------------+
 */
static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

#define V2_FIXED 16
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_UNSPEC 0x00
#define V2_TCP4 0x11
#define V2_TCP6 0x21

/* Version 1: "PROXY TCP4 src dst sport dport\r\n" holds at most this before CRLF. */
#define V1_LINE_MAX (PROXY_V1_MAX - 2)

static enum proxy_result
fail(const char **err, const char *msg)
{
	if (err != NULL)
		*err = msg;
	return PROXY_ERROR;
}

static void
set_v4(struct sockaddr_storage *ss, const uint8_t *addr, uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	memcpy(&sin->sin_addr, addr, 4);
}

static void
set_v6(struct sockaddr_storage *ss, const uint8_t *addr, uint16_t port)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	memcpy(&sin6->sin6_addr, addr, 16);
}

/* ---- version 1 --------------------------------------------------------- */

/*
 * A cursor over the v1 line content (without CRLF).  complete says whether
 * the line ends at n (its CR has arrived) or more bytes may follow.
 */
struct v1_cursor {
	const unsigned char *p;
	size_t n;
	size_t i;
	bool complete;
};

/*
 * Take the next token: the bytes up to a space (consumed) or the end of what
 * is there.  Returns true if a space ended it.
 */
static bool
v1_token(struct v1_cursor *c, const unsigned char **tok, size_t *toklen)
{
	size_t start = c->i;

	while (c->i < c->n && c->p[c->i] != ' ')
		c->i++;
	*tok = c->p + start;
	*toklen = c->i - start;
	if (c->i < c->n) {
		c->i++;
		return true;
	}
	return false;
}

/* true if tok[0..len) could begin an address of family (TCP4: 4, TCP6: 6). */
static bool
v1_addr_prefix_ok(const unsigned char *tok, size_t len, int v)
{
	size_t i;

	if (len > (v == 4 ? 15 : 45))
		return false;
	for (i = 0; i < len; i++) {
		unsigned char ch = tok[i];

		if ((ch >= '0' && ch <= '9') || ch == '.')
			continue;
		if (v == 6 && (ch == ':' || (ch >= 'a' && ch <= 'f') ||
		    (ch >= 'A' && ch <= 'F')))
			continue;
		return false;
	}
	return true;
}

/* Accepts a whole address token; fills addr (16 bytes, IPv4 in the first 4). */
static bool
v1_addr(const unsigned char *tok, size_t len, int v, uint8_t addr[16])
{
	int family;

	if (!v1_addr_prefix_ok(tok, len, v) ||
	    ip_literal_parse((const char *)tok, len, &family, addr) == -1)
		return false;
	return family == (v == 4 ? AF_INET : AF_INET6);
}

/*
 * true if tok[0..len) is, or may grow into, a port: decimal, no leading
 * zero except "0" itself, at most 65535.  whole: no more digits will come.
 */
static bool
v1_port(const unsigned char *tok, size_t len, bool whole, uint16_t *port)
{
	unsigned long v = 0;
	size_t i;

	if (len > 5 || (len > 1 && tok[0] == '0') || (whole && len == 0))
		return false;
	for (i = 0; i < len; i++) {
		if (tok[i] < '0' || tok[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(tok[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* true if the s[0..n) is a prefix of the literal lit. */
static bool
is_prefix_of(const unsigned char *s, size_t n, const char *lit)
{
	return n <= strlen(lit) && memcmp(s, lit, n) == 0;
}

static bool
tok_is(const unsigned char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/*
 * Check the line content c->p[0..c->n).  If c->complete, answers DONE (and
 * fills out) or ERROR; otherwise NEED_MORE while it is a valid beginning.
 */
static enum proxy_result
v1_line(struct v1_cursor *c, struct proxy_info *out, const char **err)
{
	const unsigned char *tok;
	uint8_t src[16], dst[16];
	uint16_t sport = 0, dport = 0;
	size_t len, i;
	bool sp;
	int v;

	/* "PROXY" and one space */
	sp = v1_token(c, &tok, &len);
	if (!sp) {
		if (!c->complete && is_prefix_of(tok, len, "PROXY"))
			return PROXY_NEED_MORE;
		return fail(err, "PROXY v1: bad signature");
	}
	if (!tok_is(tok, len, "PROXY"))
		return fail(err, "PROXY v1: bad signature");

	/* protocol */
	sp = v1_token(c, &tok, &len);
	if (!sp) {
		if (c->complete) {
			if (tok_is(tok, len, "UNKNOWN")) {
				out->has_address = false;
				return PROXY_DONE;
			}
			return fail(err, "PROXY v1: bad protocol");
		}
		if (is_prefix_of(tok, len, "TCP4") || is_prefix_of(tok, len, "TCP6") ||
		    is_prefix_of(tok, len, "UNKNOWN"))
			return PROXY_NEED_MORE;
		return fail(err, "PROXY v1: bad protocol");
	}
	if (tok_is(tok, len, "UNKNOWN")) {
		/* The spec has the receiver ignore the rest; it must still be text. */
		for (i = c->i; i < c->n; i++)
			if (c->p[i] < 0x20 || c->p[i] > 0x7e)
				return fail(err, "PROXY v1: control character");
		out->has_address = false;
		return c->complete ? PROXY_DONE : PROXY_NEED_MORE;
	}
	if (tok_is(tok, len, "TCP4"))
		v = 4;
	else if (tok_is(tok, len, "TCP6"))
		v = 6;
	else
		return fail(err, "PROXY v1: bad protocol");

	/* source and destination addresses, each ended by one space */
	sp = v1_token(c, &tok, &len);
	if (!sp)
		goto partial_addr;
	if (!v1_addr(tok, len, v, src))
		return fail(err, "PROXY v1: bad source address");
	sp = v1_token(c, &tok, &len);
	if (!sp)
		goto partial_addr;
	if (!v1_addr(tok, len, v, dst))
		return fail(err, "PROXY v1: bad destination address");

	/* source port, one space, destination port, end of line */
	sp = v1_token(c, &tok, &len);
	if (!sp) {
		if (!c->complete && v1_port(tok, len, false, &sport))
			return PROXY_NEED_MORE;
		return fail(err, "PROXY v1: bad source port");
	}
	if (!v1_port(tok, len, true, &sport))
		return fail(err, "PROXY v1: bad source port");
	sp = v1_token(c, &tok, &len);
	if (sp || !v1_port(tok, len, c->complete, &dport))
		return fail(err, "PROXY v1: bad destination port");
	if (!c->complete)
		return PROXY_NEED_MORE;

	out->has_address = true;
	if (v == 4) {
		set_v4(&out->src, src, sport);
		set_v4(&out->dst, dst, dport);
	} else {
		set_v6(&out->src, src, sport);
		set_v6(&out->dst, dst, dport);
	}
	return PROXY_DONE;

partial_addr:
	/* The line stopped inside an address (or right after a space). */
	if (!c->complete && v1_addr_prefix_ok(tok, len, v))
		return PROXY_NEED_MORE;
	return fail(err, "PROXY v1: bad or missing address");
}

static enum proxy_result
v1_parse(const unsigned char *buf, size_t len, struct proxy_info *out, size_t *consumed,
    const char **err)
{
	struct v1_cursor c;
	enum proxy_result r;
	size_t lim, i;

	/* The CR may sit at index V1_LINE_MAX at the latest. */
	lim = len < V1_LINE_MAX + 1 ? len : V1_LINE_MAX + 1;
	for (i = 0; i < lim && buf[i] != '\r'; i++)
		continue;
	if (i == lim && len > V1_LINE_MAX)
		return fail(err, "PROXY v1: line too long");

	memset(&c, 0, sizeof(c));
	c.p = buf;
	c.n = i;
	c.complete = i < lim;
	r = v1_line(&c, out, err);
	if (r != PROXY_DONE)
		return r;

	/* The content is a whole valid line; now its LF. */
	if (i + 1 == len)
		return PROXY_NEED_MORE;
	if (buf[i + 1] != '\n')
		return fail(err, "PROXY v1: CR not followed by LF");
	*consumed = i + 2;
	return PROXY_DONE;
}

/* ---- version 2 --------------------------------------------------------- */

static uint16_t
load16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static enum proxy_result
v2_parse(const unsigned char *buf, size_t len, struct proxy_info *out, size_t *consumed,
    const char **err)
{
	size_t total, addrlen, off, tlvlen;
	unsigned cmd, fam;

	if (memcmp(buf, v2_sig, len < sizeof(v2_sig) ? len : sizeof(v2_sig)) != 0)
		return fail(err, "PROXY v2: bad signature");
	if (len <= 12)
		return PROXY_NEED_MORE;
	if (buf[12] >> 4 != 2)
		return fail(err, "PROXY v2: bad version");
	cmd = buf[12] & 0x0f;
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return fail(err, "PROXY v2: bad command");
	if (len <= 13)
		return PROXY_NEED_MORE;
	/*
	 * UDP and unix sockets make no sense in front of an HTTP proxy, so
	 * even LOCAL (which the spec lets carry anything) is held to these.
	 */
	fam = buf[13];
	if (fam == V2_TCP4)
		addrlen = 12;
	else if (fam == V2_TCP6)
		addrlen = 36;
	else if (fam == V2_UNSPEC)
		addrlen = 0;
	else
		return fail(err, "PROXY v2: unsupported address family or protocol");
	if (len < V2_FIXED)
		return PROXY_NEED_MORE;
	total = V2_FIXED + (size_t)load16(buf + 14);
	if (total > PROXY_V2_MAX)
		return fail(err, "PROXY v2: header too long");
	if (total - V2_FIXED < addrlen)
		return fail(err, "PROXY v2: length shorter than the addresses");
	if (len < total)
		return PROXY_NEED_MORE;

	/* TLVs: each must end inside the block; their contents are not used. */
	for (off = V2_FIXED + addrlen; off < total; off += 3 + tlvlen) {
		if (total - off < 3)
			return fail(err, "PROXY v2: truncated TLV");
		tlvlen = load16(buf + off + 1);
		if (tlvlen > total - off - 3)
			return fail(err, "PROXY v2: TLV overruns the header");
	}

	out->has_address = cmd == V2_CMD_PROXY && fam != V2_UNSPEC;
	if (out->has_address && fam == V2_TCP4) {
		set_v4(&out->src, buf + 16, load16(buf + 24));
		set_v4(&out->dst, buf + 20, load16(buf + 26));
	} else if (out->has_address) {
		set_v6(&out->src, buf + 16, load16(buf + 48));
		set_v6(&out->dst, buf + 32, load16(buf + 50));
	}
	*consumed = total;
	return PROXY_DONE;
}

enum proxy_result
proxy_parse(const unsigned char *buf, size_t len, struct proxy_info *out,
    size_t *consumed, const char **err)
{
	enum proxy_result r;

	memset(out, 0, sizeof(*out));
	*consumed = 0;
	if (err != NULL)
		*err = NULL;
	if (len == 0)
		return PROXY_NEED_MORE;
	if (buf[0] == 'P')
		r = v1_parse(buf, len, out, consumed, err);
	else if (buf[0] == '\r')
		r = v2_parse(buf, len, out, consumed, err);
	else
		r = fail(err, "not a PROXY protocol header");
	if (r != PROXY_DONE) {
		/* Half-filled addresses must not look like an answer. */
		memset(out, 0, sizeof(*out));
		*consumed = 0;
	}
	return r;
}
