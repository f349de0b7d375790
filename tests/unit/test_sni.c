/*
 * test_sni — the ClientHello reader (gateway/sni.c).
 *
 * The inputs are real ClientHellos from openssl s_client, curl and Python's
 * ssl module, captured on 127.0.0.1 into tests/unit/data/clienthello/ (see
 * make_variants.py there for the large ones).  Each is read whole, byte by
 * byte, re-cut into TLS records at many points and truncated everywhere;
 * then taken apart into its fields and extensions and put back together with
 * one thing changed (two names, an IP literal, a duplicated extension, a bad
 * length, ...).  Every buffer handed to sni_read() is a heap copy of exactly
 * its length, so ASan catches a read one byte past the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/sni.h"

#define DATA_DIR "tests/unit/data/clienthello/"
#define BIG (64 * 1024)
#define MAX_EXTS 64

struct ext {
	unsigned type;                  /* extension type */
	const uint8_t *data;            /* its data (borrowed) */
	size_t len;                     /* and length */
};

/* A ClientHello taken apart: everything before the extensions, then each extension. */
struct parts {
	const uint8_t *fixed;           /* version .. compression methods */
	size_t fixedlen;
	bool has_ext_block;             /* false: no extensions length at all */
	struct ext ext[MAX_EXTS];
	size_t next;
};

struct capture {
	const char *file;
	enum sni_result res;
	const char *name;
};

static const struct capture captures[] = {
	{ "openssl_s_client.bin", SNI_FOUND, "example.com" },
	{ "openssl_tls12.bin", SNI_FOUND, "www.example.org" },
	{ "openssl_ffdhe8192.bin", SNI_FOUND, "big.example.net" },
	{ "openssl_noservername.bin", SNI_NO_NAME, NULL },
	{ "openssl_upper_dot.bin", SNI_FOUND, "mixed.example.com" },
	{ "curl.bin", SNI_FOUND, "example.com" },
	{ "python_ssl.bin", SNI_FOUND, "api.python.example" },
	{ "padded_4k.bin", SNI_FOUND, "example.com" },
	{ "padded_20k.bin", SNI_FOUND, "example.com" },
};
#define NCAPTURES (sizeof(captures) / sizeof(captures[0]))

static uint8_t wire[BIG], msg[BIG], msg2[BIG], scratch[BIG];

/* ---- helpers ------------------------------------------------------------ */

static size_t
load(const char *file, uint8_t *out, size_t outsz)
{
	char path[256];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), DATA_DIR "%s", file);
	if ((f = fopen(path, "rb")) == NULL)
		fail_msg("cannot open %s (run from the repository root)", path);
	n = fread(out, 1, outsz, f);
	assert_true(feof(f));
	fclose(f);
	return n;
}

/* sni_read() on an exact-size heap copy; a failure must come with a reason. */
static enum sni_result
run(const uint8_t *buf, size_t len, char *name)
{
	const char *why = NULL;
	enum sni_result r;
	uint8_t *copy;

	copy = malloc(len > 0 ? len : 1);
	assert_non_null(copy);
	if (len > 0)
		memcpy(copy, buf, len);
	name[0] = '\0';
	r = sni_read(copy, len, name, SNI_NAME_BUF, &why);
	free(copy);
	if (r != SNI_FOUND)
		assert_non_null(why);
	else
		assert_true(strlen(name) > 0 && strlen(name) < SNI_NAME_BUF);
	return r;
}

static void
expect(const uint8_t *buf, size_t len, enum sni_result want, const char *want_name)
{
	char name[SNI_NAME_BUF];
	enum sni_result r;

	r = run(buf, len, name);
	if (r != want)
		fail_msg("got %s, want %s", sni_result_name(r), sni_result_name(want));
	if (want == SNI_FOUND)
		assert_string_equal(name, want_name);
}

/*
 * The result must be a refusal under every sni= mode: MALFORMED or INVALID
 * (NOT_TLS would let sni=optional go on unchecked).
 */
static void
expect_refused(const uint8_t *buf, size_t len, const char *what)
{
	char name[SNI_NAME_BUF];
	enum sni_result r;

	r = run(buf, len, name);
	if (r != SNI_MALFORMED && r != SNI_INVALID)
		fail_msg("%s: got %s, want MALFORMED or INVALID", what, sni_result_name(r));
}

/* Concatenate the fragments of the handshake records (inputs known good). */
static size_t
unwrap(const uint8_t *w, size_t len, uint8_t *out)
{
	size_t pos = 0, n = 0, rl;

	while (pos + 5 <= len && w[pos] == 22) {
		rl = (size_t)w[pos + 3] << 8 | w[pos + 4];
		assert_true(pos + 5 + rl <= len);
		memcpy(out + n, w + pos + 5, rl);
		n += rl;
		pos += 5 + rl;
	}
	return n;
}

/*
 * Wrap a handshake message into records, starting a new record at each of
 * cuts[0..ncuts) (ascending) and wherever a record would pass 2^14 bytes.
 */
static size_t
wrap(const uint8_t *m, size_t mlen, const size_t *cuts, size_t ncuts, uint8_t *out)
{
	size_t pos = 0, n = 0, end, c = 0;

	while (pos < mlen) {
		end = mlen;
		while (c < ncuts && cuts[c] <= pos)
			c++;
		if (c < ncuts && cuts[c] < end)
			end = cuts[c];
		if (end - pos > 16384)
			end = pos + 16384;
		out[n++] = 22;
		out[n++] = 3;
		out[n++] = 1;
		out[n++] = (uint8_t)((end - pos) >> 8);
		out[n++] = (uint8_t)(end - pos);
		memcpy(out + n, m + pos, end - pos);
		n += end - pos;
		pos = end;
	}
	return n;
}

static size_t
wrap1(const uint8_t *m, size_t mlen, uint8_t *out)
{
	return wrap(m, mlen, NULL, 0, out);
}

static void
split_parts(const uint8_t *m, size_t mlen, struct parts *p)
{
	size_t pos, end, el;

	assert_int_equal(m[0], 1);
	assert_int_equal(((size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3]) + 4, mlen);
	pos = 4 + 2 + 32;
	pos += 1 + m[pos];
	pos += 2 + ((size_t)m[pos] << 8 | m[pos + 1]);
	pos += 1 + m[pos];
	p->fixed = m + 4;
	p->fixedlen = pos - 4;
	p->next = 0;
	p->has_ext_block = pos < mlen;
	if (!p->has_ext_block)
		return;
	end = pos + 2 + ((size_t)m[pos] << 8 | m[pos + 1]);
	assert_int_equal(end, mlen);
	for (pos += 2; pos < end; pos += 4 + el) {
		assert_true(p->next < MAX_EXTS);
		el = (size_t)m[pos + 2] << 8 | m[pos + 3];
		p->ext[p->next].type = (unsigned)m[pos] << 8 | m[pos + 1];
		p->ext[p->next].data = m + pos + 4;
		p->ext[p->next].len = el;
		p->next++;
	}
}

