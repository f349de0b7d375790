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
	SNI_NOT_TLS,                    /* not a well-formed TLS ClientHello, or over the bound */
	SNI_NO_NAME,                    /* complete, valid ClientHello without server_name */
	SNI_INVALID,                    /* a server name that cannot be judged safely */
};

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
 * up to the bound, about 40 us.  It uses about 8.5 KiB of stack.
 *
 * SNI_INVALID: two host names, a name type other than host_name, an empty
 * name, a NUL, an IP literal, a name host_normalize() refuses, a malformed
 * server_name extension, a duplicated extension of any type, or any error
 * after a server name was read.  The last three are INVALID rather than
 * NOT_TLS on purpose: under sni=optional NOT_TLS lets the tunnel go on
 * unchecked, and a hello that carries a name the gateway could read must
 * not escape the check by also being malformed.
 *
 * An ECH ClientHello is judged on its outer server name: the inner hello is
 * encrypted to the server and cannot be read here.
 */
enum sni_result sni_read(const uint8_t *buf, size_t len, char *name, size_t namesz,
    const char **why);

/* "FOUND", "NEED_MORE", ... for logs and tests. */
const char *sni_result_name(enum sni_result);

#endif
