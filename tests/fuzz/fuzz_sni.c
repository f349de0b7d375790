/*
 * fuzz_sni — the ClientHello reader, sni_read() (gateway/sni.c).
 *
 * Two kinds of input, told apart by the first byte:
 *
 *   0x16 ...   the client's bytes as they come off the wire (the seeds are
 *              real captured hellos).
 *   other      byte 0 is a record size s (1..255; 0 counts as 1) and the rest is a bare
 *              handshake message (cut at its declared length): it is
 *              wrapped once into records of at most 2^14 bytes and once
 *              into records of s bytes, and both
 *              wirings must get the same answer and the same name, since
 *              cutting a hello into records must never change what the
 *              gateway reads (record splitting is how DPI is evaded).
 *
 * Properties, beyond "no crash, no read past len" (every call gets a heap
 * copy of exactly its length):
 *   - a prefix of the input answers NEED_MORE or exactly the answer (and
 *     name) of the whole: nothing is decided early and then taken back;
 *   - a FOUND name is 1..253 bytes, lower case, and host_normalize() gives
 *     it back unchanged as a name, never an IP literal;
 *   - every answer but FOUND has a reason; SNI_MAX_HELLO bytes in hand
 *     never answer NEED_MORE;
 *   - sni_read_hello() agrees with sni_read(), its consumed count ends a
 *     record inside the input, and with SNI_AFTER_HRR a leading
 *     ChangeCipherSpec changes nothing but the count;
 *   - NOT_TLS only for bytes that do not begin "16 03" (or whose first
 *     handshake byte is not 1): a hello that starts like TLS is never let
 *     through as plain bytes;
 *   - sni_server_hello() has the same prefix property and never answers
 *     NEED_MORE with SNI_MAX_HELLO bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/sni.h"
#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WIRE_MAX (6 * 65536)        /* one-byte records of the largest message */

static uint8_t wire[WIRE_MAX];

static uint8_t ccs_wire[WIRE_MAX + 6];

/* sni_read_hello() must tell what sni_read() told, plus a consistent count. */
static void
check_hello(const uint8_t *buf, size_t len, enum sni_result r, const char *name)
{
	struct sni_hello h;
	enum sni_result r2;
	const char *why = NULL;

	r2 = sni_read_hello(buf, len, 0, &h, &why);
	if (r2 != r || (r == SNI_FOUND && strcmp(h.name, name) != 0))
		abort();
	if ((r == SNI_FOUND || r == SNI_NO_NAME) && (h.consumed < 9 || h.consumed > len))
		abort();
	if (r == SNI_NOT_TLS && len >= 2 && buf[0] == 0x16 && buf[1] == 3 &&
	    (len < 6 || buf[5] == 1) && (len < 5 || buf[3] != 0 || buf[4] != 0))
		abort();
	if (len + 6 > sizeof(ccs_wire))
		return;
	memcpy(ccs_wire, "\x14\x03\x03\x00\x01\x01", 6);
	memcpy(ccs_wire + 6, buf, len);
	{
		struct sni_hello h2;

		r2 = sni_read_hello(ccs_wire, len + 6, SNI_AFTER_HRR, &h2, &why);
		if (r2 != r || (r == SNI_FOUND && strcmp(h2.name, name) != 0))
			abort();
		if ((r == SNI_FOUND || r == SNI_NO_NAME) && h2.consumed != h.consumed + 6)
			abort();
	}
}

/* The server reader: prefixes answer NEED_MORE or the final answer. */
static void
check_server(const uint8_t *buf, size_t len)
{
	enum sni_server_hello whole, r;
	size_t k, step;

	whole = sni_server_hello(buf, len);
	if (whole == SNI_SERVER_NEED_MORE && len >= SNI_MAX_HELLO)
		abort();
	step = len <= 256 ? 1 : len / 64;
	for (k = 0; k < len; k += step) {
		r = sni_server_hello(buf, k);
		if (r != SNI_SERVER_NEED_MORE && r != whole)
			abort();
	}
}