static size_t
join_parts(const struct parts *p, uint8_t *out)
{
	size_t n = 4, i, blob = 0;

	memcpy(out + n, p->fixed, p->fixedlen);
	n += p->fixedlen;
	if (p->has_ext_block) {
		for (i = 0; i < p->next; i++)
			blob += 4 + p->ext[i].len;
		out[n++] = (uint8_t)(blob >> 8);
		out[n++] = (uint8_t)blob;
		for (i = 0; i < p->next; i++) {
			out[n++] = (uint8_t)(p->ext[i].type >> 8);
			out[n++] = (uint8_t)p->ext[i].type;
			out[n++] = (uint8_t)(p->ext[i].len >> 8);
			out[n++] = (uint8_t)p->ext[i].len;
			if (p->ext[i].len > 0)
				memcpy(out + n, p->ext[i].data, p->ext[i].len);
			n += p->ext[i].len;
		}
	}
	out[0] = 1;
	out[1] = (uint8_t)((n - 4) >> 16);
	out[2] = (uint8_t)((n - 4) >> 8);
	out[3] = (uint8_t)(n - 4);
	return n;
}

/* The parts of a captured hello (its message left in msg). */
static void
captured_parts(const char *file, struct parts *p)
{
	size_t wl, ml;

	wl = load(file, wire, sizeof(wire));
	ml = unwrap(wire, wl, msg);
	split_parts(msg, ml, p);
}

static size_t
find_ext(const struct parts *p, unsigned type)
{
	size_t i;

	for (i = 0; i < p->next; i++)
		if (p->ext[i].type == type)
			return i;
	fail_msg("no extension %u", type);
	return 0;
}

/* server_name extension data: one entry per name (type 0) in out. */
static size_t
sni_data(const char *const *names, const size_t *lens, size_t n, uint8_t *out)
{
	size_t len = 2, i;

	for (i = 0; i < n; i++) {
		out[len++] = 0;
		out[len++] = (uint8_t)(lens[i] >> 8);
		out[len++] = (uint8_t)lens[i];
		memcpy(out + len, names[i], lens[i]);
		len += lens[i];
	}
	out[0] = (uint8_t)((len - 2) >> 8);
	out[1] = (uint8_t)(len - 2);
	return len;
}

/* curl's hello with its server_name data replaced by data[0..len), wrapped into wire. */
static size_t
curl_with_sni(const uint8_t *data, size_t len)
{
	struct parts p;
	size_t i;

	captured_parts("curl.bin", &p);
	i = find_ext(&p, 0);
	p.ext[i].data = data;
	p.ext[i].len = len;
	return wrap1(msg2, join_parts(&p, msg2), wire);
}

static void
expect_name(const char *given, size_t givenlen, enum sni_result want, const char *want_name)
{
	static uint8_t data[1024];
	size_t n, wl;

	n = sni_data(&given, &givenlen, 1, data);
	wl = curl_with_sni(data, n);
	expect(wire, wl, want, want_name);
}

/* ---- captured hellos ------------------------------------------------------ */

static void
test_captured(void **state)
{
	size_t i, wl;

	(void)state;
	for (i = 0; i < NCAPTURES; i++) {
		wl = load(captures[i].file, wire, sizeof(wire));
		expect(wire, wl, captures[i].res, captures[i].name);
	}
}

/* Big enough to be a real test of the size claims. */
static void
test_captured_sizes(void **state)
{
	(void)state;
	assert_true(load("padded_4k.bin", wire, sizeof(wire)) > 2000);
	assert_true(load("padded_20k.bin", wire, sizeof(wire)) > 16384 + 5);
	assert_true(load("openssl_ffdhe8192.bin", wire, sizeof(wire)) > 1024);
}

/*
 * Fed one byte at a time, as a slow client would: every prefix, including
 * the empty one, is NEED_MORE, the whole is the captured result.  This is
 * also "truncated at every offset".
 */
static void
test_bytewise(void **state)
{
	char name[SNI_NAME_BUF];
	enum sni_result r;
	size_t i, k, wl;

	(void)state;
	for (i = 0; i < NCAPTURES; i++) {
		wl = load(captures[i].file, wire, sizeof(wire));
		for (k = 0; k < wl; k++) {
			r = sni_read(wire, k, name, sizeof(name), NULL);
			if (r != SNI_NEED_MORE)
				fail_msg("%s: %zu/%zu bytes: %s", captures[i].file, k, wl,
				    sni_result_name(r));
		}
		expect(wire, wl, captures[i].res, captures[i].name);
	}
}

/* Trailing records after the hello (TLS 1.3 early data, a CCS) are not read. */
static void
test_bytes_after_hello(void **state)
{
	static const uint8_t after[] = {
		0x14, 0x03, 0x03, 0x00, 0x01, 0x01,     /* ChangeCipherSpec */
		0x17, 0x03, 0x03, 0x00, 0x03, 'a', 'b', 'c',
		'G', 'E', 'T',
	};
	size_t i, wl;

	(void)state;
	for (i = 0; i < NCAPTURES; i++) {
		wl = load(captures[i].file, wire, sizeof(wire));
		memcpy(wire + wl, after, sizeof(after));
		expect(wire, wl + sizeof(after), captures[i].res, captures[i].name);
	}
}

/* ---- record layer ---------------------------------------------------------- */

/* Re-cut into two or more records, including inside the handshake header. */
static void
test_record_splits(void **state)
{
	static const size_t fixed_cuts[][3] = {
		{ 1, 0, 0 }, { 2, 0, 0 }, { 3, 0, 0 }, { 4, 0, 0 }, { 5, 0, 0 },
		{ 6, 0, 0 }, { 38, 0, 0 }, { 39, 0, 0 }, { 1, 2, 3 }, { 2, 40, 100 },
		{ 3, 4, 41 },
	};
	size_t i, j, k, wl, ml, cuts[3], ncuts;

	(void)state;
	for (i = 0; i < NCAPTURES; i++) {
		wl = load(captures[i].file, scratch, sizeof(scratch));
		ml = unwrap(scratch, wl, msg);
		for (j = 0; j < sizeof(fixed_cuts) / sizeof(fixed_cuts[0]); j++) {
			for (ncuts = 0, k = 0; k < 3 && fixed_cuts[j][k] != 0; k++)
				cuts[ncuts++] = fixed_cuts[j][k];
			wl = wrap(msg, ml, cuts, ncuts, wire);
			expect(wire, wl, captures[i].res, captures[i].name);
		}
		/* every single cut point */
		for (k = 1; k < ml; k++) {
			wl = wrap(msg, ml, &k, 1, wire);
			expect(wire, wl, captures[i].res, captures[i].name);
		}
		/* the middle, and the last byte alone */
		cuts[0] = ml / 2;
		cuts[1] = ml - 1;
		wl = wrap(msg, ml, cuts, 2, wire);
		expect(wire, wl, captures[i].res, captures[i].name);
	}
}

