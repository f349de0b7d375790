/*
 * ldap — one directory exchange, synchronously, on an auth thread: find the
 * user, bind as the user, read the groups.  Only auth.c calls it.
 */
#ifndef EGRESSD_AUTH_LDAP_H
#define EGRESSD_AUTH_LDAP_H

#include <stddef.h>

#include "auth/auth.h"

struct cache_ident;
struct auth_ldap;                   /* settings shared by every auth thread */
struct auth_ldap_conn;              /* one auth thread's two connections */

/*
 * Check (user, pass) against the directory: AUTH_OK with *ident (the stored
 * name and the groups), AUTH_FAILED (unknown user, wrong password, ambiguous
 * search) or AUTH_UNAVAILABLE (unreachable, timed out, misconfigured).
 * *ident is set only for AUTH_OK.  The exchange of the authenticator's pool;
 * tests substitute their own (auth_new_with_exchange).
 */
typedef enum auth_status auth_exchange_fn(void *arg, const char *user, size_t ulen,
    const char *pass, size_t plen, struct cache_ident **ident);

/* Copy and check the settings, read the bind password.  NULL with *err. */
struct auth_ldap *auth_ldap_new(const struct auth_config *, char **err);
void auth_ldap_free(struct auth_ldap *);

/* Per thread; connections are opened on first use and reopened after errors. */
struct auth_ldap_conn *auth_ldap_conn_new(struct auth_ldap *);
void auth_ldap_conn_free(struct auth_ldap_conn *);

/* An auth_exchange_fn; arg is the thread's struct auth_ldap_conn. */
enum auth_status auth_ldap_check(void *arg, const char *user, size_t ulen,
    const char *pass, size_t plen, struct cache_ident **ident);

/*
 * Tests: an authenticator whose threads call exchange(arg, ...) instead of
 * the directory.  The LDAP settings in the config are ignored.
 */
struct auth *auth_new_with_exchange(const struct auth_config *, auth_exchange_fn *,
    void *arg, char **err);

/* Copy s[0..len) into out (outsz > 0) printable: other bytes, '\\' and '"' as \xNN. */
char *auth_escape(const char *s, size_t len, char *out, size_t outsz);

#endif
