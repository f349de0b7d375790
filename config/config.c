/*
 * config — egressd.conf, read into a struct config.
 *
 * One directive a line, "key value...", fields separated by spaces or tabs.
 * A '#' that starts a field starts a comment running to the end of the line;
 * a '#' inside a field is an ordinary byte (so "cn=#04..." stays whole).  Blank
 * lines are ignored, a CR before the LF is ignored.  A relative path is taken
 * relative to the folder of this file.  Keys marked "" are accepted and
 * checked now; the feature that uses them arrives with a  issue.
 *
 *	key                     values                  default             notes
 *	listen                  ADDR:PORT [proxy_protocol] [tls]  (required) repeatable, max 16
 *	proxy_protocol_from     ADDR[/PREFIX]           (anyone)            repeatable, max 64; needs a
 *	                                                                    proxy_protocol listener
 *	tls_cert_file           PATH                    (required by tls)   PEM chain, leaf first
 *	tls_key_file            PATH                    (required by tls)   secret-file rule
 *	tls_min_version         1.2 | 1.3               1.2
 *	auth_require_tls        yes | no                no                  credentials only over tls
 *	workers                 auto | 1..256           auto                auto = online CPUs
 *	user                    NAME                    (none)              started as root: drop to it
 *	group                   NAME                    user's login group  with user only
 *	policy_file             PATH                    (required)
 *	dns_hosts_file          PATH                    /etc/hosts
 *	dns_resolv_conf         PATH                    /etc/resolv.conf
 *	allow_internal          ADDR[/PREFIX]           (none)              repeatable, max 64
 *	auth                    ldap | none             none                
 *	ldap_uri                URI...                  (required by ldap)  ; 1..8, ldap:// ldaps://
 *	ldap_starttls           yes | no                no                  
 *	ldap_bind_dn            DN (rest of line)       (anonymous)         ; needs the password file
 *	ldap_bind_password_file PATH                    (none)              ; needs ldap_bind_dn
 *	ldap_tls_ca_file        PATH                    system CA bundle    extension: CAs for StartTLS/ldaps
 *	ldap_user_base          DN (rest of line)       (required by ldap)  
 *	ldap_user_filter        FILTER (rest of line)   (uid=%u)            ; must contain %u
 *	ldap_group_base         DN (rest of line)       (none: no groups)   
 *	ldap_group_filter       FILTER (rest of line)   (member=%d)         ; must contain %d
 *	ldap_group_attr         ATTRIBUTE               cn                  
 *	ldap_user_attr          ATTRIBUTE               ATTR of (ATTR=%u), else uid   extension: the stored user name
 *	ldap_timeout            1..300 seconds          5                   
 *	auth_realm              TEXT (rest of line)     egressd             ; no '"', '\', controls
 *	auth_cache_ttl          0..86400 seconds        300                 
 *	auth_negative_ttl       0..86400 seconds        5                   
 *	auth_fail_per_client    0..1000000 a minute     20                  0 = no limit
 *	auth_fail_per_user      0..1000000 a minute     5                   0 = no limit
 *	audit_syslog_socket     PATH                    /dev/log            
 *	audit_facility          kern..local7            local5 (21)         
 *	audit_tag               1..32 of [A-Za-z0-9._-] egressd             
 *	audit_relp              HOST:PORT | [IPV6]:PORT (none: the datagram socket)  RELP instead of audit_syslog_socket
 *	audit_on_failure        allow | deny            allow               
 *	audit_stderr            yes | no                no                  extension: also "audit {JSON}" lines on stderr
 *	admin_socket            PATH                    (none)              
 *	metrics_listen          ADDR:PORT               (none)              
 *	connect_timeout         1..86400 seconds        10
 *	idle_timeout            1..86400 seconds        300
 *	sni_timeout             1..86400 seconds        10                  
 *	header_timeout          1..86400 seconds        30
 *	shutdown_grace          0..86400 seconds        30
 *	max_connections         1..1000000              20000
 *
 * "Rest of line" values (DNs, filters, the realm) may contain spaces, since
 * directory DNs often do ("ou=Service Accounts"); they may be written inside
 * double quotes, which are stripped, and then may contain '#' too.  Paths and
 * every other value are single fields.  Numbers are decimal digits only.
 *
 * The difficulty is the admin, not the grammar: every mistake in the file is
 * reported (unknown key, missing or extra value, bad or out-of-range value, a
 * key given twice, a missing required key) as "FILE:LINE: message", parsing
 * goes on after each, and a file with any error yields no configuration.  The
 * parser is pure — it reads the one file and touches nothing else — so
 * egressd -t and egressctl check see exactly what the daemon would.
 */
#include "config/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CONFIG_FIELDS_MAX 16            /* more fields than any directive takes */
#define UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

struct cparse;

/* One row of the directive table. */
struct directive {
	const char *name;
	/* checks the values (args[0..n), already counted) and stores them */
	int (*fn)(struct cparse *, const struct directive *, char **args, size_t n);
	unsigned flags;
	size_t minargs, maxargs;        /* number of value fields (ignored for RAW) */
	long min, max;                  /* numbers: accepted range */
	size_t off;                     /* offsetof(struct config, field) for generic handlers */
};