/* One byte per record, then fed one byte at a time: the worst split of all. */
static void
test_one_byte_records(void **state)
{
	static size_t cuts[4096];
	char name[SNI_NAME_BUF];
	size_t k, wl, ml;

	(void)state;
	wl = load("openssl_s_client.bin", scratch, sizeof(scratch));
	ml = unwrap(scratch, wl, msg);
	for (k = 0; k + 1 < ml; k++)
		cuts[k] = k + 1;
	wl = wrap(msg, ml, cuts, ml - 1, wire);
	assert_int_equal(wl, ml * 6);
	for (k = 0; k < wl; k++)
		assert_int_equal(sni_read(wire, k, name, sizeof(name), NULL), SNI_NEED_MORE);
	expect(wire, wl, SNI_FOUND, "example.com");
}

/* Records after the first must be handshake records too. */
static void
test_record_type_change(void **state)
{
	size_t wl, ml, cut = 100;

	(void)state;
	wl = load("curl.bin", scratch, sizeof(scratch));
	ml = unwrap(scratch, wl, msg);
	wl = wrap(msg, ml, &cut, 1, wire);
	wire[5 + cut] = 23;             /* second record: application data */
	expect_refused(wire, wl, "application data record inside the hello");
	wire[5 + cut] = 21;             /* alert */
	expect_refused(wire, wl, "alert record inside the hello");
	/* before the name: still begun as TLS, so refused under every mode */
	cut = 10;
	wl = wrap(msg, ml, &cut, 1, wire);
	wire[5 + cut] = 23;
	expect(wire, wl, SNI_MALFORMED, NULL);
}

static void
test_record_header(void **state)
{
	size_t wl;

	(void)state;
	wl = load("curl.bin", wire, sizeof(wire));
	wire[1] = 2;                    /* version 2.1 */
	expect(wire, wl, SNI_NOT_TLS, NULL);
	wire[1] = 3;
	wire[2] = 5;                    /* version 3.5: OpenSSL takes any 3.x */
	expect(wire, wl, SNI_FOUND, "example.com");
	wire[2] = 9;
	expect(wire, wl, SNI_FOUND, "example.com");
	wire[2] = 3;                    /* 3.3 is fine */
	expect(wire, wl, SNI_FOUND, "example.com");
	wire[2] = 0;                    /* so is 3.0 */
	expect(wire, wl, SNI_FOUND, "example.com");
	wire[0] = 23;
	expect(wire, 1, SNI_NOT_TLS, NULL);
	wire[0] = 22;
	wire[1] = 4;
	expect(wire, 2, SNI_NOT_TLS, NULL);
}

/*
 * Zero-length handshake records (RFC 8446 5.1 forbids them; OpenSSL reads
 * past them before the hello): skipped, before and between the fragments.
 */
static void
test_empty_record(void **state)
{
	static const uint8_t empty[] = { 0x16, 0x03, 0x01, 0x00, 0x00 };
	size_t wl, ml, n, cut = 40;

	(void)state;
	expect(empty, sizeof(empty), SNI_NEED_MORE, NULL);
	wl = load("curl.bin", scratch, sizeof(scratch));
	memcpy(wire, empty, sizeof(empty));
	memcpy(wire + sizeof(empty), scratch, wl);
	expect(wire, wl + sizeof(empty), SNI_FOUND, "example.com");
	/* three empty records between two fragments */
	ml = unwrap(scratch, wl, msg);
	n = wrap(msg, cut, NULL, 0, wire);
	memcpy(wire + n, empty, sizeof(empty));
	memcpy(wire + n + 5, empty, sizeof(empty));
	memcpy(wire + n + 10, empty, sizeof(empty));
	n += 15;
	n += wrap(msg + cut, ml - cut, NULL, 0, wire + n);
	expect(wire, n, SNI_FOUND, "example.com");
	/* a denied name in the same shape is read too, so it is judged */
	wl = load("openssl_s_client.bin", scratch, sizeof(scratch));
	memcpy(wire, empty, sizeof(empty));
	memcpy(wire + sizeof(empty), scratch, wl);
	expect(wire, wl + sizeof(empty), SNI_FOUND, "example.com");
	/* empty records alone up to the bound: refused, never NEED_MORE */
	for (n = 0; n + 5 <= SNI_MAX_HELLO; n += 5)
		memcpy(wire + n, empty, sizeof(empty));
	expect(wire, n - 5, SNI_NEED_MORE, NULL);       /* one more header would fit */
	expect(wire, n, SNI_MALFORMED, NULL);           /* none would */
	/* an empty record, then one of another type: began as TLS, refused */
	memcpy(wire, empty, sizeof(empty));
	memcpy(wire + 5, "\x17\x03\x03\x00\x01\x00", 6);
	expect(wire, 11, SNI_MALFORMED, NULL);
}

/* Over 2^14 bytes in one record: a server answers record_overflow. */
static void
test_record_overflow(void **state)
{
	size_t wl, ml, rl;

	(void)state;
	wl = load("padded_20k.bin", scratch, sizeof(scratch));
	ml = unwrap(scratch, wl, msg);
	assert_true(ml > 16385);
	rl = 16385;
	wire[0] = 22;
	wire[1] = 3;
	wire[2] = 1;
	wire[3] = (uint8_t)(rl >> 8);
	wire[4] = (uint8_t)rl;
	memcpy(wire + 5, msg, rl);
	wl = 5 + rl + wrap(msg + rl, ml - rl, NULL, 0, wire + 5 + rl);
	expect_refused(wire, wl, "record of 2^14 + 1 bytes");
	expect(wire, 5, SNI_MALFORMED, NULL);
}

/* ---- not TLS at all ------------------------------------------------------------ */

static void
test_plain_http(void **state)
{
	static const char get[] = "GET / HTTP/1.1\r\n";

	(void)state;
	expect((const uint8_t *)get, strlen(get), SNI_NOT_TLS, NULL);
	expect((const uint8_t *)get, 1, SNI_NOT_TLS, NULL);
	expect((const uint8_t *)"SSH-2.0-OpenSSH_9.2\r\n", 21, SNI_NOT_TLS, NULL);
	expect((const uint8_t *)"", 0, SNI_NEED_MORE, NULL);
}

