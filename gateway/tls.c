/*
 * tls — the tls listeners' certificate and key.  See tls.h.
 *
 * The key is read by this file, not by OpenSSL's file loader: it is opened
 * once, checked on the open descriptor (regular file, owned by root or this
 * user, no access for group or others: the secret-file rule, without a window
 * between the check and the read), read into memory, parsed, and the copy
 * wiped.  The certificate chain is public and goes through
 * SSL_CTX_use_certificate_chain_file.
 */
#include "gateway/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "config/config.h"

#define TLS_KEY_MAX (64 * 1024)    /* a PEM key larger than this is not a key */

/* Mozilla's "intermediate" configuration (v5.7), TLS 1.2 part; TLS 1.3 uses
 * OpenSSL's default suites, which are the same list. */
static const char tls12_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
static char tls_groups[] = "X25519:prime256v1:secp384r1";   /* not const: the macro casts it */
static const unsigned char sid_context[] = "egressd";

struct tls {
	char *cert_file;
	char *key_file;
	int min_version;                /* TLS1_2_VERSION or TLS1_3_VERSION */
	pthread_mutex_t lock;           /* guards ctx and expiry: workers take it per accept */
	SSL_CTX *ctx;                   /* the pair in force (one reference) */
	int64_t expiry;
};

const char *
tls_last_error(void)
{
	static __thread char buf[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "unknown TLS error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

static int
fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(char **err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) == -1)
		*err = NULL;
	va_end(ap);
	ERR_clear_error();
	return -1;
}

