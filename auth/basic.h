/*
 * basic — a strict, pure parser of a Proxy-Authorization value carrying the
 * Basic scheme (RFC 7617 over RFC 9110 section 11): bytes in, user name and
 * password out, nothing else.  No loop, no socket, no log: fuzzable.
 */
#ifndef EGRESSD_AUTH_BASIC_H
#define EGRESSD_AUTH_BASIC_H

#include <stddef.h>

/* Bound on the decoded "user:password" (tighter than any real credential). */
#define BASIC_DECODED_MAX	1024

enum basic_status {
	BASIC_OK,                       /* user and password are set */
	BASIC_NOT_BASIC,                /* another scheme (Bearer, Digest, ...) */
	BASIC_MALFORMED,                /* bad token68, base64, length, no colon, bad bytes */
	BASIC_EMPTY,                    /* empty user or empty password: never reaches LDAP */
};

/*
 * The decoded credentials.  user and pass point into buf and are
 * NUL-terminated (neither can contain a NUL).  The caller owns the struct
 * (usually on its stack) and must call basic_wipe() when done, whatever
 * basic_parse() returned, since buf may hold part of a password.
 */
struct basic_cred {
	char buf[BASIC_DECODED_MAX + 1];
	const char *user;               /* valid UTF-8, no controls, no stray spaces */
	size_t userlen;
	const char *pass;               /* any bytes but NUL and controls */
	size_t passlen;
};

/*
 * Parse the field value hdr[0..len).  For BASIC_EMPTY, user and userlen
 * are set (the name as given, possibly empty) so a failure can be audited;
 * for every other failure user is NULL.  err (if not NULL) gets a short
 * static description that never quotes the input.
 */
enum basic_status basic_parse(const char *hdr, size_t len, struct basic_cred *out,
    const char **err);

/* Zero the whole struct (explicit_bzero: the compiler may not drop it). */
void basic_wipe(struct basic_cred *);

/* True if s[0..len) is well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF). */
int basic_utf8_valid(const unsigned char *s, size_t len);

#endif
