/*
 * sni — read the server name from a TLS ClientHello, before the tunnel opens.
 *
 * After "200 Connection established" the gateway holds the client's bytes
 * and calls sni_read() on all of them each time more arrive, until it answers
 * something other than SNI_NEED_MORE.  The reader is pure and stateless: no
 * allocation, no state between calls, the caller's buffer is the only buffer.
 * It reassembles the handshake message across any number of TLS records and
 * TCP reads, and never looks at more than SNI_MAX_HELLO bytes, so a caller
 * that holds SNI_MAX_HELLO bytes always has an answer other than NEED_MORE.
 *
 * Every answer on a prefix of the client's bytes is either SNI_NEED_MORE or
 * the answer the whole ClientHello gets: the reader never says FOUND or
 * NO_NAME before the message is complete, and once it says anything else,
 * more bytes do not change it.
 */
#ifndef EGRESSD_GATEWAY_SNI_H
#define EGRESSD_GATEWAY_SNI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The most bytes, TLS record headers included, a ClientHello may take.  A
 * post-quantum key share (X25519MLKEM768: 1,216 bytes) plus an ECH outer
 * extension and GREASE are well under 4 KiB today; 32 KiB leaves room for
 * several hybrid key shares while staying small enough to hold per tunnel
 * before the client has shown a valid name.
 */
#define SNI_MAX_HELLO 32768

#define SNI_NAME_BUF 254            /* holds any name sni_read() returns (HOST_BUF) */

enum sni_result {
	SNI_FOUND,                      /* complete ClientHello, one valid name in name[] */
	SNI_NEED_MORE,                  /* a valid prefix: call again with more bytes */
	SNI_NOT_TLS,                    /* plainly not a TLS client handshake (see below) */
	SNI_NO_NAME,                    /* complete, valid ClientHello without server_name */
	SNI_INVALID,                    /* a server name that cannot be judged safely */
	SNI_MALFORMED,                  /* begins like a TLS handshake, is no readable ClientHello */
};

/* What sni_read_hello() learned from a complete ClientHello. */
struct sni_hello {
	char name[SNI_NAME_BUF];        /* FOUND: the name; NO_NAME: "" */
	bool ech;                       /* it offers encrypted_client_hello (0xfe0d) */
	size_t consumed;                /* bytes of buf its records (and a leading CCS) take */
};

#define SNI_AFTER_HRR 0x1           /* a second hello: one ChangeCipherSpec may come first */

/*
 * buf[0..len) is every byte the client sent after the CONNECT head so far
 * (bytes past the ClientHello, such as TLS 1.3 early data, are allowed and
 * ignored).  On SNI_FOUND, name (namesz >= SNI_NAME_BUF) holds the server
 * name normalized like a host (lower case, no trailing dot); it is not
 * touched otherwise.  On every other answer *why (if why is not NULL) is a
 * static phrase for the operational log.
 *
 * The caller holds at most SNI_MAX_HELLO bytes (e.g. evbuffer_pullup() of
 * that many) and calls again after each read while the answer is NEED_MORE.
 * A call costs about 0.5 us for a common hello; the worst, one-byte records
 * up to the bound, about 40 us.  It uses about 8.5 KiB of stack (a bitmap of
 * the extension types seen).
 *
 * SNI_NOT_TLS only when the bytes are plainly not a TLS client handshake:
 * the first byte is not 0x16 (handshake record), the first record's major
 * version is not 3, or the first handshake message is not a ClientHello.
 * Under sni=optional that, and only that, lets the tunnel go on unchecked.
 *
 * SNI_MALFORMED: the bytes began "16 03 xx" but are no ClientHello that can
 * be read whole: a bad length, a record of another type or over 2^14 bytes
 * inside the hello, bytes after it in its record, a hello over SNI_MAX_HELLO.
 * The gateway refuses it under every mode (not_tls): a server may read a name
 * out of it.  Accepted as OpenSSL accepts them: empty handshake records
 * before and between the fragments, any 3.x minor version in the record
 * headers and the hello, any number of extensions.
 *
 * SNI_INVALID: two host names, a name type other than host_name, an empty
 * name, a NUL, an IP literal, a name host_normalize() refuses, a malformed
 * server_name extension, a duplicated extension of any type, or any error
 * after a server name was read.
 */
enum sni_result sni_read(const uint8_t *buf, size_t len, char *name, size_t namesz,
    const char **why);

/*
 * sni_read(), telling more: on FOUND and NO_NAME, *out holds the name, whether
 * the hello offers Encrypted Client Hello (its outer name is what is read
 * here; the inner one is encrypted to the server, so sni=require refuses it),
 * and how many bytes of buf the hello's records took, so that the caller can
 * pass on exactly the hello and hold what follows.  flags: SNI_AFTER_HRR for
 * the client's answer to a HelloRetryRequest, which may begin with one
 * ChangeCipherSpec record (counted in consumed).  Same prefix property.
 */
enum sni_result sni_read_hello(const uint8_t *buf, size_t len, unsigned flags,
    struct sni_hello *out, const char **why);

enum sni_server_hello {
	SNI_SERVER_NEED_MORE,           /* a prefix of a ServerHello: call again */
	SNI_SERVER_HRR,                 /* a HelloRetryRequest (RFC 8446 4.1.3) */
	SNI_SERVER_OTHER,               /* anything else: a ServerHello, an alert, not TLS */
};

/*
 * The destination's first bytes after the client's first ClientHello: is
 * its first handshake message a HelloRetryRequest, a ServerHello whose random
 * is the special value of RFC 8446 4.1.3?  Pure like sni_read(), reads across
 * records, and answers something other than NEED_MORE with SNI_MAX_HELLO bytes.
 */
enum sni_server_hello sni_server_hello(const uint8_t *buf, size_t len);

/* "FOUND", "NEED_MORE", ... for logs and tests. */
const char *sni_result_name(enum sni_result);

#endif
