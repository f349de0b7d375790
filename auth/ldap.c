/*
 * ldap — the directory exchange behind auth_begin(), run on an auth thread.
 *
 * One exchange: search user_base with the user filter (the name escaped per
 * RFC 4515) on the thread's service connection, bound as bind_dn or
 * anonymous; exactly one entry must come back.  Bind as that entry's DN
 * with the given password on the thread's second connection, so the service
 * connection's own identity never changes and a user bind can never widen
 * what the searches may see.  Then search group_base with the group filter
 * (the DN escaped the same way) and read group_attr.
 *
 * The difficulties:
 *  - Deciding "wrong" from "unreachable".  A wrong password or an unknown
 *    user is AUTH_FAILED (cached, 407); anything that says the directory did
 *    not answer properly (connection refused or lost, timeout, busy, an
 *    unexpected result code, a failing service bind) is AUTH_UNAVAILABLE
 *    (not cached, 503).  A result we do not recognise is never a success.
 *  - Persistent connections go stale (server idle timeout, restart).  An
 *    operation that fails with a connection error on a reused connection is
 *    retried once on a fresh one, trying the URIs in order again.
 *  - libldap reads ldaprc files and LDAP* variables unless LDAPNOINIT is set
 *    before its first call (auth_ldap_new sets it), so every option the
 *    daemon relies on is set here explicitly, per handle: protocol 3, no
 *    referral chasing (a referral would send the user's password to a server
 *    we did not choose), network and operation timeouts, and for TLS a
 *    demanded certificate with a fresh TLS context per handle.  StartTLS
 *    failing fails the connection; there is no fallback to plain text.
 *  - The stored name.  A directory compares "ALICE", "alice" and " alice"
 *    as equal, the policy compares strings: the identity carries the value
 *    of the naming attribute as stored (user_attr, or ATTR of a "(ATTR=%u)"
 *    filter, else uid).  If that attribute has several values, the one equal
 *    to the given name ignoring ASCII case is taken, else the first.
 *
 * Nothing here logs a password or a header; user names are escaped.
 */
#include "auth/ldap.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ldap.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth/cache.h"
#include "auth/ldap_escape.h"

#define LDAP_DEFAULT_CA		"/etc/ssl/certs/ca-certificates.crt"
#define LDAP_PASSWORD_MAX	1024    /* bind password file bound */
#define LDAP_GROUPS_MAX		1024    /* more is refused, never truncated */

struct auth_ldap {
	char **uris;
	size_t nuris;
	bool starttls;
	char *ca_file;
	char *bind_dn;                  /* NULL = anonymous */
	char *bind_pw;                  /* wiped on free */
	size_t bind_pwlen;
	char *user_base, *user_filter;
	char *group_base, *group_filter, *group_attr;
	char user_attr[128];
	int timeout;
	auth_log_fn *log;
};

struct auth_ldap_conn {
	struct auth_ldap *cfg;
	LDAP *svc;                      /* searches: bound as bind_dn or anonymous */
	LDAP *usr;                      /* user binds only */
};

char *
auth_escape(const char *s, size_t len, char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '"') {
			if (outsz - o < 2)
				break;
			out[o++] = (char)ch;
		} else {
			if (outsz - o < 5)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 0xf];
		}
	}
	out[o] = '\0';
	return out;
}