#define D_REPEAT 0x1                    /* may be given more than once */
#define D_RAW    0x2                    /* value is the rest of the line (args[0]) */

/* One parse in progress. */
struct cparse {
	const char *path;               /* the file as given (error prefix) */
	char *dir;                      /* its folder with a trailing '/', "" if none */
	size_t line;
	struct config *c;
	char *err;                      /* collected "FILE:LINE: message\n" text */
	size_t errlen, errcap, nerr;
	bool oom;
	size_t *first;                  /* line a directive was first given on, 0 = never */
	bool workers_auto;
};

static void cfg_error(struct cparse *, size_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Record "FILE:LINE: message" (or "FILE: message" when line is 0) and go on.
 */
static void
cfg_error(struct cparse *cp, size_t line, const char *fmt, ...)
{
	char msg[1024], *nb;
	size_t need, ncap;
	va_list ap;
	int n;

	cp->nerr++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		n = snprintf(NULL, 0, "%s:%zu: %s\n", cp->path, line, msg);
	else
		n = snprintf(NULL, 0, "%s: %s\n", cp->path, msg);
	if (n < 0 || cp->oom)
		return;
	need = cp->errlen + (size_t)n + 1;
	if (need > cp->errcap) {
		ncap = cp->errcap ? cp->errcap : 256;
		while (ncap < need)
			ncap *= 2;
		if ((nb = realloc(cp->err, ncap)) == NULL) {
			cp->oom = true;
			return;
		}
		cp->err = nb;
		cp->errcap = ncap;
	}
	if (line > 0)
		snprintf(cp->err + cp->errlen, cp->errcap - cp->errlen, "%s:%zu: %s\n",
		    cp->path, line, msg);
	else
		snprintf(cp->err + cp->errlen, cp->errcap - cp->errlen, "%s: %s\n",
		    cp->path, msg);
	cp->errlen += (size_t)n;
}

static char *
xstrdup(struct cparse *cp, const char *s)
{
	char *d;

	if ((d = strdup(s)) == NULL)
		cp->oom = true;
	return d;
}

/* A path as written, resolved against the folder of the configuration file. */
static char *
resolve_path(struct cparse *cp, const char *value)
{
	char *p;

	if (value[0] == '/' || cp->dir[0] == '\0')
		return xstrdup(cp, value);
	if (asprintf(&p, "%s%s", cp->dir, value) == -1) {
		cp->oom = true;
		return NULL;
	}
	return p;
}

/* Decimal digits only, no sign, no spaces.  Returns 0, or -1 if not a number. */
static int
parse_number(const char *s, long *out)
{
	long v = 0;
	size_t i;

	if (s[0] == '\0')
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		/* Saturate: anything this large is out of every range anyway. */
		if (v < 100000000L)
			v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Check a number against the directive's range; reports and returns -1 if bad. */
static int
number_in_range(struct cparse *cp, const struct directive *d, const char *s, long *out)
{
	if (parse_number(s, out) == -1) {
		cfg_error(cp, cp->line, "%s: \"%s\" is not a number (expected %ld-%ld)",
		    d->name, s, d->min, d->max);
		return -1;
	}
	if (*out < d->min || *out > d->max) {
		cfg_error(cp, cp->line, "%s: %s is out of range (%ld-%ld)", d->name, s,
		    d->min, d->max);
		return -1;
	}
	return 0;
}

#define FIELD(cp, d, type) ((type *)(void *)((char *)(cp)->c + (d)->off))

/* Replace a string field (its default, if any, is freed). */
static void
set_string(struct cparse *cp, const struct directive *d, char *v)
{
	char **slot = FIELD(cp, d, char *);

	if (v == NULL)
		return;
	free(*slot);
	*slot = v;
}

/* ---- handlers ---------------------------------------------------------- */

static int
d_int(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	long v;

	if (number_in_range(cp, d, args[0], &v) == -1)
		return -1;
	*FIELD(cp, d, int) = (int)v;
	return 0;
}

static int
d_yesno(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	if (strcmp(args[0], "yes") == 0)
		*FIELD(cp, d, bool) = true;
	else if (strcmp(args[0], "no") == 0)
		*FIELD(cp, d, bool) = false;
	else {
		cfg_error(cp, cp->line, "%s: bad value \"%s\" (expected yes or no)", d->name,
		    args[0]);
		return -1;
	}
	return 0;
}

static int
d_path(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	set_string(cp, d, resolve_path(cp, args[0]));
	return 0;
}

/* A unix socket path: resolved, and short enough for sun_path. */
static int
d_socket_path(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	char *p;

	if ((p = resolve_path(cp, args[0])) == NULL)
		return -1;
	if (strlen(p) > UNIX_PATH_MAX) {
		cfg_error(cp, cp->line, "%s: path \"%s\" is too long for a unix socket "
		    "(at most %zu bytes)", d->name, p, UNIX_PATH_MAX);
		free(p);
		return -1;
	}
	set_string(cp, d, p);
	return 0;
}

static int
d_policy_file(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	char *as_written, *resolved;

	as_written = xstrdup(cp, args[0]);
	resolved = resolve_path(cp, args[0]);
	if (as_written == NULL || resolved == NULL) {
		free(as_written);
		free(resolved);
		return -1;
	}
	cp->c->policy_file = as_written;
	cp->c->policy_path = resolved;
	return 0;
}

/* listen ADDR [proxy_protocol] [tls]: each flag at most once, in any order. */
static int
d_listen(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	struct config *c = cp->c;
	struct config_listen *l;
	bool pp = false, tls = false;
	const char *err;
	size_t i;

	for (i = 1; i < n; i++) {
		bool *flag = strcmp(args[i], "proxy_protocol") == 0 ? &pp :
		    strcmp(args[i], "tls") == 0 ? &tls : NULL;

		if (flag == NULL) {
			cfg_error(cp, cp->line, "listen: unknown flag \"%s\" (expected "
			    "proxy_protocol or tls)", args[i]);
			return -1;
		}
		if (*flag) {
			cfg_error(cp, cp->line, "listen: flag \"%s\" given twice", args[i]);
			return -1;
		}
		*flag = true;
	}
	if (c->nlisten == CONFIG_LISTEN_MAX) {
		cfg_error(cp, cp->line, "listen: more than %d listen addresses",
		    CONFIG_LISTEN_MAX);
		return -1;
	}
	l = &c->listen[c->nlisten];
	memset(l, 0, sizeof(*l));
	if (netaddr_parse_hostport(args[0], &l->addr, &l->addrlen, &err) == -1) {
		cfg_error(cp, cp->line, "listen: bad address \"%s\": %s", args[0], err);
		return -1;
	}
	if (strlen(args[0]) >= sizeof(l->text)) {
		cfg_error(cp, cp->line, "listen: address \"%s\" is too long", args[0]);
		return -1;
	}
	for (i = 0; i < c->nlisten; i++)
		if (netaddr_equal((struct sockaddr *)&c->listen[i].addr,
		    (struct sockaddr *)&l->addr)) {
			cfg_error(cp, cp->line, "listen: %s is already a listen address",
			    args[0]);
			return -1;
		}
	snprintf(l->text, sizeof(l->text), "%s", args[0]);
	l->line = cp->line;
	l->proxy_protocol = pp;
	l->tls = tls;
	c->nlisten++;
	return 0;
}

/* tls_min_version 1.2 | 1.3 */
static int
d_tls_version(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	if (strcmp(args[0], "1.2") == 0)
		cp->c->tls_min_version = 12;
	else if (strcmp(args[0], "1.3") == 0)
		cp->c->tls_min_version = 13;
	else {
		cfg_error(cp, cp->line, "tls_min_version: bad value \"%s\" (expected 1.2 or "
		    "1.3)", args[0]);
		return -1;
	}
	return 0;
}

static int
d_workers(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	if (strcmp(args[0], "auto") == 0) {
		cp->workers_auto = true;
		return 0;
	}
	cp->workers_auto = false;
	return d_int(cp, d, args, n);
}

static int
d_allow_internal(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	struct config *c = cp->c;
	const char *err;

	if (c->nallow_internal == CONFIG_ALLOW_INTERNAL_MAX) {
		cfg_error(cp, cp->line, "allow_internal: more than %d ranges",
		    CONFIG_ALLOW_INTERNAL_MAX);
		return -1;
	}
	if (netaddr_parse_cidr(args[0], &c->allow_internal[c->nallow_internal], &err) == -1) {
		cfg_error(cp, cp->line, "allow_internal: bad range \"%s\": %s", args[0], err);
		return -1;
	}
	c->nallow_internal++;
	return 0;
}

/* Where a PROXY header may come from (the load balancers in front). */
static int
d_proxy_from(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	struct config *c = cp->c;
	const char *err;

	if (c->nproxy_protocol_from == CONFIG_PROXY_FROM_MAX) {
		cfg_error(cp, cp->line, "proxy_protocol_from: more than %d ranges",
		    CONFIG_PROXY_FROM_MAX);
		return -1;
	}
	if (netaddr_parse_cidr(args[0], &c->proxy_protocol_from[c->nproxy_protocol_from],
	    &err) == -1) {
		cfg_error(cp, cp->line, "proxy_protocol_from: bad range \"%s\": %s", args[0],
		    err);
		return -1;
	}
	c->nproxy_protocol_from++;
	return 0;
}

static int
d_auth(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	if (strcmp(args[0], "ldap") == 0)
		cp->c->auth = CONFIG_AUTH_LDAP;
	else if (strcmp(args[0], "none") == 0)
		cp->c->auth = CONFIG_AUTH_NONE;
	else {
		cfg_error(cp, cp->line, "auth: bad value \"%s\" (expected ldap or none)",
		    args[0]);
		return -1;
	}
	return 0;
}

static int
d_ldap_uri(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	struct config *c = cp->c;
	size_t i;
	int bad = 0;

	for (i = 0; i < n; i++) {
		if (strncasecmp(args[i], "ldap://", 7) != 0 &&
		    strncasecmp(args[i], "ldaps://", 8) != 0) {
			cfg_error(cp, cp->line, "ldap_uri: \"%s\" is not an ldap:// or "
			    "ldaps:// URI", args[i]);
			bad = -1;
		}
	}
	if (bad)
		return -1;
	for (i = 0; i < n; i++)
		if ((c->ldap_uri[c->nldap_uri++] = xstrdup(cp, args[i])) == NULL)
			return -1;
	return 0;
}

/* An attribute description: a name (letters, digits, '-') or a numeric OID, options after ';'. */
static int
d_ldap_attr(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	const char *s = args[0];
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.' || s[i] == ';'))
			break;
	if (s[i] != '\0') {
		cfg_error(cp, cp->line, "%s: bad attribute name \"%s\"", d->name, s);
		return -1;
	}
	set_string(cp, d, xstrdup(cp, s));
	return 0;
}

static int
d_string(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	set_string(cp, d, xstrdup(cp, args[0]));
	return 0;
}

/*
 * An LDAP filter with one substitution: in parentheses, containing the
 * placeholder (%u or %d, passed in d->min as a character), and no other '%'
 * sequence, since the LDAP module substitutes only that one.
 */
static int
d_filter(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	const char *s = args[0], *p;
	char want = (char)d->min;
	size_t len = strlen(s);
	bool found = false;

	if (len < 2 || s[0] != '(' || s[len - 1] != ')') {
		cfg_error(cp, cp->line, "%s: \"%s\" is not an LDAP filter in parentheses",
		    d->name, s);
		return -1;
	}
	for (p = s; (p = strchr(p, '%')) != NULL; p += 2) {
		if (p[1] != want) {
			cfg_error(cp, cp->line, "%s: unknown \"%%%c\" in filter (only %%%c is "
			    "substituted)", d->name, p[1] ? p[1] : ' ', want);
			return -1;
		}
		found = true;
	}
	if (!found) {
		cfg_error(cp, cp->line, "%s: filter \"%s\" must contain %%%c", d->name, s, want);
		return -1;
	}
	set_string(cp, d, xstrdup(cp, s));
	return 0;
}

/*
 * A user or group name as the system tools accept it (useradd's
 * NAME_REGEX without the '$' of machine accounts): letters, digits, '_', '-',
 * '.', not starting with '-', at most 32 bytes.  Whether it exists is
 * config_check_files()'s business: the parser reads no system database.
 */
static int
d_account(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	const char *s = args[0];
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' || s[i] == '.'))
			break;
	if (s[i] != '\0' || i == 0 || i > 32 || s[0] == '-') {
		cfg_error(cp, cp->line, "%s: bad %s name \"%s\" (letters, digits, '_', '-', '.'; "
		    "at most 32)", d->name, d->name, s);
		return -1;
	}
	set_string(cp, d, xstrdup(cp, s));
	return 0;
}

/* The realm goes into a quoted-string of Proxy-Authenticate: keep it plain. */
static int
d_realm(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	if (strchr(args[0], '\\') != NULL) {
		cfg_error(cp, cp->line, "auth_realm: must not contain '\\'");
		return -1;
	}
	return d_string(cp, d, args, n);
}

static const struct {
	const char *name;
	int code;
} facilities[] = {
	{ "kern", 0 }, { "user", 1 }, { "mail", 2 }, { "daemon", 3 }, { "auth", 4 },
	{ "syslog", 5 }, { "lpr", 6 }, { "news", 7 }, { "uucp", 8 }, { "cron", 9 },
	{ "authpriv", 10 }, { "ftp", 11 },
	{ "local0", 16 }, { "local1", 17 }, { "local2", 18 }, { "local3", 19 },
	{ "local4", 20 }, { "local5", 21 }, { "local6", 22 }, { "local7", 23 },
};

static int
d_facility(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (strcmp(args[0], facilities[i].name) == 0) {
			cp->c->audit_facility = facilities[i].code;
			return 0;
		}
	cfg_error(cp, cp->line, "audit_facility: unknown facility \"%s\" (expected kern, "
	    "user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp or "
	    "local0-local7)", args[0]);
	return -1;
}

static int
d_tag(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	const char *s = args[0];
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			break;
	if (s[i] != '\0' || i > 32) {
		cfg_error(cp, cp->line, "audit_tag: bad tag \"%s\" (1-32 of A-Z a-z 0-9 . _ -)",
		    s);
		return -1;
	}
	set_string(cp, d, xstrdup(cp, s));
	return 0;
}

static int
d_on_failure(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	if (strcmp(args[0], "allow") == 0)
		cp->c->audit_on_failure_deny = false;
	else if (strcmp(args[0], "deny") == 0)
		cp->c->audit_on_failure_deny = true;
	else {
		cfg_error(cp, cp->line, "audit_on_failure: bad value \"%s\" (expected allow "
		    "or deny)", args[0]);
		return -1;
	}
	return 0;
}

/*
 * audit_relp HOST:PORT: where rsyslog's imrelp listens.  HOST is an address
 * literal ([...] for IPv6) or a DNS name; it is resolved when connecting, so
 * a central receiver may move without a restart of egressd.
 */
static int
d_relp(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	const char *s = args[0], *colon, *h, *he;
	char *host, *end;
	long port;
	size_t i;

	if (s[0] == '[') {
		he = strchr(s, ']');
		h = s + 1;
		colon = he != NULL && he[1] == ':' ? he + 1 : NULL;
	} else {
		colon = strrchr(s, ':');
		h = s;
		he = colon;
		if (colon != NULL && memchr(s, ':', (size_t)(colon - s)) != NULL)
			colon = NULL;   /* an IPv6 literal needs brackets */
	}
	if (colon == NULL || he == h) {
		cfg_error(cp, cp->line, "audit_relp: bad address \"%s\" (expected HOST:PORT or "
		    "[IPV6]:PORT)", s);
		return -1;
	}
	for (i = 0; h + i < he; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
		    (h[i] >= '0' && h[i] <= '9') || h[i] == '.' || h[i] == '-' ||
		    (h[i] == ':' && s[0] == '['))) {
			cfg_error(cp, cp->line, "audit_relp: bad host in \"%s\"", s);
			return -1;
		}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 || port < 1 ||
	    port > 65535) {
		cfg_error(cp, cp->line, "audit_relp: bad port in \"%s\" (1-65535)", s);
		return -1;
	}
	if ((host = xstrdup(cp, h)) == NULL)
		return -1;
	host[he - h] = '\0';
	free(cp->c->audit_relp_host);
	cp->c->audit_relp_host = host;
	cp->c->audit_relp_port = (int)port;
	return 0;
}

