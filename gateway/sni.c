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
 *   - on any error the answer is NOT_TLS or INVALID, never "plain text".
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
 *   | 0x16 |                | 1..2^14         |  a piece of the handshake |
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
 *   | version (2)     | legacy_version, 0x0303 (3,0..4 accepted)          |
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
#define TLS_CLIENT_HELLO        1
#define TLS_HANDSHAKE_HEADER    4
#define TLS_RANDOM              32
#define TLS_SESSION_ID_MAX      32
#define EXT_SERVER_NAME         0x0000
#define SNI_HOST_NAME           0
/*
 * Extensions one ClientHello may carry.  Browsers send about twenty (GREASE
 * included); a hello with more is refused rather than scanned without bound,
 * and the duplicate check stays a short scan instead of a 64 Kbit map that
 * every call would have to clear.
 */
#define SNI_EXTENSIONS_MAX      64

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
	char name[HOST_BUF];            /* that name */
	uint16_t seen[SNI_EXTENSIONS_MAX]; /* extension types met so far */
	size_t nseen;
};

/*
 * The step helpers return true to go on, or false with h->res and h->why
 * set.  A structural error is NOT_TLS, unless a server name was read before
 * it: then the hello carried a name we could see, and it must not go on
 * unchecked under sni=optional because the rest was broken (see sni.h).
 */
static bool
fail(struct hello *h, const char *why)
{
	h->res = h->have_name ? SNI_INVALID : SNI_NOT_TLS;
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
 * Enter the record that starts at h->pos.  Each header byte is checked as
 * soon as it is there, so "GET / HTTP/1.1" or an SSLv2 hello (high bit set
 * in the first byte) is refused at its first byte, not after a timeout.
 */
static bool
record_next(struct hello *h)
{
	const uint8_t *p = h->buf + h->pos;
	size_t avail = h->len - h->pos, n;

	/* A record must end inside the bound and carry at least one byte. */
	if (h->pos + TLS_RECORD_HEADER + 1 > SNI_MAX_HELLO)
		return fail(h, "ClientHello over the size bound");
	if (avail < 1)
		return need_more(h);
	if (p[0] != TLS_HANDSHAKE)
		return fail(h, "not a TLS handshake record");
	if (avail < 2)
		return need_more(h);
	if (p[1] != 3)
		return fail(h, "bad TLS record version");
	if (avail < 3)
		return need_more(h);
	if (p[2] > 4)
		return fail(h, "bad TLS record version");
	if (avail < TLS_RECORD_HEADER)
		return need_more(h);
	n = (size_t)p[3] << 8 | p[4];
	/* RFC 8446 5.1: no zero-length handshake fragments. */
	if (n == 0)
		return fail(h, "empty TLS handshake record");
	if (n > TLS_RECORD_MAX)
		return fail(h, "TLS record over 2^14 bytes");
	if (h->pos + TLS_RECORD_HEADER + n > SNI_MAX_HELLO)
		return fail(h, "ClientHello over the size bound");
	h->pos += TLS_RECORD_HEADER;
	h->rec_left = n;
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
	size_t type, n, i;

	while (h->msg_left > 0) {
		if (h->msg_left < 4)
			return fail(h, "truncated extension header");
		if (!get_uint(h, 2, &type) || !get_uint(h, 2, &n))
			return false;
		if (n > h->msg_left)
			return fail(h, "extension longer than the extensions block");
		for (i = 0; i < h->nseen; i++)
			if (h->seen[i] == type)
				return invalid(h, "duplicated extension");
		if (h->nseen == SNI_EXTENSIONS_MAX)
			return fail(h, "too many extensions");
		h->seen[h->nseen++] = (uint16_t)type;
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
		return fail(h, "handshake message is not a ClientHello");
	if (!get_uint(h, 3, &n))
		return false;
	if (n > SNI_MAX_HELLO - TLS_RECORD_HEADER - TLS_HANDSHAKE_HEADER)
		return fail(h, "ClientHello over the size bound");
	h->msg_left = n;

	if (!get_uint(h, 2, &v))
		return false;
	if (v >> 8 != 3 || (v & 0xff) > 4)
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

enum sni_result
sni_read(const uint8_t *buf, size_t len, char *name, size_t namesz, const char **why)
{
	struct hello h;
	enum sni_result res;

	memset(&h, 0, sizeof(h));
	h.buf = buf;
	h.len = len > SNI_MAX_HELLO ? SNI_MAX_HELLO : len;
	if (client_hello(&h)) {
		if (!h.have_name) {
			h.res = SNI_NO_NAME;
			h.why = "no server_name in ClientHello";
		} else if (strlen(h.name) >= namesz) {
			h.res = SNI_INVALID;
			h.why = "server name buffer too small";
		} else {
			memcpy(name, h.name, strlen(h.name) + 1);
			h.res = SNI_FOUND;
			h.why = NULL;
		}
	}
	res = h.res;
	if (why != NULL && res != SNI_FOUND)
		*why = h.why;
	return res;
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
	case SNI_NO_NAME:
		return "NO_NAME";
	case SNI_INVALID:
		return "INVALID";
	}
	return "?";
}
