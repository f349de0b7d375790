/*
 * config — egressd.conf: one directive a line, "key value...", '#' comments.
 *
 * A table of directives ({name, handler, limits}) drives the parser.  Every
 * error is collected as "FILE:LINE: message" and parsing goes on, so an admin
 * sees all mistakes at once; a file with any error yields no configuration.
 * Relative paths are resolved against the folder of the configuration file.
 * The parser is pure (no sockets, no logging): egressd and egressctl both use it.
 */
#ifndef EGRESSD_GATEWAY_CONFIG_H
#define EGRESSD_GATEWAY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config/netaddr.h"

#define CONFIG_LISTEN_MAX 16
#define CONFIG_ALLOW_INTERNAL_MAX 64
#define CONFIG_LDAP_URI_MAX 8
#define CONFIG_PROXY_FROM_MAX 64

struct config_listen {
	struct sockaddr_storage addr;   /* address to bind */
	socklen_t addrlen;
	bool proxy_protocol;            /* expect a PROXY v1/v2 header first */
	bool tls;                       /* the client speaks TLS (after the PROXY header) */
	char text[64];                  /* as written, for logs */
	size_t line;                    /* where the configuration says it */
};

enum config_auth { CONFIG_AUTH_NONE, CONFIG_AUTH_LDAP };

struct config {
	char *path;                     /* the configuration file as given */
	struct config_listen listen[CONFIG_LISTEN_MAX];
	size_t nlisten;
	struct cidr proxy_protocol_from[CONFIG_PROXY_FROM_MAX]; /* none = PROXY headers from anyone */
	size_t nproxy_protocol_from;
	char *tls_cert_file;            /* resolved; PEM chain for tls listeners */
	char *tls_key_file;             /* resolved; secret-file rule */
	int tls_min_version;            /* 12 (default) or 13 */
	bool auth_require_tls;          /* credentials on a plain listener: 403 insecure_credentials */
	int workers;                    /* >= 1; "auto" (the default) = online CPUs, max 256 */
	char *user;                     /* started as root: switch to it (NULL = none) */
	char *group;                    /* with user: this group instead of the user's own */
	char *policy_file;              /* as written (rule references use this name) */
	char *policy_path;              /* resolved against the config file's folder */
	char *dns_hosts_file;           /* resolved; default /etc/hosts */
	char *dns_resolv_conf;          /* resolved; default /etc/resolv.conf */
	struct cidr allow_internal[CONFIG_ALLOW_INTERNAL_MAX];
	size_t nallow_internal;
	enum config_auth auth;          /* default none */
	char *ldap_uri[CONFIG_LDAP_URI_MAX];
	size_t nldap_uri;
	bool ldap_starttls;             /* default no */
	char *ldap_bind_dn;             /* NULL = anonymous search */
	char *ldap_bind_password_file;  /* resolved */
	char *ldap_tls_ca_file;         /* resolved; NULL = the system CA bundle (extension) */
	char *ldap_user_base;           /* required with auth ldap */
	char *ldap_user_filter;         /* default "(uid=%u)" */
	char *ldap_group_base;          /* NULL = no group search */
	char *ldap_group_filter;        /* default "(member=%d)" */
	char *ldap_group_attr;          /* default "cn" */
	char *ldap_user_attr;           /* holds the stored user name; NULL = from the filter (extension) */
	int ldap_timeout;               /* seconds, default 5 */
	char *auth_realm;               /* default "egressd" */
	int auth_cache_ttl;             /* seconds, default 300 */
	int auth_negative_ttl;          /* seconds, default 5 */
	int auth_fail_per_client;       /* failures a minute from one address, default 20, 0 = off */
	int auth_fail_per_user;         /* failures a minute for one user name, default 5, 0 = off */
	char *audit_syslog_socket;      /* resolved; default /dev/log */
	int audit_facility;             /* facility number (LOG_LOCAL5 >> 3 = 21, the default) */
	char *audit_tag;                /* default "egressd" */
	char *audit_relp_host;          /* audit_relp HOST (brackets removed); NULL = datagram socket */
	int audit_relp_port;            /* audit_relp PORT */
	bool audit_stderr;              /* also write records to stderr (extension) */
	bool audit_on_failure_deny;     /* audit_on_failure deny (default allow) */
	char *admin_socket;             /* resolved; NULL = none */
	bool has_metrics_listen;
	struct sockaddr_storage metrics_listen;
	socklen_t metrics_listen_len;
	int connect_timeout;            /* seconds, default 10 */
	int idle_timeout;               /* seconds, default 300 */
	int sni_timeout;                /* seconds, default 10 */
	int header_timeout;             /* seconds, default 30 */
	int shutdown_grace;             /* seconds, default 30 */
	int max_connections;            /* default 20000 */
	size_t *key_lines;              /* per directive: first line given on, 0 = never */
};

/*
 * Read and check the file at path.  Returns a configuration, or NULL with
 * *errors set to a malloc'd string of "FILE:LINE: message\n" lines (FILE as
 * given), which the caller frees.  Errors that belong to no line (the file
 * cannot be opened, a required key is missing) are "FILE: message".
 */
struct config *config_load(const char *path, char **errors);
void config_free(struct config *);

/* The line a key was first given on, 0 if it was not (a default applies). */
size_t config_line(const struct config *, const char *key);

/*
 * What would stop the daemon from starting that reading files and folders
 * can tell (binding cannot be tried here): the LDAP bind secret's type, owner
 * and mode, whether the TLS CA file, the hosts and resolver files can be
 * read, whether the admin socket's folder exists.  Not pure: stat() and
 * access() only, nothing is read.  egressd -t, egressd at start and
 * egressctl check all call it.  Returns the number of problems; *errors gets
 * "FILE:LINE: message\n" lines (malloc'd, NULL when there are none).
 */
int config_check_files(const struct config *, char **errors);

#endif
