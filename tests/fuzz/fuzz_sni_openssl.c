/*
 * fuzz_sni_openssl — sni_read_hello() (gateway/sni.c) against OpenSSL's own
 * ClientHello parser: the differential behind "a server reads the name the
 * gateway read, or the gateway refuses".
 *
 * Each input is the client's bytes as they come off the wire.  An OpenSSL
 * server (TLS_server_method, every version and security level allowed, so it
 * reads as much as it can) is fed them on a memory BIO; its servername
 * callback records SSL_get_servername().  Whenever OpenSSL read a name, the
 * gateway's answer must be one that closes the tunnel under every sni= mode
 * (MALFORMED, INVALID, or NEED_MORE, which ends as not_tls) or FOUND with the
 * same name, normalized like a host.  NOT_TLS and NO_NAME, which sni=optional
 * lets through unchecked, are findings when OpenSSL saw a name.
 *
 * The seeds (tests/fuzz/corpus/sni_openssl/) are hellos captured from
 * openssl s_client, curl and Python's ssl module, and reshaped variants of
 * them: empty records first, record and hello versions 3.9, a hundred
 * extensions before server_name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "gateway/sni.h"
#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static SSL_CTX *ctx;
static char ossl_name[1024];
static int ossl_seen;               /* the callback ran */

static int
on_servername(SSL *ssl, int *alert, void *arg)
{
	const char *n = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	ossl_seen = 1;
	ossl_name[0] = '\0';
	if (n != NULL)
		snprintf(ossl_name, sizeof(ossl_name), "%s", n);
	(void)alert;
	(void)arg;
	/* The name is read; nothing past this point is compared. */
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void
setup(void)
{
	if (ctx != NULL)
		return;
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		abort();
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_min_proto_version(ctx, 0);
	SSL_CTX_set_max_proto_version(ctx, 0);
	SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
}

/* What OpenSSL reads from data: 1 and ossl_name set when it read a name. */
static int
openssl_name(const uint8_t *data, size_t size)
{
	BIO *rb, *wb;
	SSL *ssl;

	ossl_seen = 0;
	ossl_name[0] = '\0';
	if ((ssl = SSL_new(ctx)) == NULL)
		abort();
	rb = BIO_new(BIO_s_mem());
	wb = BIO_new(BIO_s_mem());
	if (rb == NULL || wb == NULL)
		abort();
	if (size > 0 && BIO_write(rb, data, (int)size) != (int)size)
		abort();
	SSL_set_bio(ssl, rb, wb);
	SSL_set_accept_state(ssl);
	(void)SSL_do_handshake(ssl);
	SSL_free(ssl);
	ERR_clear_error();
	return ossl_seen && ossl_name[0] != '\0';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char want[HOST_BUF];
	struct sni_hello hello;
	enum host_kind kind;
	const char *why, *err;
	enum sni_result r;
	uint8_t *copy;
	int ossl;

	setup();
	if (size > 65536)
		return 0;
	if ((copy = malloc(size > 0 ? size : 1)) == NULL)
		abort();
	if (size > 0)
		memcpy(copy, data, size);
	r = sni_read_hello(copy, size, 0, &hello, &why);
	free(copy);

	ossl = openssl_name(data, size);
	/* EGRESSD_DIFF_VERBOSE=1 build/fuzz/fuzz_sni_openssl FILE...: show both readings. */
	if (getenv("EGRESSD_DIFF_VERBOSE") != NULL)
		fprintf(stderr, "openssl %s \"%s\", egressd %s \"%s\"\n",
		    ossl_seen ? "read" : "did not reach the name:", ossl_name, sni_result_name(r),
		    r == SNI_FOUND ? hello.name : "");
	if (!ossl)
		return 0;
	switch (r) {
	case SNI_MALFORMED:
	case SNI_INVALID:
	case SNI_NEED_MORE:
		return 0;               /* the tunnel closes under every mode */
	case SNI_FOUND:
		if (host_normalize(ossl_name, strlen(ossl_name), want, sizeof(want), &kind,
		    &err) != 0 || strcmp(want, hello.name) != 0) {
			fprintf(stderr, "egressd read \"%s\", OpenSSL \"%s\"\n", hello.name,
			    ossl_name);
			abort();
		}
		return 0;
	case SNI_NOT_TLS:
	case SNI_NO_NAME:
		fprintf(stderr, "egressd: %s (%s); OpenSSL read \"%s\"\n", sni_result_name(r),
		    why, ossl_name);
		abort();
	}
	abort();
}