/* An SSLv2-compatible CLIENT-HELLO (two-byte header with the high bit set). */
static void
test_sslv2_hello(void **state)
{
	static const uint8_t v2[] = {
		0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10,
		0x01, 0x00, 0x80, 0x03, 0x00, 0x80, 0x07, 0x00, 0xc0, 0x06, 0x00, 0x40,
		0x02, 0x00, 0x80, 0x04, 0x00, 0x80, 0x00, 0x00, 0x04,
		0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc,
		0xdd, 0xee, 0xff, 0x00,
	};

	(void)state;
	expect(v2, sizeof(v2), SNI_NOT_TLS, NULL);
	expect(v2, 1, SNI_NOT_TLS, NULL);
}

static void
test_not_client_hello(void **state)
{
	size_t wl;

	(void)state;
	wl = load("curl.bin", wire, sizeof(wire));
	wire[5] = 2;                    /* ServerHello */
	expect(wire, wl, SNI_NOT_TLS, NULL);
	expect(wire, 6, SNI_NOT_TLS, NULL);
	wire[5] = 1;
	wire[9] = 2;                    /* ClientHello version 2.3 */
	expect(wire, wl, SNI_MALFORMED, NULL);
	wire[9] = 3;
	wire[10] = 9;                   /* 3.9: OpenSSL reads it (and negotiates down) */
	expect(wire, wl, SNI_FOUND, "example.com");
}

/* ---- lengths ------------------------------------------------------------------- */

/*
 * Offsets in curl's wire bytes (one record) of each length field, found by
 * walking it.  size is the field's width in bytes.
 */
struct field {
	const char *what;
	size_t off, size;
	bool reparse;                   /* a wrong value may still frame a valid hello */
};

static size_t
length_fields(const uint8_t *w, size_t wl, struct field *f)
{
	size_t n = 0, pos, end, el, et, lend;

	f[n++] = (struct field){ "record length", 3, 2, false };
	f[n++] = (struct field){ "handshake length", 6, 3, false };
	pos = 5 + 4 + 2 + 32;
	f[n++] = (struct field){ "session id length", pos, 1, false };
	pos += 1 + w[pos];
	f[n++] = (struct field){ "cipher suites length", pos, 2, false };
	pos += 2 + ((size_t)w[pos] << 8 | w[pos + 1]);
	f[n++] = (struct field){ "compression length", pos, 1, false };
	pos += 1 + w[pos];
	f[n++] = (struct field){ "extensions length", pos, 2, false };
	end = pos + 2 + ((size_t)w[pos] << 8 | w[pos + 1]);
	assert_int_equal(end, wl);
	for (pos += 2; pos < end; pos += 4 + el) {
		et = (size_t)w[pos] << 8 | w[pos + 1];
		el = (size_t)w[pos + 2] << 8 | w[pos + 3];
		f[n++] = (struct field){ "extension length", pos + 2, 2, et != 0 };
		if (et == 0) {
			f[n++] = (struct field){ "server_name list length", pos + 4, 2, false };
			lend = pos + 4 + 2 + 1;
			f[n++] = (struct field){ "name length", lend, 2, false };
		}
	}
	return n;
}

static void
put(uint8_t *w, const struct field *f, size_t v)
{
	size_t i;

	for (i = 0; i < f->size; i++)
		w[f->off + i] = (uint8_t)(v >> (8 * (f->size - 1 - i)));
}

static size_t
get(const uint8_t *w, const struct field *f)
{
	size_t i, v = 0;

	for (i = 0; i < f->size; i++)
		v = v << 8 | w[f->off + i];
	return v;
}

/*
 * Each length field set to a wrong value.  Bytes follow the hello (as
 * they would on the wire), so a length that grows reads into them rather
 * than waiting; a length that grows past everything sent may still answer
 * NEED_MORE, which is true.  Never FOUND, never NO_NAME, never a read out
 * of bounds, with one exception: the length of an extension other than
 * server_name can shift the extensions that follow into another valid
 * framing (curl's supported_groups 22 -> 24 swallows ALPN's type, whose
 * length then reads as type use_srtp with exactly the rest as data).  That
 * is a well-formed hello, and only its original name may come out of it.
 */
static bool
acceptable(enum sni_result r, const char *name, const struct field *f, const char *want)
{
	if (r == SNI_MALFORMED || r == SNI_INVALID || r == SNI_NEED_MORE)
		return true;
	return f->reparse && r == SNI_FOUND && strcmp(name, want) == 0;
}

static void
check_corrupt_lengths(const char *file, const char *want)
{
	static const uint8_t junk[64] = { 0xee };
	struct field f[MAX_EXTS + 8];
	char name[SNI_NAME_BUF];
	size_t nf, i, j, v, wl, max, vals[8];
	enum sni_result r;

	wl = load(file, scratch, sizeof(scratch));
	nf = length_fields(scratch, wl, f);
	for (i = 0; i < nf; i++) {
		v = get(scratch, &f[i]);
		max = ((size_t)1 << (8 * f[i].size)) - 1;
		vals[0] = v + 1;
		vals[1] = v - 1;
		vals[2] = 0;
		vals[3] = max;
		vals[4] = v + 4;
		vals[5] = v > 4 ? v - 4 : max - 1;
		vals[6] = v ^ 0x80;
		vals[7] = v + 2;
		for (j = 0; j < 8; j++) {
			if ((vals[j] & max) == v)
				continue;
			memcpy(wire, scratch, wl);
			memcpy(wire + wl, junk, sizeof(junk));
			put(wire, &f[i], vals[j] & max);
			r = run(wire, wl + sizeof(junk), name);
			if (!acceptable(r, name, &f[i], want))
				fail_msg("%s: %s %zu -> %zu: %s", file, f[i].what, v,
				    vals[j] & max, sni_result_name(r));
			/* and the hello alone, with nothing after it */
			r = run(wire, wl, name);
			if (!acceptable(r, name, &f[i], want))
				fail_msg("%s: %s %zu -> %zu (alone): %s", file, f[i].what, v,
				    vals[j] & max, sni_result_name(r));
		}
	}
	assert_true(nf >= 9);
}

static void
test_corrupt_lengths(void **state)
{
	(void)state;
	check_corrupt_lengths("curl.bin", "example.com");
	check_corrupt_lengths("openssl_s_client.bin", "example.com");
	check_corrupt_lengths("openssl_tls12.bin", "www.example.org");
	check_corrupt_lengths("python_ssl.bin", "api.python.example");
}

/*
 * Cut the handshake message short and make the handshake and record lengths
 * agree with the cut: now the lengths inside are what is wrong, and no cut
 * may be read as a hello with a name.  The one cut that ends right after
 * the compression methods is a valid hello without extensions.
 */