static int
d_metrics(struct cparse *cp, const struct directive *d, char **args, size_t n)
{
	struct config *c = cp->c;
	const char *err;

	if (netaddr_parse_hostport(args[0], &c->metrics_listen, &c->metrics_listen_len,
	    &err) == -1) {
		cfg_error(cp, cp->line, "metrics_listen: bad address \"%s\": %s", args[0], err);
		return -1;
	}
	c->has_metrics_listen = true;
	return 0;
}

#define OFF(f) offsetof(struct config, f)

/* Every key of INTERFACE.md's table, in its order. */
static const struct directive directives[] = {
	{ "listen", d_listen, D_REPEAT, 1, 3, 0, 0, 0 },
	{ "proxy_protocol_from", d_proxy_from, D_REPEAT, 1, 1, 0, 0, 0 },
	{ "tls_cert_file", d_path, 0, 1, 1, 0, 0, OFF(tls_cert_file) },
	{ "tls_key_file", d_path, 0, 1, 1, 0, 0, OFF(tls_key_file) },
	{ "tls_min_version", d_tls_version, 0, 1, 1, 0, 0, 0 },
	{ "auth_require_tls", d_yesno, 0, 1, 1, 0, 0, OFF(auth_require_tls) },
	{ "workers", d_workers, 0, 1, 1, 1, 256, OFF(workers) },
	{ "user", d_account, 0, 1, 1, 0, 0, OFF(user) },
	{ "group", d_account, 0, 1, 1, 0, 0, OFF(group) },
	{ "policy_file", d_policy_file, 0, 1, 1, 0, 0, 0 },
	{ "dns_hosts_file", d_path, 0, 1, 1, 0, 0, OFF(dns_hosts_file) },
	{ "dns_resolv_conf", d_path, 0, 1, 1, 0, 0, OFF(dns_resolv_conf) },
	{ "allow_internal", d_allow_internal, D_REPEAT, 1, 1, 0, 0, 0 },
	{ "auth", d_auth, 0, 1, 1, 0, 0, 0 },
	{ "ldap_uri", d_ldap_uri, 0, 1, CONFIG_LDAP_URI_MAX, 0, 0, 0 },
	{ "ldap_starttls", d_yesno, 0, 1, 1, 0, 0, OFF(ldap_starttls) },
	{ "ldap_bind_dn", d_string, D_RAW, 0, 0, 0, 0, OFF(ldap_bind_dn) },
	{ "ldap_bind_password_file", d_path, 0, 1, 1, 0, 0, OFF(ldap_bind_password_file) },
	{ "ldap_tls_ca_file", d_path, 0, 1, 1, 0, 0, OFF(ldap_tls_ca_file) },
	{ "ldap_user_base", d_string, D_RAW, 0, 0, 0, 0, OFF(ldap_user_base) },
	{ "ldap_user_filter", d_filter, D_RAW, 0, 0, 'u', 0, OFF(ldap_user_filter) },
	{ "ldap_group_base", d_string, D_RAW, 0, 0, 0, 0, OFF(ldap_group_base) },
	{ "ldap_group_filter", d_filter, D_RAW, 0, 0, 'd', 0, OFF(ldap_group_filter) },
	{ "ldap_group_attr", d_ldap_attr, 0, 1, 1, 0, 0, OFF(ldap_group_attr) },
	{ "ldap_user_attr", d_ldap_attr, 0, 1, 1, 0, 0, OFF(ldap_user_attr) },
	{ "ldap_timeout", d_int, 0, 1, 1, 1, 300, OFF(ldap_timeout) },
	{ "auth_realm", d_realm, D_RAW, 0, 0, 0, 0, OFF(auth_realm) },
	{ "auth_cache_ttl", d_int, 0, 1, 1, 0, 86400, OFF(auth_cache_ttl) },
	{ "auth_negative_ttl", d_int, 0, 1, 1, 0, 86400, OFF(auth_negative_ttl) },
	{ "auth_fail_per_client", d_int, 0, 1, 1, 0, 1000000, OFF(auth_fail_per_client) },
	{ "auth_fail_per_user", d_int, 0, 1, 1, 0, 1000000, OFF(auth_fail_per_user) },
	{ "audit_syslog_socket", d_socket_path, 0, 1, 1, 0, 0, OFF(audit_syslog_socket) },
	{ "audit_facility", d_facility, 0, 1, 1, 0, 0, 0 },
	{ "audit_tag", d_tag, 0, 1, 1, 0, 0, OFF(audit_tag) },
	{ "audit_relp", d_relp, 0, 1, 1, 0, 0, 0 },
	{ "audit_on_failure", d_on_failure, 0, 1, 1, 0, 0, 0 },
	{ "audit_stderr", d_yesno, 0, 1, 1, 0, 0, OFF(audit_stderr) },
	{ "admin_socket", d_socket_path, 0, 1, 1, 0, 0, OFF(admin_socket) },
	{ "metrics_listen", d_metrics, 0, 1, 1, 0, 0, 0 },
	{ "connect_timeout", d_int, 0, 1, 1, 1, 86400, OFF(connect_timeout) },
	{ "idle_timeout", d_int, 0, 1, 1, 1, 86400, OFF(idle_timeout) },
	{ "sni_timeout", d_int, 0, 1, 1, 1, 86400, OFF(sni_timeout) },
	{ "header_timeout", d_int, 0, 1, 1, 1, 86400, OFF(header_timeout) },
	{ "shutdown_grace", d_int, 0, 1, 1, 0, 86400, OFF(shutdown_grace) },
	{ "max_connections", d_int, 0, 1, 1, 1, 1000000, OFF(max_connections) },
};

