/*
 * sni — the TLS ClientHello reader behind sni=require|optional.
 *
 * The gateway lets a CONNECT tunnel reach its destination only after the
 * client's first bytes proved to be a ClientHello for an allowed name, so this
 * reader stands between an untrusted client and a policy decision.  Its
 * difficulty is that the same bytes must be read the way a TLS server will
 * read them, or a client can show the gateway one name and the server another:
 *
 *   - a handshake message may be cut into any number of TLS records (RFC 8446
 *     section 5.1), and records into any number of TCP reads; splitting the
 *     hello is the standard way around DPI, so the record layer is
 *     reassembled, never "first record only";
 *   - every length field is checked against the bytes that remain in what
 *     contains it, and a hello servers could read in two ways (two names, a
 *     duplicated extension, a NUL, trailing bytes) is refused, never guessed;
 *   - on any error the answer is MALFORMED or INVALID, never "plain text".
 *
 * Only bytes that are plainly not a TLS client handshake answer NOT_TLS: a
 * first byte other than 0x16, a first record version other than 3.x, or a
 * first handshake message other than a ClientHello.  Everything else went as
 * far as "16 03 xx": from there on every failure is MALFORMED (or INVALID
 * once a name was read), which sni=optional refuses too, since a server may
 * well read a name out of bytes this reader gave up on.  What OpenSSL
 * accepts is accepted where it is unambiguous: empty handshake records
 * between the fragments, any 3.x minor version in the records and the hello,
 * any number of extensions (tests/fuzz/fuzz_sni_openssl.c checks this
 * against libssl).
 *
 * The reader is stateless: each call parses buf from its first byte, through
 * a cursor that walks the record headers and hands out the handshake bytes
 * they carry, without copying them.  Work per call is linear in the bytes
 * read, and never more than SNI_MAX_HELLO of them; a parse that runs out of
 * bytes inside the declared lengths answers NEED_MORE, so every prefix gets
 * either NEED_MORE or the final answer.  The duplicate check uses a bitmap of
 * the 65,536 extension types (8 KiB of stack), not a quadratic scan.
 */
#include "gateway/sni.h"

#include <stdbool.h>
#include <string.h>

#include "policy/policy.h"

_Static_assert(SNI_NAME_BUF == HOST_BUF, "sni names are normalized hosts");

/*
 * The wire format, all integers big-endian (RFC 8446 sections 4.1.2, 5.1;
 * RFC 6066 section 3):
 *
 * TLS record (TLSPlaintext), repeated until the handshake message is complete:
 *   +------+-------+-------+--------+--------+---------------------------+
 *   | type | version (3,x)  | length (2)      | fragment (length bytes)   |
 *   | 0x16 |                | 0..2^14         |  a piece of the handshake |
 *   +------+-------+-------+--------+--------+---------------------------+
 *      0      1       2        3        4       5 ...
 *
 * Handshake message, carried by the concatenated fragments:
 *   +------+------------------------+-------------------------------------+
 *   | 0x01 | length (3)             | ClientHello body (length bytes)     |
 *   +------+------------------------+-------------------------------------+
 *
 * ClientHello body:
 *   +-----------------+---------------------------------------------------+
 *   | version (2)     | legacy_version, 0x0303 (any 3,x accepted)         |
 *   | random (32)     |                                                   |
 *   | sid_len (1)     | session id, 0..32 bytes                           |
 *   | cs_len (2)      | cipher suites, 2-byte each: even, >= 2            |
 *   | cm_len (1)      | compression methods, >= 1, one of them 0 (null)   |
 *   | ext_len (2)     | extensions: exactly the rest of the body          |  (absent:
 *   +-----------------+---------------------------------------------------+   no name)
 *
 * Extension, repeated to the end of the body; each type at most once:
 *   +-------------+-------------+-----------------------------------------+
 *   | type (2)    | len (2)     | data (len bytes)                        |
 *   +-------------+-------------+-----------------------------------------+
 *
 * server_name extension data (type 0x0000):
 *   +-------------------+-----------+-----------+-------------------------+
 *   | list_len (2)      | name_type | name_len  | host_name (name_len)    |
 *   | = len - 2, >= 3   | (1) = 0   | (2) >= 1  | one entry, no other     |
 *   +-------------------+-----------+-----------+-------------------------+
 */