static void ldapx_log(struct auth_ldap *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static void
ldapx_log(struct auth_ldap *cfg, int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (cfg->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cfg->log(level, buf);
}

/* ------------------------------------------------------------ settings */

/*
 * Read the service account's password: a regular file, owned by us or root,
 * that neither group nor others may access (httpd check_file_secrecy), at
 * most LDAP_PASSWORD_MAX bytes, without NUL, one trailing newline (LF or
 * CRLF) dropped.
 */
static int
ldapx_read_secret(const char *path, long owner, char **pw, size_t *pwlen, char **err)
{
	uid_t may_own = owner > 0 ? (uid_t)owner : getuid();
	char buf[LDAP_PASSWORD_MAX + 2];
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		if (asprintf(err, "%s: %s", path, strerror(errno)) == -1)
			*err = NULL;
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		if (asprintf(err, "%s: %s", path, strerror(errno)) == -1)
			*err = NULL;
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != may_own) ||
	    (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		if (asprintf(err, "%s: must be a regular file owned by root or this user, "
		    "with no group or other permissions (chmod 600)", path) == -1)
			*err = NULL;
		close(fd);
		return -1;
	}
	while (len < sizeof(buf)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			if (asprintf(err, "%s: %s", path, strerror(errno)) == -1)
				*err = NULL;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	fd = -1;
	/* One line ending is not part of the password, whether an editor
	 * wrote "\n" or "\r\n" (a bare "Invalid credentials" otherwise). */
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len > LDAP_PASSWORD_MAX || len == 0 || memchr(buf, '\0', len) != NULL) {
		if (asprintf(err, "%s: the password must be 1 to %d bytes without NUL",
		    path, LDAP_PASSWORD_MAX) == -1)
			*err = NULL;
		goto fail;
	}
	if ((*pw = malloc(len + 1)) == NULL) {
		*err = strdup("out of memory");
		goto fail;
	}
	memcpy(*pw, buf, len);
	(*pw)[len] = '\0';
	*pwlen = len;
	explicit_bzero(buf, sizeof(buf));
	return 0;
fail:
	if (fd != -1)
		close(fd);
	explicit_bzero(buf, sizeof(buf));
	return -1;
}

static char *
ldapx_strdup(const char *s, bool *oom)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*oom = true;
	return d;
}

struct auth_ldap *
auth_ldap_new(const struct auth_config *conf, char **err)
{
	struct auth_ldap *cfg;
	const char *why;
	bool oom = false;
	size_t i;

	*err = NULL;
	/* Before libldap's first call, which reads ldaprc and LDAP* otherwise. */
	if (setenv("LDAPNOINIT", "1", 1) == -1) {
		*err = strdup("setenv LDAPNOINIT failed");
		return NULL;
	}
	if (conf->nuris == 0 || conf->user_base == NULL || conf->user_filter == NULL) {
		*err = strdup("auth ldap needs ldap_uri and ldap_user_base");
		return NULL;
	}
	if (ldap_filter_check(conf->user_filter, "u", &why) == -1) {
		if (asprintf(err, "ldap_user_filter: %s", why) == -1)
			*err = NULL;
		return NULL;
	}
	if (conf->group_base != NULL && (conf->group_filter == NULL ||
	    conf->group_attr == NULL)) {
		*err = strdup("ldap_group_base needs ldap_group_filter and ldap_group_attr");
		return NULL;
	}
	if (conf->group_filter != NULL &&
	    ldap_filter_check(conf->group_filter, "d", &why) == -1) {
		if (asprintf(err, "ldap_group_filter: %s", why) == -1)
			*err = NULL;
		return NULL;
	}
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL ||
	    (cfg->uris = calloc(conf->nuris, sizeof(char *))) == NULL) {
		free(cfg);
		*err = strdup("out of memory");
		return NULL;
	}
	cfg->nuris = conf->nuris;
	for (i = 0; i < conf->nuris; i++) {
		if (ldap_is_ldap_url(conf->uris[i]) == 0 && ldap_is_ldaps_url(conf->uris[i]) == 0) {
			if (asprintf(err, "ldap_uri: not an ldap:// or ldaps:// URI: %s",
			    conf->uris[i]) == -1)
				*err = NULL;
			goto fail;
		}
		cfg->uris[i] = ldapx_strdup(conf->uris[i], &oom);
	}
	cfg->starttls = conf->starttls;
	cfg->ca_file = ldapx_strdup(conf->tls_ca_file != NULL ? conf->tls_ca_file :
	    LDAP_DEFAULT_CA, &oom);
	cfg->bind_dn = ldapx_strdup(conf->bind_dn, &oom);
	cfg->user_base = ldapx_strdup(conf->user_base, &oom);
	cfg->user_filter = ldapx_strdup(conf->user_filter, &oom);
	cfg->group_base = ldapx_strdup(conf->group_base, &oom);
	cfg->group_filter = ldapx_strdup(conf->group_filter, &oom);
	cfg->group_attr = ldapx_strdup(conf->group_attr, &oom);
	cfg->timeout = conf->timeout > 0 ? conf->timeout : 5;
	cfg->log = conf->log;
	if (oom) {
		*err = strdup("out of memory");
		goto fail;
	}
	if (conf->user_attr != NULL) {
		if (strlen(conf->user_attr) >= sizeof(cfg->user_attr) ||
		    conf->user_attr[0] == '\0') {
			*err = strdup("ldap user attribute name too long or empty");
			goto fail;
		}
		snprintf(cfg->user_attr, sizeof(cfg->user_attr), "%s", conf->user_attr);
	} else if (ldap_filter_user_attr(conf->user_filter, cfg->user_attr,
	    sizeof(cfg->user_attr)) == -1)
		snprintf(cfg->user_attr, sizeof(cfg->user_attr), "uid");
	if (conf->bind_dn != NULL) {
		if (conf->bind_password_file == NULL) {
			*err = strdup("ldap_bind_dn needs ldap_bind_password_file");
			goto fail;
		}
		if (ldapx_read_secret(conf->bind_password_file, conf->secret_owner, &cfg->bind_pw,
		    &cfg->bind_pwlen, err) == -1)
			goto fail;
	}
	/* Without the CA file every TLS connection would fail: say so now. */
	for (i = 0; i < conf->nuris; i++)
		if ((cfg->starttls || ldap_is_ldaps_url(cfg->uris[i])) &&
		    access(cfg->ca_file, R_OK) == -1) {
			if (asprintf(err, "ldap_tls_ca_file %s: %s", cfg->ca_file,
			    strerror(errno)) == -1)
				*err = NULL;
			goto fail;
		}
	return cfg;