static enum sni_result
read_copy(const uint8_t *buf, size_t len, char *name)
{
	char again[HOST_BUF];
	const char *why = NULL;
	enum host_kind kind;
	enum sni_result r;
	uint8_t *copy;
	size_t i, n;

	if ((copy = malloc(len > 0 ? len : 1)) == NULL)
		abort();
	if (len > 0)
		memcpy(copy, buf, len);
	r = sni_read(copy, len, name, SNI_NAME_BUF, &why);
	check_hello(copy, len, r, name);
	free(copy);

	if (r != SNI_FOUND && why == NULL)
		abort();
	if (r == SNI_NEED_MORE && len >= SNI_MAX_HELLO)
		abort();
	if (r != SNI_FOUND)
		return r;
	n = strlen(name);
	if (n == 0 || n > HOST_MAX)
		abort();
	for (i = 0; i < n; i++)
		if (name[i] >= 'A' && name[i] <= 'Z')
			abort();
	if (host_normalize(name, n, again, sizeof(again), &kind, &why) != 0 ||
	    kind != HOST_NAME || strcmp(name, again) != 0)
		abort();
	return r;
}

static void
same(enum sni_result a, const char *na, enum sni_result b, const char *nb)
{
	if (a != b)
		abort();
	if (a == SNI_FOUND && strcmp(na, nb) != 0)
		abort();
}

/*
 * Prefixes: all of them for a short input, else about 64 spread over it and
 * the last 16 (where a hello completes).
 */
static void
check_prefixes(const uint8_t *buf, size_t len, enum sni_result whole, const char *name)
{
	char pname[SNI_NAME_BUF];
	enum sni_result r;
	size_t k, step;

	step = len <= 256 ? 1 : len / 64;
	for (k = 0; k < len; k += (len - k <= 16 ? 1 : step)) {
		r = read_copy(buf, k, pname);
		if (r != SNI_NEED_MORE)
			same(r, pname, whole, name);
	}
}

/* Wrap msg into records of at most recsz bytes; returns the wire length. */
static size_t
wrap(const uint8_t *msg, size_t mlen, size_t recsz)
{
	size_t pos = 0, n = 0, take;

	while (pos < mlen) {
		take = mlen - pos < recsz ? mlen - pos : recsz;
		wire[n++] = 0x16;
		wire[n++] = 0x03;
		wire[n++] = 0x01;
		wire[n++] = (uint8_t)(take >> 8);
		wire[n++] = (uint8_t)take;
		memcpy(wire + n, msg + pos, take);
		n += take;
		pos += take;
	}
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[SNI_NAME_BUF], name2[SNI_NAME_BUF];
	enum sni_result r, r2;
	size_t wl, s, mlen, decl;

	if (size == 0)
		return 0;

	if (data[0] == 0x16) {
		r = read_copy(data, size, name);
		check_prefixes(data, size, r, name);
		check_server(data, size);
		return 0;
	}

	/*
	 * A bare message, cut two ways.  Bytes past its declared length are
	 * dropped: inside the hello's last record they are refused, in records
	 * of their own they are not the reader's business, so with them the
	 * two wirings would rightly differ.
	 */
	mlen = size - 1;
	if (mlen >= 4) {
		decl = 4 + ((size_t)data[2] << 16 | (size_t)data[3] << 8 | data[4]);
		if (mlen > decl)
			mlen = decl;
	}
	if (mlen > 65536)
		return 0;
	s = data[0] != 0 ? data[0] : 1;
	wl = wrap(data + 1, mlen, 16384);
	r = read_copy(wire, wl, name);
	wl = wrap(data + 1, mlen, s);
	r2 = read_copy(wire, wl, name2);
	/* Small records cost header bytes: past the bound both may differ. */
	if (wl <= SNI_MAX_HELLO)
		same(r, name, r2, name2);
	check_prefixes(wire, wl, r2, name2);
	return 0;
}