static void
test_truncated_consistent(void **state)
{
	char name[SNI_NAME_BUF];
	struct parts p;
	size_t wl, ml, cut, no_ext;
	enum sni_result r;

	(void)state;
	captured_parts("curl.bin", &p);
	ml = join_parts(&p, msg2);
	no_ext = 4 + p.fixedlen;
	for (cut = 4; cut < ml; cut++) {
		memcpy(scratch, msg2, cut);
		scratch[1] = (uint8_t)((cut - 4) >> 16);
		scratch[2] = (uint8_t)((cut - 4) >> 8);
		scratch[3] = (uint8_t)(cut - 4);
		wl = wrap1(scratch, cut, wire);
		r = run(wire, wl, name);
		if (cut == no_ext)
			assert_int_equal(r, SNI_NO_NAME);
		else if (r != SNI_MALFORMED && r != SNI_INVALID)
			fail_msg("cut %zu/%zu: %s", cut, ml, sni_result_name(r));
	}
}

/* Bytes inside the handshake message after the extensions, and after it in its record. */
static void
test_trailing_bytes(void **state)
{
	size_t wl, ml;

	(void)state;
	wl = load("curl.bin", scratch, sizeof(scratch));
	ml = unwrap(scratch, wl, msg);
	/* two extra bytes in the message, handshake length counting them */
	msg[ml] = 0;
	msg[ml + 1] = 0;
	msg[3] += 2;
	wl = wrap1(msg, ml + 2, wire);
	expect_refused(wire, wl, "trailing bytes in the message");
	msg[3] -= 2;
	/* the message right, but its record two bytes longer */
	wl = wrap1(msg, ml + 2, wire);
	expect_refused(wire, wl, "trailing bytes in the record");
	/* same, no name: refused all the same */
	wl = load("openssl_noservername.bin", scratch, sizeof(scratch));
	ml = unwrap(scratch, wl, msg);
	wl = wrap1(msg, ml + 1, wire);
	expect(wire, wl, SNI_MALFORMED, NULL);
}

/* ---- fixed fields -------------------------------------------------------------- */

static void
test_fixed_fields(void **state)
{
	struct parts p;
	uint8_t fixed[512];
	size_t wl, sid, cs, cm;

	(void)state;
	captured_parts("openssl_s_client.bin", &p);
	memcpy(fixed, p.fixed, p.fixedlen);
	p.fixed = fixed;
	sid = 34;
	cs = sid + 1 + fixed[sid];
	cm = cs + 2 + ((size_t)fixed[cs] << 8 | fixed[cs + 1]);
	assert_int_equal(cm + 1 + fixed[cm], p.fixedlen);

	/* compression methods without null */
	assert_int_equal(fixed[cm], 1);
	fixed[cm + 1] = 1;
	wl = wrap1(msg2, join_parts(&p, msg2), wire);
	expect(wire, wl, SNI_MALFORMED, NULL);
	fixed[cm + 1] = 0;
	wl = wrap1(msg2, join_parts(&p, msg2), wire);
	expect(wire, wl, SNI_FOUND, "example.com");

	/* odd cipher suites length: move one byte from the suites into compression */
	fixed[cs + 1] -= 1;
	fixed[cm - 1] = 1;
	fixed[cm] = 0;
	wl = wrap1(msg2, join_parts(&p, msg2), wire);
	expect(wire, wl, SNI_MALFORMED, NULL);
}

static void
test_session_id_over_32(void **state)
{
	struct parts p;
	uint8_t fixed[512];
	size_t wl;

	(void)state;
	captured_parts("openssl_s_client.bin", &p);
	assert_int_equal(p.fixed[34], 32);
	memcpy(fixed, p.fixed, 34);
	fixed[34] = 33;
	fixed[35] = 0xaa;
	memcpy(fixed + 36, p.fixed + 35, p.fixedlen - 35);
	p.fixed = fixed;
	p.fixedlen++;
	wl = wrap1(msg2, join_parts(&p, msg2), wire);
	expect(wire, wl, SNI_MALFORMED, NULL);
}

/* ---- names and extensions -------------------------------------------------------- */

static void
test_no_name(void **state)
{
	struct parts p;
	size_t i, wl;

	(void)state;
	/* curl's hello without its server_name */
	captured_parts("curl.bin", &p);
	i = find_ext(&p, 0);
	memmove(&p.ext[i], &p.ext[i + 1], (p.next - i - 1) * sizeof(p.ext[0]));
	p.next--;
	wl = wrap1(msg2, join_parts(&p, msg2), wire);
	expect(wire, wl, SNI_NO_NAME, NULL);
	/* an empty extensions block */
	p.next = 0;
	wl = wrap1(msg2, join_parts(&p, msg2), wire);
	expect(wire, wl, SNI_NO_NAME, NULL);
	/* no extensions block at all (a pre-TLS 1.3 hello may omit it) */
	p.has_ext_block = false;
	wl = wrap1(msg2, join_parts(&p, msg2), wire);
	expect(wire, wl, SNI_NO_NAME, NULL);
}

static void
test_two_names(void **state)
{
	static uint8_t data[512];
	const char *names[2] = { "example.com", "evil.example" };
	size_t lens[2] = { 11, 12 }, n, wl;

	(void)state;
	n = sni_data(names, lens, 2, data);
	wl = curl_with_sni(data, n);
	expect(wire, wl, SNI_INVALID, NULL);
	/* the same name twice is no better */
	names[1] = "example.com";
	lens[1] = 11;
	n = sni_data(names, lens, 2, data);
	wl = curl_with_sni(data, n);
	expect(wire, wl, SNI_INVALID, NULL);
	/* a second entry of another type (OpenSSL refuses, others skip it) */
	n = sni_data(names, lens, 2, data);
	data[2 + 3 + 11] = 1;
	wl = curl_with_sni(data, n);
	expect(wire, wl, SNI_INVALID, NULL);
	/* and alone */
	n = sni_data(names, lens, 1, data);
	data[2] = 1;
	wl = curl_with_sni(data, n);
	expect(wire, wl, SNI_INVALID, NULL);
}

static void
test_duplicate_extension(void **state)
{
	static const unsigned types[] = { 0, 10, 43, 0x15, 0xfe0d, 0xffff };
	struct parts p;
	size_t i, j, wl;

	(void)state;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		captured_parts("curl.bin", &p);
		if (types[i] == 0 || types[i] == 10 || types[i] == 43 || types[i] == 0x15) {
			j = find_ext(&p, types[i]);
			p.ext[p.next++] = p.ext[j];
		} else {
			p.ext[p.next++] = (struct ext){ types[i], NULL, 0 };
			p.ext[p.next++] = (struct ext){ types[i], (const uint8_t *)"x", 1 };
		}
		wl = wrap1(msg2, join_parts(&p, msg2), wire);
		if (run(wire, wl, (char[SNI_NAME_BUF]){ 0 }) != SNI_INVALID)
			fail_msg("duplicated extension %#x not INVALID", types[i]);
	}
	/* the last extension again, first: both copies around the name */
	captured_parts("curl.bin", &p);
	memmove(&p.ext[1], &p.ext[0], p.next * sizeof(p.ext[0]));
	p.next++;
	p.ext[0] = p.ext[p.next - 1];
	wl = wrap1(msg2, join_parts(&p, msg2), wire);
	expect(wire, wl, SNI_INVALID, NULL);
}