fail:
	if (*err == NULL)
		*err = strdup("out of memory");
	auth_ldap_free(cfg);
	return NULL;
}

void
auth_ldap_free(struct auth_ldap *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->nuris; i++)
		free(cfg->uris[i]);
	free(cfg->uris);
	free(cfg->ca_file);
	free(cfg->bind_dn);
	if (cfg->bind_pw != NULL)
		explicit_bzero(cfg->bind_pw, cfg->bind_pwlen);
	free(cfg->bind_pw);
	free(cfg->user_base);
	free(cfg->user_filter);
	free(cfg->group_base);
	free(cfg->group_filter);
	free(cfg->group_attr);
	free(cfg);
}

/* ------------------------------------------------------------ connections */

struct auth_ldap_conn *
auth_ldap_conn_new(struct auth_ldap *cfg)
{
	struct auth_ldap_conn *lc;

	if ((lc = calloc(1, sizeof(*lc))) == NULL)
		return NULL;
	lc->cfg = cfg;
	return lc;
}

static void
ldapx_drop(LDAP **ld)
{
	if (*ld != NULL) {
		ldap_unbind_ext_s(*ld, NULL, NULL);
		*ld = NULL;
	}
}

void
auth_ldap_conn_free(struct auth_ldap_conn *lc)
{
	if (lc == NULL)
		return;
	ldapx_drop(&lc->svc);
	ldapx_drop(&lc->usr);
	free(lc);
}

/* Result codes that say "the server did not really answer". */
static bool
ldapx_conn_error(int rc)
{
	return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT ||
	    rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY || rc == LDAP_LOCAL_ERROR ||
	    rc == LDAP_ENCODING_ERROR || rc == LDAP_DECODING_ERROR || rc == LDAP_NO_MEMORY;
}

/* Every option the daemon depends on, on one handle (nothing inherited). */
static int
ldapx_options(struct auth_ldap *cfg, LDAP *ld, bool tls)
{
	struct timeval tv = { cfg->timeout, 0 };
	int version = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND;
	int tlsmin = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2, zero = 0;

	if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_RESTART, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS)
		return -1;
	/* Only where TLS is used: a missing CA file must not break plain LDAP. */
	if (!tls)
		return 0;
	if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &tlsmin) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, cfg->ca_file) != LDAP_OPT_SUCCESS)
		return -1;
	/* The TLS settings above take effect only in a context made after them. */
	if (ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero) != LDAP_OPT_SUCCESS)
		return -1;
	return 0;
}

/*
 * Say why StartTLS failed in words an operator can act on: a server that
 * answers the extended operation with "protocol error", "unavailable" or
 * "unwilling" does not offer TLS at all (a plain server, or TLS not set up
 * on it), which libldap's bare error string does not tell.
 */