#define NDIRECTIVES (sizeof(directives) / sizeof(directives[0]))

static const struct directive *
directive_find(const char *name, size_t *idx)
{
	size_t i;

	for (i = 0; i < NDIRECTIVES; i++)
		if (strcmp(directives[i].name, name) == 0) {
			*idx = i;
			return &directives[i];
		}
	return NULL;
}

/* ---- lines ------------------------------------------------------------- */

/*
 * A rest-of-line value starting at s (leading blanks already skipped):
 * "quoted" (quotes stripped, may hold '#') or bare up to a comment, trailing
 * blanks trimmed.  Writes the value in place and returns it, or NULL after
 * reporting.  No '"', tab or control character may be inside.
 */
static char *
raw_value(struct cparse *cp, const struct directive *d, char *s)
{
	char *end, *p;

	if (*s == '"') {
		s++;
		if ((end = strchr(s, '"')) == NULL) {
			cfg_error(cp, cp->line, "%s: missing closing '\"'", d->name);
			return NULL;
		}
		*end = '\0';
		for (p = end + 1; *p == ' ' || *p == '\t'; p++)
			;
		if (*p != '\0' && *p != '#') {
			cfg_error(cp, cp->line, "%s: unexpected text after the closing '\"'",
			    d->name);
			return NULL;
		}
	} else {
		for (p = s; *p != '\0'; p++)
			if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t'))
				break;
		*p = '\0';
		while (p > s && (p[-1] == ' ' || p[-1] == '\t'))
			*--p = '\0';
	}
	if (*s == '\0') {
		cfg_error(cp, cp->line, "missing value for \"%s\"", d->name);
		return NULL;
	}
	for (p = s; *p != '\0'; p++) {
		if (*p == '"') {
			cfg_error(cp, cp->line, "%s: value must not contain '\"'", d->name);
			return NULL;
		}
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			cfg_error(cp, cp->line, "%s: value must not contain control characters "
			    "(tab included)", d->name);
			return NULL;
		}
	}
	return s;
}

