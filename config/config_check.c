/*
 * config_check — what the files and folders a configuration names can tell
 * before the daemon starts.
 *
 * egressd -t promised "ok" for configurations that egressd -c then refused:
 * a bind secret readable by others, a CA file nobody can read, an admin
 * socket in a folder that does not exist.  The checks live here, once, and
 * egressd -t, egressd at start and egressctl check all run them, so the three
 * cannot drift apart.  Only stat() and access(): nothing is opened or read
 * (the secret itself is read by auth/ldap.c, which repeats its own checks).
 * What only binding can tell (an address in use) is not tried.
 */
#include "config/config.h"

#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where an LDAP client finds the system's CAs when ldap_tls_ca_file is absent. */
#define CHECK_DEFAULT_CA "/etc/ssl/certs/ca-certificates.crt"

struct checker {
	const struct config *c;
	char *buf;
	size_t len;
	FILE *f;
	int n;
};

static void problem(struct checker *, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "FILE:LINE: message" at the key's line, "FILE: message" for a default. */
static void
problem(struct checker *ck, const char *key, const char *fmt, ...)
{
	size_t line = config_line(ck->c, key);
	va_list ap;

	ck->n++;
	if (ck->f == NULL)
		return;
	if (line > 0)
		fprintf(ck->f, "%s:%zu: ", ck->c->path, line);
	else
		fprintf(ck->f, "%s: ", ck->c->path);
	va_start(ap, fmt);
	vfprintf(ck->f, fmt, ap);
	va_end(ap);
	fputc('\n', ck->f);
}

static void
check_readable(struct checker *ck, const char *key, const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1) {
		problem(ck, key, "%s %s: %s", key, path, strerror(errno));
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		problem(ck, key, "%s %s: is a folder, not a file", key, path);
		return;
	}
	if (access(path, R_OK) == -1)
		problem(ck, key, "%s %s: cannot be read: %s", key, path, strerror(errno));
}

/*
 * Who the daemon will be once it serves: `user` when it names one (root
 * switches to it), else whoever runs it.  A secret may belong to root or
 * to that user.
 */
static uid_t
daemon_uid(const struct config *c)
{
	struct passwd *pw;

	if (c->user != NULL && (pw = getpwnam(c->user)) != NULL)
		return pw->pw_uid;
	return getuid();
}

/* user and group must exist: the daemon could not switch to them otherwise. */
static void
check_accounts(struct checker *ck, const struct config *c)
{
	if (c->user != NULL && getpwnam(c->user) == NULL)
		problem(ck, "user", "user %s: no such user", c->user);
	if (c->group != NULL && getgrnam(c->group) == NULL)
		problem(ck, "group", "group %s: no such group", c->group);
}

/* The rules auth/ldap.c applies when it reads the secret (httpd check_file_secrecy). */
static void
check_secret(struct checker *ck, const char *key, const char *path)
{
	struct stat st;
	uid_t uid = daemon_uid(ck->c);

	if (stat(path, &st) == -1) {
		problem(ck, key, "%s %s: %s", key, path, strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		problem(ck, key, "%s %s: not a regular file", key, path);
		return;
	}
	if (st.st_uid != 0 && st.st_uid != uid)
		problem(ck, key, "%s %s: owned by uid %u, must be owned by root or uid %u", key,
		    path, (unsigned)st.st_uid, (unsigned)uid);
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		problem(ck, key, "%s %s: mode %04o gives group or others access (chmod 600)",
		    key, path, (unsigned)(st.st_mode & 07777));
	if (access(path, R_OK) == -1)
		problem(ck, key, "%s %s: cannot be read: %s", key, path, strerror(errno));
}

static bool
uses_tls(const struct config *c)
{
	size_t i;

	if (c->ldap_starttls)
		return true;
	for (i = 0; i < c->nldap_uri; i++)
		if (strncasecmp(c->ldap_uri[i], "ldaps://", 8) == 0)
			return true;
	return false;
}

static void
check_folder(struct checker *ck, const char *key, const char *path)
{
	struct stat st;
	char *copy, *dir;

	if ((copy = strdup(path)) == NULL) {
		problem(ck, key, "out of memory");
		return;
	}
	dir = dirname(copy);
	if (stat(dir, &st) == -1)
		problem(ck, key, "%s %s: its folder %s does not exist", key, path, dir);
	else if (!S_ISDIR(st.st_mode))
		problem(ck, key, "%s %s: %s is not a folder", key, path, dir);
	free(copy);
}

int
config_check_files(const struct config *c, char **errors)
{
	struct checker ck;

	memset(&ck, 0, sizeof(ck));
	ck.c = c;
	*errors = NULL;
	ck.f = open_memstream(&ck.buf, &ck.len);
	check_accounts(&ck, c);
	check_readable(&ck, "dns_hosts_file", c->dns_hosts_file);
	check_readable(&ck, "dns_resolv_conf", c->dns_resolv_conf);
	if (c->auth == CONFIG_AUTH_LDAP) {
		if (c->ldap_bind_dn != NULL && c->ldap_bind_password_file != NULL)
			check_secret(&ck, "ldap_bind_password_file", c->ldap_bind_password_file);
		if (c->ldap_tls_ca_file != NULL)
			check_readable(&ck, "ldap_tls_ca_file", c->ldap_tls_ca_file);
		else if (uses_tls(c))
			check_readable(&ck, "ldap_tls_ca_file", CHECK_DEFAULT_CA);
	}
	if (c->tls_key_file != NULL)
		check_secret(&ck, "tls_key_file", c->tls_key_file);
	if (c->tls_cert_file != NULL)
		check_readable(&ck, "tls_cert_file", c->tls_cert_file);
	if (c->admin_socket != NULL)
		check_folder(&ck, "admin_socket", c->admin_socket);
	if (ck.f != NULL && fclose(ck.f) != 0) {
		free(ck.buf);
		ck.buf = NULL;
	}
	if (ck.n == 0) {
		free(ck.buf);
		return 0;
	}
	*errors = ck.buf != NULL ? ck.buf : strdup("out of memory\n");
	return ck.n;
}