static void
ldapx_log_starttls_failure(struct auth_ldap *cfg, LDAP *ld, const char *what,
    const char *uri, int rc)
{
	char *diag = NULL;
	const char *hint = "";

	(void)ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	if (rc == LDAP_PROTOCOL_ERROR || rc == LDAP_UNAVAILABLE || rc == LDAP_UNWILLING_TO_PERFORM ||
	    rc == LDAP_OPERATIONS_ERROR)
		hint = " (the server does not offer StartTLS: a plain LDAP server, or TLS not "
		    "configured on it; set up TLS there, use ldaps://, or ldap_starttls no)";
	else if (rc == LDAP_CONNECT_ERROR)
		hint = " (the TLS handshake failed: check the server certificate against "
		    "ldap_tls_ca_file and the name in ldap_uri)";
	ldapx_log(cfg, 0, "ldap %s: %s: StartTLS failed: %s%s%s%s", what, uri,
	    ldap_err2string(rc), diag != NULL && diag[0] != '\0' ? ": " : "",
	    diag != NULL ? diag : "", hint);
	ldap_memfree(diag);
}

/*
 * Open a connection: the URIs in order, each connected, upgraded with
 * StartTLS when configured, and bound as dn/pw when dn is not NULL.
 * Returns LDAP_SUCCESS with *out set, or the last error.  A refused service
 * bind is not retried on the next server: it is a configuration error.
 */