/* One line, NUL-terminated, without its LF (a CR before it is dropped here). */
static void
parse_line(struct cparse *cp, char *s, size_t len)
{
	const struct directive *d;
	char *args[CONFIG_FIELDS_MAX], *p, *key, *v;
	size_t nargs = 0, idx, i;

	if (len > 0 && s[len - 1] == '\r')
		s[--len] = '\0';
	for (i = 0; i < len; i++)
		if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f) {
			cfg_error(cp, cp->line, "control character 0x%02x in line",
			    (unsigned)(unsigned char)s[i]);
			return;
		}

	for (p = s; *p == ' ' || *p == '\t'; p++)
		;
	if (*p == '\0' || *p == '#')
		return;
	key = p;
	while (*p != '\0' && *p != ' ' && *p != '\t')
		p++;
	if (*p != '\0')
		*p++ = '\0';
	while (*p == ' ' || *p == '\t')
		p++;

	if ((d = directive_find(key, &idx)) == NULL) {
		cfg_error(cp, cp->line, "unknown key \"%s\"", key);
		return;
	}
	if (cp->first[idx] != 0 && !(d->flags & D_REPEAT)) {
		cfg_error(cp, cp->line, "\"%s\" given twice (first at line %zu)", d->name,
		    cp->first[idx]);
		return;
	}
	if (cp->first[idx] == 0)
		cp->first[idx] = cp->line;

	if (d->flags & D_RAW) {
		if ((v = raw_value(cp, d, p)) == NULL)
			return;
		args[0] = v;
		(void)d->fn(cp, d, args, 1);
		return;
	}

	while (*p != '\0' && *p != '#') {
		if (nargs == CONFIG_FIELDS_MAX) {
			cfg_error(cp, cp->line, "too many values for \"%s\"", d->name);
			return;
		}
		args[nargs++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
	}
	if (nargs < d->minargs) {
		cfg_error(cp, cp->line, "missing value for \"%s\"", d->name);
		return;
	}
	if (nargs > d->maxargs) {
		if (d->maxargs == 1)
			cfg_error(cp, cp->line, "too many values for \"%s\" (expected one)",
			    d->name);
		else
			cfg_error(cp, cp->line, "too many values for \"%s\" (at most %zu)",
			    d->name, d->maxargs);
		return;
	}
	(void)d->fn(cp, d, args, nargs);
}