static void
test_name_forms(void **state)
{
	static char longname[300], want[254];
	size_t i;

	(void)state;
	expect_name("Example.COM", 11, SNI_FOUND, "example.com");
	expect_name("WWW.Example.Com.", 16, SNI_FOUND, "www.example.com");
	expect_name("a_b-c.example", 13, SNI_FOUND, "a_b-c.example");
	expect_name("", 0, SNI_INVALID, NULL);
	expect_name(".", 1, SNI_INVALID, NULL);
	expect_name("example.com..", 13, SNI_INVALID, NULL);
	expect_name("a..b", 4, SNI_INVALID, NULL);
	expect_name("exa\0mple.com", 12, SNI_INVALID, NULL);
	expect_name("example.com\0", 12, SNI_INVALID, NULL);
	expect_name("\0", 1, SNI_INVALID, NULL);
	expect_name("ex ample.com", 12, SNI_INVALID, NULL);
	expect_name("b\xc3\xbc" "cher.example", 15, SNI_INVALID, NULL);

	/* 253 bytes of name: the longest; with a trailing dot too; one more is too long */
	for (i = 0; i < 253; i++)
		longname[i] = (i % 64 == 63) ? '.' : 'a';
	longname[253] = '\0';
	expect_name(longname, 253, SNI_FOUND, longname);
	memcpy(want, longname, sizeof(want));
	longname[253] = '.';
	longname[254] = '\0';
	expect_name(longname, 254, SNI_FOUND, want);
	longname[253] = 'a';
	expect_name(longname, 254, SNI_INVALID, NULL);
	memset(longname, 'a', 299);
	expect_name(longname, 299, SNI_INVALID, NULL);
}