#define TLS_HANDSHAKE           22
#define TLS_RECORD_HEADER       5
#define TLS_RECORD_MAX          (1 << 14)   /* plaintext; the 2^14+256 allowance is for protected records */
#define TLS_CHANGE_CIPHER_SPEC  20
#define TLS_CLIENT_HELLO        1
#define TLS_SERVER_HELLO        2
#define TLS_HANDSHAKE_HEADER    4
#define TLS_RANDOM              32
#define TLS_SESSION_ID_MAX      32
#define EXT_SERVER_NAME         0x0000
#define EXT_ECH                 0xfe0d  /* encrypted_client_hello */
#define SNI_HOST_NAME           0

/* RFC 8446 4.1.3: the ServerHello.random that makes it a HelloRetryRequest. */
static const uint8_t hrr_random[TLS_RANDOM] = {
	0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02,
	0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e,
	0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
};

/* One parse: the cursor over the records, and what has been learned. */
struct hello {
	const uint8_t *buf;             /* the client's bytes */
	size_t len;                     /* how many, capped at SNI_MAX_HELLO */
	size_t pos;                     /* next unread byte of buf */
	size_t rec_left;                /* fragment bytes of the current record from pos on */
	size_t msg_left;                /* handshake message bytes not yet read */
	enum sni_result res;            /* the answer, once a step fails */
	const char *why;                /* its reason */
	bool have_name;                 /* a server name was read and normalized */
	bool ech;                       /* an encrypted_client_hello extension was met */
	char name[HOST_BUF];            /* that name */
};

/*
 * The step helpers return true to go on, or false with h->res and h->why
 * set.  A structural error is MALFORMED, or INVALID when a server name was
 * read before it (the hello carried a name we could see, and the log should
 * say so); not_tls() is only for bytes that are plainly no TLS handshake.
 */
static bool
fail(struct hello *h, const char *why)
{
	h->res = h->have_name ? SNI_INVALID : SNI_MALFORMED;
	h->why = why;
	return false;
}

static bool
not_tls(struct hello *h, const char *why)
{
	h->res = SNI_NOT_TLS;
	h->why = why;
	return false;
}

static bool
invalid(struct hello *h, const char *why)
{
	h->res = SNI_INVALID;
	h->why = why;
	return false;
}

static bool
need_more(struct hello *h)
{
	h->res = SNI_NEED_MORE;
	h->why = "incomplete ClientHello";
	return false;
}

/*
 * Enter the next record that carries a byte, from h->pos on.  Each header
 * byte is checked as soon as it is there, so "GET / HTTP/1.1" or an SSLv2
 * hello (high bit set in the first byte) is refused at its first byte, not
 * after a timeout.  Empty handshake records are skipped: RFC 8446 5.1 forbids
 * them, but OpenSSL reads past them before it knows the version, so refusing
 * them only as "not TLS" would let a name through that the server reads.
 */
static bool
record_next(struct hello *h)
{
	const uint8_t *p;
	size_t avail, n;

	do {
		p = h->buf + h->pos;
		avail = h->len - h->pos;
		if (h->pos + TLS_RECORD_HEADER > SNI_MAX_HELLO)
			return fail(h, "ClientHello over the size bound");
		if (avail < 1)
			return need_more(h);
		if (p[0] != TLS_HANDSHAKE)
			return h->pos == 0 ? not_tls(h, "not a TLS handshake record") :
			    fail(h, "not a TLS handshake record inside the ClientHello");
		if (avail < 2)
			return need_more(h);
		if (p[1] != 3)
			return h->pos == 0 ? not_tls(h, "not a TLS record version") :
			    fail(h, "bad TLS record version");
		if (avail < TLS_RECORD_HEADER)
			return need_more(h);
		n = (size_t)p[3] << 8 | p[4];
		if (n > TLS_RECORD_MAX)
			return fail(h, "TLS record over 2^14 bytes");
		if (h->pos + TLS_RECORD_HEADER + n > SNI_MAX_HELLO)
			return fail(h, "ClientHello over the size bound");
		h->pos += TLS_RECORD_HEADER;
		h->rec_left = n;
	} while (n == 0);
	return true;
}