/* ALPN: http/1.1 where offered; anything else gets no ALPN answer. */
static int
on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
    unsigned int inlen, void *arg)
{
	unsigned int i = 0;

	while (i < inlen) {
		unsigned int n = in[i];

		if (i + 1 + n > inlen)
			break;
		if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	(void)ssl;
	(void)arg;
	return SSL_TLSEXT_ERR_NOACK;
}

/* The secret-file rule on the open descriptor, then the bytes. */
static EVP_PKEY *
read_key(const char *path, char **err)
{
	char *buf;
	struct stat st;
	EVP_PKEY *key = NULL;
	ssize_t n;
	size_t len = 0;
	BIO *bio;
	int fd;

	if ((buf = malloc(TLS_KEY_MAX)) == NULL) {
		fail(err, "out of memory");
		return NULL;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		fail(err, "tls_key_file %s: %s", path, strerror(errno));
		free(buf);
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		fail(err, "tls_key_file %s: not a regular file", path);
		goto out;
	}
	if (st.st_uid != 0 && st.st_uid != getuid()) {
		fail(err, "tls_key_file %s: owned by uid %u, must be owned by root or uid %u",
		    path, (unsigned)st.st_uid, (unsigned)getuid());
		goto out;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		fail(err, "tls_key_file %s: mode %04o gives group or others access (chmod 600)",
		    path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	while (len < TLS_KEY_MAX && (n = read(fd, buf + len, TLS_KEY_MAX - len)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fail(err, "tls_key_file %s: %s", path, strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	if (len == TLS_KEY_MAX) {
		fail(err, "tls_key_file %s: larger than %d KiB, not a key", path,
		    TLS_KEY_MAX / 1024);
		goto out;
	}
	if ((bio = BIO_new_mem_buf(buf, (int)len)) != NULL) {
		key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
	}
	if (key == NULL)
		fail(err, "tls_key_file %s: no PEM private key (%s)", path, tls_last_error());
out:
	explicit_bzero(buf, len);
	free(buf);
	close(fd);
	return key;
}

static int64_t
cert_expiry(SSL_CTX *ctx)
{
	X509 *x = SSL_CTX_get0_certificate(ctx);
	struct tm tm;

	if (x == NULL || ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

/* A complete context for the pair, or NULL with *err. */
static SSL_CTX *
load_ctx(const struct tls *t, char **err)
{
	SSL_CTX *ctx;
	EVP_PKEY *key;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		fail(err, "cannot create a TLS context: %s", tls_last_error());
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, t->min_version);
	/* OpenSSL 3 refuses client-initiated renegotiation by default; none at all here. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
	/* Idle keep-alive connections are the common case: no buffers while idle. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Resumption by tickets only: no session cache shared (and locked) by workers. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_session_id_context(ctx, sid_context, sizeof(sid_context) - 1);
	SSL_CTX_set_dh_auto(ctx, 1);
	if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, tls_groups) != 1) {
		fail(err, "cannot set the cipher list: %s", tls_last_error());
		goto bad;
	}
	SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1) {
		fail(err, "tls_cert_file %s: no usable PEM certificate chain (%s)", t->cert_file,
		    tls_last_error());
		goto bad;
	}
	if ((key = read_key(t->key_file, err)) == NULL)
		goto bad;
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		EVP_PKEY_free(key);
		fail(err, "tls_key_file %s: does not match the certificate in %s (%s)",
		    t->key_file, t->cert_file, tls_last_error());
		goto bad;
	}
	EVP_PKEY_free(key);
	return ctx;
bad:
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls *
tls_new(const struct config *conf, char **err)
{
	struct tls *t;

	*err = NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->cert_file = strdup(conf->tls_cert_file)) == NULL ||
	    (t->key_file = strdup(conf->tls_key_file)) == NULL) {
		if (t != NULL)
			free(t->cert_file);
		free(t);
		fail(err, "out of memory");
		return NULL;
	}
	t->min_version = conf->tls_min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION;
	pthread_mutex_init(&t->lock, NULL);
	if ((t->ctx = load_ctx(t, err)) == NULL) {
		tls_free(t);
		return NULL;
	}
	t->expiry = cert_expiry(t->ctx);
	return t;
}

void
tls_free(struct tls *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	pthread_mutex_destroy(&t->lock);
	free(t->cert_file);
	free(t->key_file);
	free(t);
}

int
tls_reload(struct tls *t, char **err)
{
	SSL_CTX *fresh, *old;
	int64_t expiry;

	*err = NULL;
	if ((fresh = load_ctx(t, err)) == NULL)
		return -1;
	expiry = cert_expiry(fresh);
	pthread_mutex_lock(&t->lock);
	old = t->ctx;
	t->ctx = fresh;
	t->expiry = expiry;
	pthread_mutex_unlock(&t->lock);
	/* Connections made from the old context hold their own references. */
	SSL_CTX_free(old);
	return 0;
}

SSL *
tls_ssl_new(struct tls *t)
{
	SSL *ssl;

	pthread_mutex_lock(&t->lock);
	ssl = SSL_new(t->ctx);
	pthread_mutex_unlock(&t->lock);
	return ssl;
}

int64_t
tls_cert_expiry(struct tls *t)
{
	int64_t e;

	pthread_mutex_lock(&t->lock);
	e = t->expiry;
	pthread_mutex_unlock(&t->lock);
	return e;
}

struct bufferevent *
tls_bev_socket(struct tls *t, struct event_base *base, int fd)
{
	struct bufferevent *bev;
	SSL *ssl;

	if ((ssl = tls_ssl_new(t)) == NULL)
		return NULL;
	/* CLOSE_ON_FREE: libevent frees the SSL (and closes fd) with the bufferevent. */
	bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		SSL_free(ssl);
	return bev;
}

struct bufferevent *
tls_bev_filter(struct tls *t, struct event_base *base, struct bufferevent *under)
{
	struct bufferevent *bev;
	SSL *ssl;

	if ((ssl = tls_ssl_new(t)) == NULL)
		return NULL;
	bufferevent_setcb(under, NULL, NULL, NULL, NULL);
	bufferevent_setwatermark(under, EV_READ, 0, 0);
	/* CLOSE_ON_FREE: the SSL and `under` go with it (under's socket does not). */
	bev = bufferevent_openssl_filter_new(base, under, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* The bytes after the PROXY header are buffered already: no read event
	 * will come for them, so start the handshake on them now. */
	bufferevent_trigger(under, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
	return bev;
}

void
tls_bev_keep_writing(struct bufferevent *bev)
{
	/* bufferevent_enable() on an enabled direction still asks the OpenSSL
	 * bufferevent to start writing (be_openssl_enable), which adds the write
	 * event conn_closed() deleted. */
	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0 &&
	    (bufferevent_get_enabled(bev) & EV_WRITE) != 0)
		bufferevent_enable(bev, EV_WRITE);
}

void
tls_bev_close_notify(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl != NULL && SSL_is_init_finished(ssl))
		(void)SSL_shutdown(ssl);
	ERR_clear_error();
}

size_t
tls_bev_unsent(struct bufferevent *bev)
{
	struct bufferevent *under = bufferevent_get_underlying(bev);
	size_t n = evbuffer_get_length(bufferevent_get_output(bev));

	if (under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

const char *
tls_bev_error(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long e = bufferevent_get_openssl_error(bev);

	if (e == 0)
		return NULL;
	ERR_error_string_n(e, buf, len);
	while (bufferevent_get_openssl_error(bev) != 0)
		;
	return buf;
}