static size_t
first_line(const struct cparse *cp, const char *name)
{
	size_t idx;

	return directive_find(name, &idx) != NULL ? cp->first[idx] : 0;
}

/* Checks that span several keys, after the whole file is read. */
static void
check_whole(struct cparse *cp)
{
	struct config *c = cp->c;
	size_t i, line;
	long n;

	if (c->nlisten == 0 && first_line(cp, "listen") == 0)
		cfg_error(cp, 0, "missing required key \"listen\" (at least one listen "
		    "address)");
	if (first_line(cp, "policy_file") == 0)
		cfg_error(cp, 0, "missing required key \"policy_file\"");
	if (c->auth == CONFIG_AUTH_LDAP) {
		line = first_line(cp, "auth");
		if (first_line(cp, "ldap_uri") == 0)
			cfg_error(cp, line, "auth ldap needs \"ldap_uri\"");
		if (first_line(cp, "ldap_user_base") == 0)
			cfg_error(cp, line, "auth ldap needs \"ldap_user_base\"");
	}
	/* A bind DN with an empty password is an unauthenticated bind: always "success". */
	if ((line = first_line(cp, "ldap_bind_dn")) != 0 &&
	    first_line(cp, "ldap_bind_password_file") == 0)
		cfg_error(cp, line, "ldap_bind_dn needs \"ldap_bind_password_file\"");
	if ((line = first_line(cp, "ldap_bind_password_file")) != 0 &&
	    first_line(cp, "ldap_bind_dn") == 0)
		cfg_error(cp, line, "ldap_bind_password_file needs \"ldap_bind_dn\"");
	/* A group alone would leave the daemon root with another group: say so. */
	if ((line = first_line(cp, "group")) != 0 && first_line(cp, "user") == 0)
		cfg_error(cp, line, "group needs \"user\"");
	/* A range with no PROXY listener to guard is a mistake about what is protected. */
	if ((line = first_line(cp, "proxy_protocol_from")) != 0) {
		for (i = 0; i < c->nlisten && !c->listen[i].proxy_protocol; i++)
			;
		if (i == c->nlisten)
			cfg_error(cp, line, "proxy_protocol_from: no listen address has "
			    "proxy_protocol");
	}
	/* A tls listener needs its pair; a pair without one is a forgotten flag. */
	for (i = 0; i < c->nlisten && !c->listen[i].tls; i++)
		;
	if (i < c->nlisten) {
		if (first_line(cp, "tls_cert_file") == 0)
			cfg_error(cp, c->listen[i].line, "listen %s tls needs \"tls_cert_file\"",
			    c->listen[i].text);
		if (first_line(cp, "tls_key_file") == 0)
			cfg_error(cp, c->listen[i].line, "listen %s tls needs \"tls_key_file\"",
			    c->listen[i].text);
	} else if ((line = first_line(cp, "tls_cert_file")) != 0 ||
	    (line = first_line(cp, "tls_key_file")) != 0)
		cfg_error(cp, line, "tls_cert_file/tls_key_file: no listen address has tls");
	if ((line = first_line(cp, "tls_cert_file")) != 0 && first_line(cp, "tls_key_file") == 0)
		cfg_error(cp, line, "tls_cert_file needs \"tls_key_file\"");
	if ((line = first_line(cp, "tls_key_file")) != 0 && first_line(cp, "tls_cert_file") == 0)
		cfg_error(cp, line, "tls_key_file needs \"tls_cert_file\"");
	if (c->has_metrics_listen)
		for (i = 0; i < c->nlisten; i++)
			if (netaddr_equal((struct sockaddr *)&c->listen[i].addr,
			    (struct sockaddr *)&c->metrics_listen))
				cfg_error(cp, first_line(cp, "metrics_listen"),
				    "metrics_listen: %s is also a listen address",
				    c->listen[i].text);
	if (cp->workers_auto) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		c->workers = n < 1 ? 1 : n > 256 ? 256 : (int)n;
	}
}