static int
ldapx_open(struct auth_ldap *cfg, const char *dn, const char *pw, size_t pwlen,
    const char *what, LDAP **out)
{
	struct berval cred;
	LDAP *ld;
	size_t i;
	int rc = LDAP_SERVER_DOWN;

	*out = NULL;
	for (i = 0; i < cfg->nuris; i++) {
		if ((rc = ldap_initialize(&ld, cfg->uris[i])) != LDAP_SUCCESS) {
			ldapx_log(cfg, 0, "ldap %s: %s: %s", what, cfg->uris[i],
			    ldap_err2string(rc));
			continue;
		}
		if (ldapx_options(cfg, ld, cfg->starttls ||
		    ldap_is_ldaps_url(cfg->uris[i])) == -1) {
			ldapx_log(cfg, 0, "ldap %s: %s: cannot set options", what, cfg->uris[i]);
			ldap_unbind_ext_s(ld, NULL, NULL);
			rc = LDAP_LOCAL_ERROR;
			continue;
		}
		if ((rc = ldap_connect(ld)) != LDAP_SUCCESS) {
			ldapx_log(cfg, 0, "ldap %s: %s: connect: %s", what, cfg->uris[i],
			    ldap_err2string(rc));
			ldap_unbind_ext_s(ld, NULL, NULL);
			continue;
		}
		if (cfg->starttls && !ldap_is_ldaps_url(cfg->uris[i]) &&
		    (rc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS) {
			/* Never go on in plain text. */
			ldapx_log_starttls_failure(cfg, ld, what, cfg->uris[i], rc);
			ldap_unbind_ext_s(ld, NULL, NULL);
			continue;
		}
		if (dn != NULL) {
			cred.bv_val = (char *)(uintptr_t)pw;
			cred.bv_len = pwlen;
			rc = ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
			if (rc != LDAP_SUCCESS) {
				ldapx_log(cfg, 0, "ldap %s: %s: bind as the service account "
				    "failed: %s", what, cfg->uris[i], ldap_err2string(rc));
				ldap_unbind_ext_s(ld, NULL, NULL);
				if (ldapx_conn_error(rc))
					continue;
				return rc;
			}
		}
		*out = ld;
		return LDAP_SUCCESS;
	}
	return rc;
}

/* ------------------------------------------------------------ the exchange */

/*
 * Search the user; on LDAP_SUCCESS, *dn (ldap_memfree) and the stored name
 * (in name, NUL-terminated) are set, or *dn stays NULL for "no such user"
 * and "ambiguous" (why says which).
 */
static int
ldapx_find_user(struct auth_ldap_conn *lc, const char *user, size_t ulen, char **dn,
    char *name, size_t namesz, const char **why)
{
	struct auth_ldap *cfg = lc->cfg;
	char filter[LDAP_FILTER_MAX];
	char *attrs[2] = { cfg->user_attr, NULL };
	struct timeval tv = { cfg->timeout, 0 };
	struct berval **vals;
	LDAPMessage *res = NULL, *e;
	const char *err;
	int rc, n, i, pick;

	*dn = NULL;
	*why = NULL;
	if (ldap_filter_expand(cfg->user_filter, user, ulen, NULL, 0, filter,
	    sizeof(filter), &err) == -1) {
		*why = err;
		return LDAP_SUCCESS;
	}
	rc = ldap_search_ext_s(lc->svc, cfg->user_base, LDAP_SCOPE_SUBTREE, filter, attrs,
	    0, NULL, NULL, &tv, 2, &res);
	if (rc == LDAP_SIZELIMIT_EXCEEDED) {
		ldap_msgfree(res);
		*why = "several entries match";
		return LDAP_SUCCESS;
	}
	if (rc != LDAP_SUCCESS) {
		ldap_msgfree(res);
		return rc;
	}
	n = ldap_count_entries(lc->svc, res);
	if (n != 1) {
		ldap_msgfree(res);
		*why = n == 0 ? "no such user" : "several entries match";
		return LDAP_SUCCESS;
	}
	e = ldap_first_entry(lc->svc, res);
	vals = ldap_get_values_len(lc->svc, e, cfg->user_attr);
	n = vals == NULL ? 0 : ldap_count_values_len(vals);
	pick = -1;
	for (i = 0; i < n; i++) {
		if (vals[i]->bv_len == 0 || vals[i]->bv_len >= namesz ||
		    memchr(vals[i]->bv_val, '\0', vals[i]->bv_len) != NULL)
			continue;
		if (pick == -1)
			pick = i;
		if (vals[i]->bv_len == ulen && strncasecmp(vals[i]->bv_val, user, ulen) == 0) {
			pick = i;
			break;
		}
	}
	if (pick == -1) {
		ldap_value_free_len(vals);
		ldap_msgfree(res);
		*why = "the entry has no usable naming attribute";
		ldapx_log(cfg, 0, "ldap: user entry found without a usable %s value",
		    cfg->user_attr);
		return LDAP_SUCCESS;
	}
	memcpy(name, vals[pick]->bv_val, vals[pick]->bv_len);
	name[vals[pick]->bv_len] = '\0';
	ldap_value_free_len(vals);
	*dn = ldap_get_dn(lc->svc, e);
	ldap_msgfree(res);
	if (*dn == NULL) {
		*why = "no DN";
		return LDAP_OTHER;
	}
	return LDAP_SUCCESS;
}

/* The groups of dn: group_attr of every entry the group filter finds. */
static int
ldapx_find_groups(struct auth_ldap_conn *lc, const char *dn, char ***groups, size_t *ngroups)
{
	struct auth_ldap *cfg = lc->cfg;
	char filter[LDAP_FILTER_MAX];
	char *attrs[2] = { cfg->group_attr, NULL };
	struct timeval tv = { cfg->timeout, 0 };
	struct berval **vals;
	LDAPMessage *res = NULL, *e;
	const char *err;
	char **gv = NULL, **ngv;
	size_t n = 0;
	int rc, i, nv;

	*groups = NULL;
	*ngroups = 0;
	if (cfg->group_base == NULL)
		return LDAP_SUCCESS;
	if (ldap_filter_expand(cfg->group_filter, NULL, 0, dn, strlen(dn), filter,
	    sizeof(filter), &err) == -1) {
		ldapx_log(cfg, 0, "ldap: group filter: %s", err);
		return LDAP_FILTER_ERROR;
	}
	rc = ldap_search_ext_s(lc->svc, cfg->group_base, LDAP_SCOPE_SUBTREE, filter, attrs,
	    0, NULL, NULL, &tv, LDAP_GROUPS_MAX, &res);
	if (rc != LDAP_SUCCESS) {
		/* A truncated group list could skip a deny rule: refuse it. */
		ldap_msgfree(res);
		return rc;
	}
	for (e = ldap_first_entry(lc->svc, res); e != NULL; e = ldap_next_entry(lc->svc, e)) {
		vals = ldap_get_values_len(lc->svc, e, cfg->group_attr);
		nv = vals == NULL ? 0 : ldap_count_values_len(vals);
		for (i = 0; i < nv; i++) {
			if (vals[i]->bv_len == 0 ||
			    memchr(vals[i]->bv_val, '\0', vals[i]->bv_len) != NULL)
				continue;
			if (n >= LDAP_GROUPS_MAX ||
			    (ngv = reallocarray(gv, n + 1, sizeof(*gv))) == NULL) {
				rc = LDAP_NO_MEMORY;
				break;
			}
			gv = ngv;
			if ((gv[n] = strndup(vals[i]->bv_val, vals[i]->bv_len)) == NULL) {
				rc = LDAP_NO_MEMORY;
				break;
			}
			n++;
		}
		ldap_value_free_len(vals);
		if (rc != LDAP_SUCCESS)
			break;
	}
	ldap_msgfree(res);
	*groups = gv;
	*ngroups = n;
	return rc;
}

static void
ldapx_free_groups(char **gv, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(gv[i]);
	free(gv);
}

/* Make sure the service connection exists; *fresh says it was just opened. */
static int
ldapx_svc(struct auth_ldap_conn *lc, bool *fresh)
{
	struct auth_ldap *cfg = lc->cfg;

	*fresh = false;
	if (lc->svc != NULL)
		return LDAP_SUCCESS;
	*fresh = true;
	return ldapx_open(cfg, cfg->bind_dn, cfg->bind_pw, cfg->bind_pwlen,
	    "service connection", &lc->svc);
}

enum auth_status
auth_ldap_check(void *arg, const char *user, size_t ulen, const char *pass, size_t plen,
    struct cache_ident **ident)
{
	struct auth_ldap_conn *lc = arg;
	struct auth_ldap *cfg = lc->cfg;
	char name[1024], esc[256];
	char *dn = NULL, **groups = NULL;
	size_t ngroups = 0;
	struct berval cred;
	const char *why;
	bool fresh;
	int rc, attempt;

	*ident = NULL;
	auth_escape(user, ulen, esc, sizeof(esc));
	/* Checked by the caller too; an empty password is an anonymous bind. */
	if (ulen == 0 || plen == 0)
		return AUTH_FAILED;

	for (attempt = 0; ; attempt++) {
		if ((rc = ldapx_svc(lc, &fresh)) != LDAP_SUCCESS)
			return AUTH_UNAVAILABLE;
		rc = ldapx_find_user(lc, user, ulen, &dn, name, sizeof(name), &why);
		if (rc == LDAP_SUCCESS)
			break;
		ldapx_drop(&lc->svc);
		if (fresh || attempt > 0 || !ldapx_conn_error(rc)) {
			ldapx_log(cfg, 0, "ldap: user search for \"%s\": %s", esc,
			    ldap_err2string(rc));
			return AUTH_UNAVAILABLE;
		}
	}
	if (dn == NULL) {
		ldapx_log(cfg, 2, "ldap: user \"%s\": %s", esc, why);
		return AUTH_FAILED;
	}

	for (attempt = 0; ; attempt++) {
		fresh = false;
		if (lc->usr == NULL) {
			fresh = true;
			if ((rc = ldapx_open(cfg, NULL, NULL, 0, "user connection",
			    &lc->usr)) != LDAP_SUCCESS) {
				ldap_memfree(dn);
				return AUTH_UNAVAILABLE;
			}
		}
		cred.bv_val = (char *)(uintptr_t)pass;
		cred.bv_len = plen;
		rc = ldap_sasl_bind_s(lc->usr, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
		if (rc == LDAP_SUCCESS)
			break;
		if (rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_INAPPROPRIATE_AUTH ||
		    rc == LDAP_UNWILLING_TO_PERFORM || rc == LDAP_INSUFFICIENT_ACCESS ||
		    rc == LDAP_INVALID_DN_SYNTAX || rc == LDAP_NO_SUCH_OBJECT) {
			ldapx_log(cfg, 2, "ldap: user \"%s\": bind refused: %s", esc,
			    ldap_err2string(rc));
			ldap_memfree(dn);
			return AUTH_FAILED;
		}
		ldapx_drop(&lc->usr);
		if (fresh || attempt > 0 || !ldapx_conn_error(rc)) {
			ldapx_log(cfg, 0, "ldap: bind for \"%s\": %s", esc, ldap_err2string(rc));
			ldap_memfree(dn);
			return AUTH_UNAVAILABLE;
		}
	}

	rc = ldapx_find_groups(lc, dn, &groups, &ngroups);
	ldap_memfree(dn);
	if (rc != LDAP_SUCCESS) {
		ldapx_log(cfg, 0, "ldap: group search for \"%s\": %s", esc,
		    ldap_err2string(rc));
		if (ldapx_conn_error(rc))
			ldapx_drop(&lc->svc);
		ldapx_free_groups(groups, ngroups);
		return AUTH_UNAVAILABLE;
	}
	*ident = cache_ident_new(name, strlen(name), (const char *const *)groups, ngroups);
	ldapx_free_groups(groups, ngroups);
	return *ident != NULL ? AUTH_OK : AUTH_UNAVAILABLE;
}