static void
test_ip_literal(void **state)
{
	static const char *const ips[] = {
		"192.0.2.1", "127.0.0.1", "127.0.0.1.", "::1", "2001:db8::1",
		"[::1]", "127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ips) / sizeof(ips[0]); i++)
		expect_name(ips[i], strlen(ips[i]), SNI_INVALID, NULL);
}

/* server_name framing: list length, an empty list, an entry cut short. */
static void
test_server_name_framing(void **state)
{
	static const uint8_t empty_list[] = { 0x00, 0x00 };
	static const uint8_t short_ext[] = { 0x00 };
	static const uint8_t short_entry[] = { 0x00, 0x02, 0x00, 0x00 };
	static const uint8_t long_name[] = { 0x00, 0x04, 0x00, 0x00, 0x02, 'a' };
	size_t wl;

	(void)state;
	wl = curl_with_sni(empty_list, sizeof(empty_list));
	expect(wire, wl, SNI_INVALID, NULL);
	wl = curl_with_sni(NULL, 0);
	expect(wire, wl, SNI_INVALID, NULL);
	wl = curl_with_sni(short_ext, sizeof(short_ext));
	expect(wire, wl, SNI_INVALID, NULL);
	wl = curl_with_sni(short_entry, sizeof(short_entry));
	expect(wire, wl, SNI_INVALID, NULL);
	wl = curl_with_sni(long_name, sizeof(long_name));
	expect(wire, wl, SNI_INVALID, NULL);
}

/* A name buffer too small for the name is refused, not overrun. */
static void
test_small_name_buffer(void **state)
{
	char name[8] = "unset";
	const char *why = NULL;
	size_t wl;

	(void)state;
	wl = load("curl.bin", wire, sizeof(wire));
	assert_int_equal(sni_read(wire, wl, name, sizeof(name), &why), SNI_INVALID);
	assert_non_null(why);
	assert_string_equal(name, "unset");
}

/* ---- the bound -------------------------------------------------------------------- */

/*
 * openssl's hello with a padding extension making the handshake message
 * mlen bytes; pad_first puts the padding before server_name.
 */
static size_t
padded_to(size_t mlen, bool pad_first, uint8_t *out)
{
	static const uint8_t zeros[SNI_MAX_HELLO + 1024];
	struct parts p;
	size_t base;

	captured_parts("openssl_s_client.bin", &p);
	memmove(&p.ext[1], &p.ext[0], p.next * sizeof(p.ext[0]));
	p.next++;
	p.ext[0] = (struct ext){ 0x15, zeros, 0 };
	if (!pad_first) {
		p.ext[0] = p.ext[p.next - 1];
		p.ext[p.next - 1] = (struct ext){ 0x15, zeros, 0 };
	}
	base = join_parts(&p, msg2);
	assert_true(mlen >= base);
	p.ext[pad_first ? 0 : p.next - 1].len = mlen - base;
	assert_int_equal(join_parts(&p, msg2), mlen);
	return wrap1(msg2, mlen, out);
}

static void
test_bound(void **state)
{
	char name[SNI_NAME_BUF];
	size_t wl, m;

	(void)state;
	/* the largest that fits: two full-size records' worth, headers included */
	m = SNI_MAX_HELLO - 2 * 5;
	wl = padded_to(m, true, wire);
	assert_int_equal(wl, SNI_MAX_HELLO);
	expect(wire, wl, SNI_FOUND, "example.com");
	wl = padded_to(m, false, wire);
	expect(wire, wl, SNI_FOUND, "example.com");

	/* one byte more: refused when the second record header is read */
	wl = padded_to(m + 1, true, wire);
	expect(wire, wl, SNI_MALFORMED, NULL);
	expect(wire, 16384 + 5 + 5, SNI_MALFORMED, NULL);
	/* ... and INVALID when a name was read before (see sni.h) */
	wl = padded_to(m + 1, false, wire);
	expect(wire, wl, SNI_INVALID, NULL);

	/* a declared handshake length over the bound is refused at once */
	wl = padded_to(SNI_MAX_HELLO + 100, false, wire);
	expect(wire, 9, SNI_MALFORMED, NULL);
	expect(wire, wl, SNI_MALFORMED, NULL);
	wire[6] = 0xff;
	expect(wire, 9, SNI_MALFORMED, NULL);

	/* with SNI_MAX_HELLO bytes in hand the answer is never NEED_MORE */
	wl = padded_to(m, true, wire);
	wire[5 + 16384 + 3] = 0x40;     /* second record claims 2^14 */
	assert_int_not_equal(run(wire, SNI_MAX_HELLO, name), SNI_NEED_MORE);
	memset(wire, 0x16, SNI_MAX_HELLO);
	assert_int_not_equal(run(wire, SNI_MAX_HELLO, name), SNI_NEED_MORE);
}

/* Many tiny records run into the bound well before their hello ends. */
static void
test_bound_tiny_records(void **state)
{
	static size_t cuts[8192];
	size_t k, wl;

	(void)state;
	wl = padded_to(8000, true, scratch);
	unwrap(scratch, wl, msg);
	for (k = 0; k + 1 < 8000; k++)
		cuts[k] = k + 1;
	wl = wrap(msg, 8000, cuts, 7999, wire);
	assert_true(wl > SNI_MAX_HELLO);
	expect(wire, wl, SNI_MALFORMED, NULL);
	expect(wire, SNI_MAX_HELLO, SNI_MALFORMED, NULL);
}

/* ---- reshaped hellos OpenSSL reads, ECH, the second hello, HRR ------------- */

/* A hundred unknown extensions before server_name: no limit but the size. */
static void
test_many_extensions(void **state)
{
	static struct parts p, q;
	size_t i, wl;

	(void)state;
	captured_parts("curl.bin", &p);
	q.fixed = p.fixed;
	q.fixedlen = p.fixedlen;
	q.has_ext_block = true;
	q.next = 0;
	for (i = 0; i < 40; i++) {      /* MAX_EXTS bounds this test's table, not the reader */
		q.ext[q.next].type = 0x5000 + (unsigned)i;
		q.ext[q.next].data = NULL;
		q.ext[q.next].len = 0;
		q.next++;
	}
	for (i = 0; i < p.next && q.next < MAX_EXTS; i++)
		q.ext[q.next++] = p.ext[i];
	assert_int_equal(q.next, 40 + p.next);
	wl = wrap1(msg2, join_parts(&q, msg2), wire);
	expect(wire, wl, SNI_FOUND, "example.com");
}

/* 100 and 3,000 extensions, built by hand: the duplicate check still works. */
static void
test_many_extensions_large(void **state)
{
	struct parts p;
	size_t n, i, count, body, wl, ml, sni_at;
	const size_t counts[] = { 65, 100, 3000 };

	(void)state;
	for (size_t c = 0; c < 3; c++) {
		count = counts[c];
		captured_parts("curl.bin", &p);
		sni_at = find_ext(&p, 0);
		n = 4;
		memcpy(msg2 + n, p.fixed, p.fixedlen);
		n += p.fixedlen;
		body = n;
		n += 2;
		for (i = 0; i < count; i++) {
			msg2[n++] = (uint8_t)((0x5000 + i) >> 8);
			msg2[n++] = (uint8_t)(0x5000 + i);
			msg2[n++] = 0;
			msg2[n++] = 0;
		}
		msg2[n++] = 0;
		msg2[n++] = 0;
		msg2[n++] = (uint8_t)(p.ext[sni_at].len >> 8);
		msg2[n++] = (uint8_t)p.ext[sni_at].len;
		memcpy(msg2 + n, p.ext[sni_at].data, p.ext[sni_at].len);
		n += p.ext[sni_at].len;
		msg2[body] = (uint8_t)((n - body - 2) >> 8);
		msg2[body + 1] = (uint8_t)(n - body - 2);
		msg2[0] = 1;
		msg2[1] = (uint8_t)((n - 4) >> 16);
		msg2[2] = (uint8_t)((n - 4) >> 8);
		msg2[3] = (uint8_t)(n - 4);
		ml = n;
		wl = wrap1(msg2, ml, wire);
		expect(wire, wl, SNI_FOUND, "example.com");
		/* the same with one of the unknown types twice */
		msg2[body + 2 + 4 * (count - 1)] = 0x50;
		msg2[body + 2 + 4 * (count - 1) + 1] = 0x00;
		wl = wrap1(msg2, ml, wire);
		expect(wire, wl, SNI_INVALID, NULL);
	}
}

/*
 * A hello padded past SNI_MAX_HELLO (OpenSSL reads up to 128 KiB) is
 * refused as MALFORMED, which sni=optional refuses too, with or without a
 * name read before the bound.
 */
static void
test_padded_past_bound(void **state)
{
	size_t wl;

	(void)state;
	wl = padded_to(33000, true, wire);      /* padding first: no name before the bound */
	expect(wire, wl, SNI_MALFORMED, NULL);
	expect(wire, SNI_MAX_HELLO, SNI_MALFORMED, NULL);
	wl = padded_to(33000, false, wire);     /* name first: the declared length is over */
	expect(wire, wl, SNI_MALFORMED, NULL);
}

/* The results that are plainly not TLS, and nothing else. */
static void
test_not_tls_only_when_plain(void **state)
{
	size_t wl;

	(void)state;
	wl = load("curl.bin", wire, sizeof(wire));
	wire[0] = 0x17;
	expect(wire, wl, SNI_NOT_TLS, NULL);
	wire[0] = 0x16;
	wire[1] = 0x02;
	expect(wire, wl, SNI_NOT_TLS, NULL);
	wire[1] = 0x03;
	wire[5] = 0x02;
	expect(wire, wl, SNI_NOT_TLS, NULL);
	wire[5] = 0x01;
	wire[7] = 0xff;                 /* handshake length over the bound */
	expect(wire, wl, SNI_MALFORMED, NULL);
}

static enum sni_result
run_hello(const uint8_t *buf, size_t len, unsigned flags, struct sni_hello *h)
{
	const char *why = NULL;
	enum sni_result r;
	uint8_t *copy;

	copy = malloc(len > 0 ? len : 1);
	assert_non_null(copy);
	if (len > 0)
		memcpy(copy, buf, len);
	r = sni_read_hello(copy, len, flags, h, &why);
	free(copy);
	if (r != SNI_FOUND)
		assert_non_null(why);
	return r;
}

/* ECH is reported (the policy about it is conn.c's); consumed ends the hello. */
static void
test_ech_and_consumed(void **state)
{
	static const uint8_t ech[] = { 0x00, 0x00, 0x01, 0x00, 0x01, 0x07, 0x00, 0x02, 0xaa,
		0xbb, 0x00, 0x02, 0xcc, 0xdd };
	struct sni_hello h;
	struct parts p;
	size_t wl;

	(void)state;
	wl = load("curl.bin", wire, sizeof(wire));
	memcpy(wire + wl, "\x17\x03\x03\x00\x02zz", 7);       /* early data after it */
	assert_int_equal(run_hello(wire, wl + 7, 0, &h), SNI_FOUND);
	assert_string_equal(h.name, "example.com");
	assert_false(h.ech);
	assert_int_equal(h.consumed, wl);

	captured_parts("curl.bin", &p);
	p.ext[p.next].type = 0xfe0d;
	p.ext[p.next].data = ech;
	p.ext[p.next].len = sizeof(ech);
	p.next++;
	wl = wrap1(msg2, join_parts(&p, msg2), wire);
	assert_int_equal(run_hello(wire, wl, 0, &h), SNI_FOUND);
	assert_true(h.ech);
	assert_string_equal(h.name, "example.com");

	wl = load("openssl_noservername.bin", wire, sizeof(wire));
	assert_int_equal(run_hello(wire, wl, 0, &h), SNI_NO_NAME);
	assert_int_equal(h.consumed, wl);
	assert_string_equal(h.name, "");
}

/* The answer to a HelloRetryRequest: one ChangeCipherSpec may come first. */
static void
test_after_hrr(void **state)
{
	static const uint8_t ccs[] = { 0x14, 0x03, 0x03, 0x00, 0x01, 0x01 };
	struct sni_hello h;
	size_t wl, k;

	(void)state;
	wl = load("curl.bin", scratch, sizeof(scratch));
	memcpy(wire, ccs, sizeof(ccs));
	memcpy(wire + 6, scratch, wl);
	assert_int_equal(run_hello(wire, wl + 6, SNI_AFTER_HRR, &h), SNI_FOUND);
	assert_string_equal(h.name, "example.com");
	assert_int_equal(h.consumed, wl + 6);
	for (k = 0; k < wl + 6; k++)
		assert_int_equal(run_hello(wire, k, SNI_AFTER_HRR, &h), SNI_NEED_MORE);
	/* without the flag a leading CCS is plainly not a hello */
	assert_int_equal(run_hello(wire, wl + 6, 0, &h), SNI_NOT_TLS);
	/* without the CCS the flag changes nothing */
	assert_int_equal(run_hello(scratch, wl, SNI_AFTER_HRR, &h), SNI_FOUND);
	assert_int_equal(h.consumed, wl);
	/* a broken CCS, two CCS, or an alert instead of the hello */
	wire[5] = 2;
	assert_int_equal(run_hello(wire, wl + 6, SNI_AFTER_HRR, &h), SNI_MALFORMED);
	memcpy(wire, ccs, sizeof(ccs));
	memcpy(wire + 6, ccs, sizeof(ccs));
	assert_int_equal(run_hello(wire, 12, SNI_AFTER_HRR, &h), SNI_NOT_TLS);
	memcpy(wire + 6, "\x15\x03\x03\x00\x02\x02\x28", 7);
	assert_int_equal(run_hello(wire, 13, SNI_AFTER_HRR, &h), SNI_NOT_TLS);
}

/* A ServerHello with the RFC 8446 4.1.3 random is a HelloRetryRequest. */
static void
test_server_hello(void **state)
{
	static const uint8_t hrr_random[32] = {
		0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02,
		0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e,
		0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
	};
	uint8_t sh[128], *copy;
	size_t n = 0, k, i;
	enum sni_server_hello want;

	(void)state;
	memcpy(sh, "\x16\x03\x03\x00\x2c\x02\x00\x00\x28\x03\x03", 11);
	n = 11;
	memcpy(sh + n, hrr_random, 32);
	n += 32;
	memcpy(sh + n, "\x00\x13\x01\x00\x00\x00", 6);  /* sid, suite, comp, no exts */
	n += 6;
	for (i = 0; i < 2; i++) {
		want = i == 0 ? SNI_SERVER_HRR : SNI_SERVER_OTHER;
		for (k = 0; k <= n; k++) {
			copy = malloc(k > 0 ? k : 1);
			memcpy(copy, sh, k);
			if (k < 43)
				assert_int_equal(sni_server_hello(copy, k), SNI_SERVER_NEED_MORE);
			else
				assert_int_equal(sni_server_hello(copy, k), want);
			free(copy);
		}
		sh[20] ^= 1;            /* an ordinary ServerHello random */
	}
	/* an alert, plain text, another handshake message: not an HRR */
	assert_int_equal(sni_server_hello((const uint8_t *)"\x15\x03\x03\x00\x02\x02\x28", 7),
	    SNI_SERVER_OTHER);
	assert_int_equal(sni_server_hello((const uint8_t *)"SSH-2.0-x\r\n", 11),
	    SNI_SERVER_OTHER);
	assert_int_equal(sni_server_hello((const uint8_t *)"\x16\x03\x03\x00\x04\x0b\x00\x00\x00",
	    9), SNI_SERVER_OTHER);
	/* split over records, after an empty one (sh is an HRR again) */
	memcpy(wire, "\x16\x03\x03\x00\x00", 5);
	memcpy(wire + 5, "\x16\x03\x03\x00\x0a", 5);
	memcpy(wire + 10, sh + 5, 10);
	wire[20] = 0x16;
	wire[21] = 0x03;
	wire[22] = 0x03;
	wire[23] = 0x00;
	wire[24] = (uint8_t)(n - 15);
	memcpy(wire + 25, sh + 15, n - 15);
	assert_int_equal(sni_server_hello(wire, 25 + n - 15), SNI_SERVER_HRR);
	/* the bound: never NEED_MORE with SNI_MAX_HELLO bytes */
	for (k = 0; k + 5 <= SNI_MAX_HELLO; k += 5)
		memcpy(wire + k, "\x16\x03\x03\x00\x00", 5);
	memset(wire + k, 0x16, SNI_MAX_HELLO - k);
	assert_int_equal(sni_server_hello(wire, SNI_MAX_HELLO), SNI_SERVER_OTHER);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_captured),
		cmocka_unit_test(test_captured_sizes),
		cmocka_unit_test(test_bytewise),
		cmocka_unit_test(test_bytes_after_hello),
		cmocka_unit_test(test_record_splits),
		cmocka_unit_test(test_one_byte_records),
		cmocka_unit_test(test_record_type_change),
		cmocka_unit_test(test_record_header),
		cmocka_unit_test(test_empty_record),
		cmocka_unit_test(test_record_overflow),
		cmocka_unit_test(test_plain_http),
		cmocka_unit_test(test_sslv2_hello),
		cmocka_unit_test(test_not_client_hello),
		cmocka_unit_test(test_corrupt_lengths),
		cmocka_unit_test(test_truncated_consistent),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_fixed_fields),
		cmocka_unit_test(test_session_id_over_32),
		cmocka_unit_test(test_no_name),
		cmocka_unit_test(test_two_names),
		cmocka_unit_test(test_duplicate_extension),
		cmocka_unit_test(test_name_forms),
		cmocka_unit_test(test_ip_literal),
		cmocka_unit_test(test_server_name_framing),
		cmocka_unit_test(test_small_name_buffer),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_bound_tiny_records),
		cmocka_unit_test(test_many_extensions),
		cmocka_unit_test(test_many_extensions_large),
		cmocka_unit_test(test_padded_past_bound),
		cmocka_unit_test(test_not_tls_only_when_plain),
		cmocka_unit_test(test_ech_and_consumed),
		cmocka_unit_test(test_after_hrr),
		cmocka_unit_test(test_server_hello),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
