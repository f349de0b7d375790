/*
 * proxy_proto — the HAProxy PROXY protocol header, versions 1 and 2.
 *
 * A load balancer in front of the gateway prefixes each connection with the
 * real client's address.  The parser is pure and strict: v1 is one CRLF-ended
 * ASCII line of at most 107 bytes with canonical addresses and ports; v2 is the
 * 12-byte signature, version 2, command LOCAL or PROXY, a family/protocol byte
 * and a length bounded by PROXY_V2_MAX.  TLVs are skipped (bounded by the
 * length).  Anything else is an error: the connection is closed unanswered.
 */
#ifndef EGRESSD_GATEWAY_PROXY_PROTO_H
#define EGRESSD_GATEWAY_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define PROXY_V1_MAX 107            /* longest v1 line, CRLF included */
#define PROXY_V2_MAX (16 + 1024)    /* longest v2 header accepted (fixed part + addresses + TLVs) */

enum proxy_result {
	PROXY_DONE,                     /* a complete header of *consumed bytes */
	PROXY_NEED_MORE,                /* valid so far, incomplete */
	PROXY_ERROR,                    /* not a valid PROXY header: *err says why */
};

struct proxy_info {
	bool has_address;               /* false for v1 UNKNOWN, v2 LOCAL or v2 UNSPEC: use the socket's peer */
	struct sockaddr_storage src;    /* the client's address and port, when has_address */
	struct sockaddr_storage dst;    /* the address the client connected to, when has_address */
};

enum proxy_result proxy_parse(const unsigned char *buf, size_t len, struct proxy_info *out,
    size_t *consumed, const char **err);

#endif