/* Defaults: every field the header documents with one. */
static int
config_defaults(struct config *c)
{
	c->workers = 1;                 /* replaced by "auto" below unless workers is given */
	c->auth = CONFIG_AUTH_NONE;
	c->ldap_starttls = false;
	c->ldap_timeout = 5;
	c->tls_min_version = 12;
	c->auth_cache_ttl = 300;
	c->auth_negative_ttl = 5;
	c->auth_fail_per_client = 20;
	c->auth_fail_per_user = 5;
	c->audit_facility = 21;         /* local5 */
	c->audit_on_failure_deny = false;
	c->connect_timeout = 10;
	c->idle_timeout = 300;
	c->sni_timeout = 10;
	c->header_timeout = 30;
	c->shutdown_grace = 30;
	c->max_connections = 20000;
	c->dns_hosts_file = strdup("/etc/hosts");
	c->dns_resolv_conf = strdup("/etc/resolv.conf");
	c->ldap_user_filter = strdup("(uid=%u)");
	c->ldap_group_filter = strdup("(member=%d)");
	c->ldap_group_attr = strdup("cn");
	c->auth_realm = strdup("egressd");
	c->audit_syslog_socket = strdup("/dev/log");
	c->audit_tag = strdup("egressd");
	if (c->dns_hosts_file == NULL || c->dns_resolv_conf == NULL ||
	    c->ldap_user_filter == NULL || c->ldap_group_filter == NULL ||
	    c->ldap_group_attr == NULL || c->auth_realm == NULL ||
	    c->audit_syslog_socket == NULL || c->audit_tag == NULL)
		return -1;
	return 0;
}