/*
 * Skip n bytes of the handshake message, across records.  The caller has
 * checked n against the length that contains it; here it is checked against
 * the message itself.
 */
static bool
skip(struct hello *h, size_t n)
{
	size_t take;

	if (n > h->msg_left)
		return fail(h, "field longer than the handshake message");
	h->msg_left -= n;
	while (n > 0) {
		if (h->rec_left == 0 && !record_next(h))
			return false;
		if (h->pos >= h->len)
			return need_more(h);
		take = n;
		if (take > h->rec_left)
			take = h->rec_left;
		if (take > h->len - h->pos)
			take = h->len - h->pos;
		h->pos += take;
		h->rec_left -= take;
		n -= take;
	}
	return true;
}

/* Read n <= 3 bytes as a big-endian number, or n bytes into out. */
static bool
get_bytes(struct hello *h, uint8_t *out, size_t n)
{
	size_t i;

	if (n > h->msg_left)
		return fail(h, "field longer than the handshake message");
	for (i = 0; i < n; i++) {
		if (h->rec_left == 0 && !record_next(h))
			return false;
		if (h->pos >= h->len)
			return need_more(h);
		out[i] = h->buf[h->pos++];
		h->rec_left--;
		h->msg_left--;
	}
	return true;
}

static bool
get_uint(struct hello *h, size_t n, size_t *v)
{
	uint8_t b[3];
	size_t i;

	if (!get_bytes(h, b, n))
		return false;
	for (*v = 0, i = 0; i < n; i++)
		*v = *v << 8 | b[i];
	return true;
}

/*
 * The server_name extension, elen bytes of data.  Anything wrong in here is
 * INVALID: this is the name the check is about, and servers differ on what
 * they make of a list with two entries or an unknown name type (OpenSSL
 * refuses them, others take the first host_name), so the gateway refuses
 * every reading but the one unambiguous form.
 */
static bool
server_name(struct hello *h, size_t elen)
{
	uint8_t raw[HOST_MAX + 1];      /* one trailing dot allowed */
	enum host_kind kind;
	size_t list, type, n;
	const char *err;

	if (elen < 2)
		return invalid(h, "server_name extension too short");
	if (!get_uint(h, 2, &list))
		return false;
	if (list != elen - 2)
		return invalid(h, "server_name list length does not match its extension");
	if (list == 0)
		return invalid(h, "empty server_name list");
	while (list > 0) {
		if (list < 3)
			return invalid(h, "truncated server_name entry");
		if (!get_uint(h, 1, &type) || !get_uint(h, 2, &n))
			return false;
		list -= 3;
		if (n > list)
			return invalid(h, "server name longer than its list");
		list -= n;
		if (type != SNI_HOST_NAME)
			return invalid(h, "server_name entry of unknown type");
		if (h->have_name)
			return invalid(h, "two server names");
		if (n == 0)
			return invalid(h, "empty server name");
		if (n > sizeof(raw))
			return invalid(h, "server name too long");
		if (!get_bytes(h, raw, n))
			return false;
		/* host_normalize refuses a NUL too; say so plainly in the log. */
		if (memchr(raw, '\0', n) != NULL)
			return invalid(h, "NUL in server name");
		if (host_normalize((const char *)raw, n, h->name, sizeof(h->name), &kind,
		    &err) == -1)
			return invalid(h, "server name is not a valid host name");
		/* RFC 6066 3: "Literal IPv4 and IPv6 addresses are not permitted". */
		if (kind != HOST_NAME)
			return invalid(h, "IP literal as server name");
		h->have_name = true;
	}
	return true;
}

/* The extensions block: ext_len has been read and equals h->msg_left. */
static bool
extensions(struct hello *h)
{
	size_t type, n, w;
	uint64_t bit;
	/*
	 * Extension types met so far, one bit each: any number of extensions
	 * (OpenSSL sets no limit but the message size) at O(1) per check.  A
	 * word of `seen` counts only once its bit in `valid` is set, so a hello
	 * clears 128 bytes, not the 8 KiB of the whole set.
	 */
	uint64_t seen[65536 / 64], valid[65536 / 64 / 64] = { 0 };

	while (h->msg_left > 0) {
		if (h->msg_left < 4)
			return fail(h, "truncated extension header");
		if (!get_uint(h, 2, &type) || !get_uint(h, 2, &n))
			return false;
		if (n > h->msg_left)
			return fail(h, "extension longer than the extensions block");
		bit = (uint64_t)1 << (type % 64);
		w = type / 64;
		if (!(valid[w / 64] & (uint64_t)1 << (w % 64))) {
			valid[w / 64] |= (uint64_t)1 << (w % 64);
			seen[w] = 0;
		}
		if (seen[w] & bit)
			return invalid(h, "duplicated extension");
		seen[w] |= bit;
		if (type == EXT_ECH)
			h->ech = true;
		if (type == EXT_SERVER_NAME) {
			if (!server_name(h, n))
				return false;
		} else if (!skip(h, n))
			return false;
	}
	return true;
}

/* The whole handshake message, from its header on. */
static bool
client_hello(struct hello *h)
{
	uint8_t cm[255];
	size_t v, n;

	/* The header is read with msg_left set to its own size. */
	h->msg_left = TLS_HANDSHAKE_HEADER;
	if (!get_uint(h, 1, &v))
		return false;
	if (v != TLS_CLIENT_HELLO)
		return not_tls(h, "handshake message is not a ClientHello");
	if (!get_uint(h, 3, &n))
		return false;
	if (n > SNI_MAX_HELLO - TLS_RECORD_HEADER - TLS_HANDSHAKE_HEADER)
		return fail(h, "ClientHello over the size bound");
	h->msg_left = n;

	if (!get_uint(h, 2, &v))
		return false;
	if (v >> 8 != 3)
		return fail(h, "bad ClientHello version");
	if (!skip(h, TLS_RANDOM))
		return false;

	if (!get_uint(h, 1, &n))
		return false;
	if (n > TLS_SESSION_ID_MAX)
		return fail(h, "session id over 32 bytes");
	if (!skip(h, n))
		return false;

	if (!get_uint(h, 2, &n))
		return false;
	if (n < 2 || n % 2 != 0)
		return fail(h, "bad cipher suites length");
	if (!skip(h, n))
		return false;

	if (!get_uint(h, 1, &n))
		return false;
	if (n < 1)
		return fail(h, "no compression methods");
	if (!get_bytes(h, cm, n))
		return false;
	if (memchr(cm, 0, n) == NULL)
		return fail(h, "no null compression method");

	/* Extensions are optional before TLS 1.3; a hello without them has no name. */
	if (h->msg_left > 0) {
		if (!get_uint(h, 2, &n))
			return false;
		if (n != h->msg_left)
			return fail(h, "extensions length does not match the message");
		if (!extensions(h))
			return false;
	}

	/*
	 * A first flight is the ClientHello alone; a server would refuse more
	 * handshake bytes in its last record (OpenSSL: "not on record
	 * boundary").  Records after it (early data, a compatibility
	 * ChangeCipherSpec) are not ours to read.
	 */
	if (h->rec_left > 0)
		return fail(h, "bytes after the ClientHello in its record");
	return true;
}

/*
 * After a HelloRetryRequest a TLS 1.3 client in middlebox compatibility mode
 * sends one ChangeCipherSpec record (always "14 03 03 00 01 01") before its
 * second ClientHello.  How many bytes at buf it takes: 0 if there is none,
 * -1 if buf is still a prefix of one, -2 if it is a broken one.
 */