static char *
errors_take(struct cparse *cp)
{
	char *s;

	if (cp->oom) {
		free(cp->err);
		cp->err = NULL;
		if (asprintf(&s, "%s: out of memory\n", cp->path) == -1)
			return NULL;
		return s;
	}
	s = cp->err;
	cp->err = NULL;
	return s;
}

struct config *
config_load(const char *path, char **errors)
{
	struct cparse cp;
	struct stat st;
	const char *slash;
	char *line = NULL, *e;
	size_t cap = 0;
	ssize_t n;
	FILE *f;

	*errors = NULL;
	memset(&cp, 0, sizeof(cp));
	cp.path = path;
	cp.workers_auto = true;
	if ((cp.c = calloc(1, sizeof(*cp.c))) == NULL ||
	    (cp.first = calloc(NDIRECTIVES, sizeof(*cp.first))) == NULL ||
	    (cp.c->path = strdup(path)) == NULL || config_defaults(cp.c) == -1) {
		cp.oom = true;
		goto out;
	}
	slash = strrchr(path, '/');
	if ((cp.dir = strndup(path, slash != NULL ? (size_t)(slash - path) + 1 : 0)) == NULL) {
		cp.oom = true;
		goto out;
	}

	if ((f = fopen(path, "re")) == NULL) {
		cfg_error(&cp, 0, "cannot open: %s", strerror(errno));
		goto out;
	}
	if (fstat(fileno(f), &st) == -1 || !S_ISREG(st.st_mode)) {
		cfg_error(&cp, 0, "not a regular file");
		fclose(f);
		goto out;
	}
	while ((n = getline(&line, &cap, f)) != -1 && !cp.oom) {
		cp.line++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		/* Windows editors start files with an invisible UTF-8 BOM; it is
		 * not part of the first key. */
		if (cp.line == 1 && n >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
			memmove(line, line + 3, (size_t)n - 2);
			n -= 3;
		}
		if (memchr(line, '\0', (size_t)n) != NULL) {
			cfg_error(&cp, cp.line, "NUL byte in line (is this a text file?)");
			continue;
		}
		parse_line(&cp, line, (size_t)n);
	}
	if (ferror(f))
		cfg_error(&cp, 0, "read error: %s", strerror(errno));
	free(line);
	fclose(f);
	check_whole(&cp);

out:
	free(cp.dir);
	if (cp.c != NULL) {
		cp.c->key_lines = cp.first;     /* for config_line(); freed with the config */
		cp.first = NULL;
	}
	free(cp.first);
	if (cp.nerr > 0 || cp.oom) {
		config_free(cp.c);
		e = errors_take(&cp);
		*errors = e;
		return NULL;
	}
	free(cp.err);
	return cp.c;
}

void
config_free(struct config *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->path);
	free(c->policy_file);
	free(c->policy_path);
	free(c->dns_hosts_file);
	free(c->dns_resolv_conf);
	for (i = 0; i < c->nldap_uri; i++)
		free(c->ldap_uri[i]);
	free(c->ldap_bind_dn);
	free(c->ldap_bind_password_file);
	free(c->ldap_tls_ca_file);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	free(c->ldap_user_base);
	free(c->ldap_user_filter);
	free(c->ldap_group_base);
	free(c->ldap_group_filter);
	free(c->ldap_group_attr);
	free(c->ldap_user_attr);
	free(c->auth_realm);
	free(c->audit_syslog_socket);
	free(c->audit_tag);
	free(c->audit_relp_host);
	free(c->admin_socket);
	free(c->user);
	free(c->group);
	free(c->key_lines);
	free(c);
}

size_t
config_line(const struct config *c, const char *key)
{
	size_t idx;

	if (c->key_lines == NULL || directive_find(key, &idx) == NULL)
		return 0;
	return c->key_lines[idx];
}