static long
ccs_prefix(const uint8_t *buf, size_t len)
{
	static const uint8_t ccs[] = { TLS_CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1 };
	size_t i;

	if (len == 0 || buf[0] != TLS_CHANGE_CIPHER_SPEC)
		return 0;
	for (i = 1; i < sizeof(ccs); i++) {
		if (i == len)
			return -1;
		/* Any 3.x record version, as for the handshake records. */
		if (buf[i] != ccs[i] && i != 2)
			return -2;
	}
	return (long)sizeof(ccs);
}

enum sni_result
sni_read_hello(const uint8_t *buf, size_t len, unsigned flags, struct sni_hello *out,
    const char **why)
{
	struct hello h;
	size_t skip = 0;
	long ccs;

	memset(&h, 0, sizeof(h));
	if (flags & SNI_AFTER_HRR) {
		if ((ccs = ccs_prefix(buf, len)) == -1) {
			h.res = SNI_NEED_MORE;
			h.why = "incomplete ChangeCipherSpec record";
			goto out;
		}
		if (ccs == -2) {
			h.res = SNI_MALFORMED;
			h.why = "malformed ChangeCipherSpec record";
			goto out;
		}
		skip = (size_t)ccs;
	}
	h.buf = buf + skip;
	h.len = len - skip > SNI_MAX_HELLO ? SNI_MAX_HELLO : len - skip;
	if (client_hello(&h)) {
		out->ech = h.ech;
		out->consumed = skip + h.pos;
		if (!h.have_name) {
			h.res = SNI_NO_NAME;
			h.why = "no server_name in ClientHello";
			out->name[0] = '\0';
		} else {
			memcpy(out->name, h.name, strlen(h.name) + 1);
			h.res = SNI_FOUND;
			h.why = NULL;
		}
	}
out:
	if (why != NULL && h.res != SNI_FOUND)
		*why = h.why;
	return h.res;
}

enum sni_result
sni_read(const uint8_t *buf, size_t len, char *name, size_t namesz, const char **why)
{
	struct sni_hello hello;
	enum sni_result res;

	res = sni_read_hello(buf, len, 0, &hello, why);
	if (res != SNI_FOUND)
		return res;
	if (strlen(hello.name) >= namesz) {
		if (why != NULL)
			*why = "server name buffer too small";
		return SNI_INVALID;
	}
	memcpy(name, hello.name, strlen(hello.name) + 1);
	return SNI_FOUND;
}

enum sni_server_hello
sni_server_hello(const uint8_t *buf, size_t len)
{
	uint8_t random[TLS_RANDOM];
	struct hello h;
	size_t v, n;

	memset(&h, 0, sizeof(h));
	h.buf = buf;
	h.len = len > SNI_MAX_HELLO ? SNI_MAX_HELLO : len;
	h.msg_left = TLS_HANDSHAKE_HEADER;
	if (!get_uint(&h, 1, &v))
		goto out;
	if (v != TLS_SERVER_HELLO)
		return SNI_SERVER_OTHER;
	if (!get_uint(&h, 3, &n))
		goto out;
	h.msg_left = n;
	if (!get_uint(&h, 2, &v) || !get_bytes(&h, random, sizeof(random)))
		goto out;
	return memcmp(random, hrr_random, sizeof(random)) == 0 ? SNI_SERVER_HRR :
	    SNI_SERVER_OTHER;
out:
	return h.res == SNI_NEED_MORE ? SNI_SERVER_NEED_MORE : SNI_SERVER_OTHER;
}

const char *
sni_result_name(enum sni_result r)
{
	switch (r) {
	case SNI_FOUND:
		return "FOUND";
	case SNI_NEED_MORE:
		return "NEED_MORE";
	case SNI_NOT_TLS:
		return "NOT_TLS";
	case SNI_MALFORMED:
		return "MALFORMED";
	case SNI_NO_NAME:
		return "NO_NAME";
	case SNI_INVALID:
		return "INVALID";
	}
	return "?";
}
