/*
 * privdrop — see privdrop.h for the order of the calls.
 *
 * The difficulty is threads.  The kernel keeps credentials and capabilities
 * per thread, and egressd has several before its secrets are read (the audit
 * writer, the LDAP threads).  glibc's setgroups/setresgid/setresuid signal
 * every thread to make the same call, and the kernel clears a thread's
 * capabilities when its last uid 0 goes, so the root case is whole once the
 * calls return; capset() has no such broadcast, which is why a process that
 * does not switch sheds its capabilities right after binding, while it is
 * still alone.  Either way privdrop_after_secrets() reads every thread's
 * /proc/self/task/TID/status and refuses to serve if one kept anything.
 *
 * PR_SET_NO_NEW_PRIVS is per thread but inherited: set first, before any
 * thread, it holds for all.  PR_SET_DUMPABLE is per process.
 */
#include "gateway/privdrop.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config/config.h"
#include "gateway/log.h"

struct privdrop {
	const struct config *conf;
	bool switch_user;               /* root now, the user after the secrets */
	char *name;                     /* the user's name (initgroups) */
	uid_t uid;
	gid_t gid;
	bool own_group;                 /* `group` given: that one group only */
	bool dropped;
};

static int privdrop_error(char **, const char *, ...) __attribute__((format(printf, 2, 3)));

static int
privdrop_error(char **err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) == -1)
		*err = NULL;
	va_end(ap);
	return -1;
}

/* "FILE:LINE" of a key (or "FILE"), for messages about it. */
static void
where(const struct config *c, const char *key, char *buf, size_t len)
{
	size_t line = config_line(c, key);

	if (line > 0)
		snprintf(buf, len, "%s:%zu", c->path, line);
	else
		snprintf(buf, len, "%s", c->path);
}

int
privdrop_harden(char **err)
{
	struct rlimit rl = { 0, 0 };

	*err = NULL;
	/* Nothing exec'd later (there is nothing to exec) may gain privileges. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		return privdrop_error(err, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
	/* No core file holding the LDAP password or a private key, and no
	 * ptrace or /proc/PID/mem by the unprivileged user after the switch. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		return privdrop_error(err, "prctl(PR_SET_DUMPABLE): %s", strerror(errno));
	/* Asked only when it is not 0 already: a unit's LimitCORE=0 makes the
	 * call needless, and its syscall filter may forbid it. */
	if (getrlimit(RLIMIT_CORE, &rl) == 0 && (rl.rlim_cur != 0 || rl.rlim_max != 0)) {
		rl.rlim_cur = rl.rlim_max = 0;
		if (setrlimit(RLIMIT_CORE, &rl) == -1)
			return privdrop_error(err, "setrlimit(RLIMIT_CORE): %s", strerror(errno));
	}
	return 0;
}

struct privdrop *
privdrop_prepare(const struct config *c, char **err)
{
	struct privdrop *pd;
	struct passwd *pw;
	struct group *gr;
	char at[512];

	*err = NULL;
	if ((pd = calloc(1, sizeof(*pd))) == NULL) {
		privdrop_error(err, "out of memory");
		return NULL;
	}
	pd->conf = c;
	pd->uid = geteuid();
	pd->gid = getegid();
	if (c->user == NULL) {
		if (geteuid() == 0)
			log_warnx("event=running-as-root config=%s: no \"user\" is set, so egressd "
			    "keeps every privilege of root while it serves; set \"user egressd\"",
			    c->path);
		return pd;
	}
	where(c, "user", at, sizeof(at));
	errno = 0;
	if ((pw = getpwnam(c->user)) == NULL) {
		privdrop_error(err, "%s: user %s: %s", at, c->user,
		    errno != 0 ? strerror(errno) : "no such user");
		goto fail;
	}
	if ((pd->name = strdup(pw->pw_name)) == NULL) {
		privdrop_error(err, "out of memory");
		goto fail;
	}
	pd->uid = pw->pw_uid;
	pd->gid = pw->pw_gid;
	if (c->group != NULL) {
		where(c, "group", at, sizeof(at));
		errno = 0;
		if ((gr = getgrnam(c->group)) == NULL) {
			privdrop_error(err, "%s: group %s: %s", at, c->group,
			    errno != 0 ? strerror(errno) : "no such group");
			goto fail;
		}
		pd->gid = gr->gr_gid;
		pd->own_group = true;
	}
	if (geteuid() == 0) {
		if (pd->uid == 0)
			log_warnx("event=running-as-root config=%s: \"user %s\" is root: egressd "
			    "keeps every privilege while it serves", c->path, c->user);
		else
			pd->switch_user = true;
		return pd;
	}
	/* Not root: nothing to switch to, only a claim to check. */
	if (pd->uid != getuid() || pd->uid != geteuid()) {
		privdrop_error(err, "%s: user %s: egressd runs as uid %u, not as %s (uid %u); "
		    "\"user\" must name the user it runs as, or be absent", at, c->user,
		    (unsigned)geteuid(), c->user, (unsigned)pd->uid);
		goto fail;
	}
	if (pd->own_group && pd->gid != getegid()) {
		where(c, "group", at, sizeof(at));
		privdrop_error(err, "%s: group %s: egressd runs with gid %u, not %s (gid %u), and "
		    "only root can switch", at, c->group, (unsigned)getegid(), c->group,
		    (unsigned)pd->gid);
		goto fail;
	}
	return pd;
fail:
	privdrop_free(pd);
	return NULL;
}

void
privdrop_free(struct privdrop *pd)
{
	if (pd == NULL)
		return;
	free(pd->name);
	free(pd);
}

bool
privdrop_switches(const struct privdrop *pd)
{
	return pd->switch_user;
}

uid_t
privdrop_uid(const struct privdrop *pd)
{
	return pd->uid;
}

/* Empty this thread's effective, permitted, inheritable and ambient sets. */
static int
shed_capabilities(char **err)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	/* EINVAL: a kernel before 4.3 has no ambient set, so nothing to clear. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == -1 && errno != EINVAL)
		return privdrop_error(err, "prctl(PR_CAP_AMBIENT_CLEAR_ALL): %s", strerror(errno));
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) == -1)
		return privdrop_error(err, "capset: %s", strerror(errno));
	return 0;
}

int
privdrop_after_bind(struct privdrop *pd, const char *admin_socket, char **err)
{
	*err = NULL;
	/*
	 * The socket was made 0660 by root; as the user's (and its group's) the
	 * daemon still owns what it serves and can remove it at exit, and
	 * members of the group may use egressctl.  lchown: never a link's target.
	 */
	if (admin_socket != NULL && pd->switch_user &&
	    lchown(admin_socket, pd->uid, pd->gid) == -1)
		return privdrop_error(err, "admin_socket %s: chown to %s: %s", admin_socket,
		    pd->name, strerror(errno));
	/* Root without a user to become stays root by the admin's choice (warned). */
	if (!pd->switch_user && geteuid() != 0)
		return shed_capabilities(err);
	return 0;
}

/* Pull one "Key:\tv1\tv2..." line's numbers (up to 4), hex for Cap*. */
static int
status_field(const char *text, const char *key, unsigned long long *v, int n, int base)
{
	const char *p;
	char *end;
	size_t klen = strlen(key);
	int i;

	for (p = text; p != NULL; p = strchr(p, '\n') != NULL ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, key, klen) != 0 || p[klen] != ':')
			continue;
		p += klen + 1;
		for (i = 0; i < n; i++) {
			errno = 0;
			v[i] = strtoull(p, &end, base);
			if (end == p || errno != 0)
				return -1;
			p = end;
		}
		return 0;
	}
	return -1;
}

/*
 * One thread's credentials as the kernel sees them: no capability, and
 * with ids (a switch) every uid and gid the user's.  1 if clean, 0 if not,
 * -1 unreadable.
 */
static int
task_clean(const char *tid, const struct privdrop *pd, bool ids, char *why, size_t whylen)
{
	char path[64], text[4096];
	unsigned long long uids[4], gids[4], eff, prm, amb;
	FILE *f;
	size_t n;
	int i;

	snprintf(path, sizeof(path), "/proc/self/task/%s/status", tid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	if (status_field(text, "Uid", uids, 4, 10) == -1 ||
	    status_field(text, "Gid", gids, 4, 10) == -1 ||
	    status_field(text, "CapEff", &eff, 1, 16) == -1 ||
	    status_field(text, "CapPrm", &prm, 1, 16) == -1)
		return -1;
	if (status_field(text, "CapAmb", &amb, 1, 16) == -1)
		amb = 0;                /* kernels before 4.3 */
	for (i = 0; ids && i < 4; i++)
		if (uids[i] != pd->uid || gids[i] != pd->gid) {
			snprintf(why, whylen, "thread %s has uids %llu %llu %llu %llu, gids %llu "
			    "%llu %llu %llu", tid, uids[0], uids[1], uids[2], uids[3], gids[0],
			    gids[1], gids[2], gids[3]);
			return 0;
		}
	if (eff != 0 || prm != 0 || amb != 0) {
		snprintf(why, whylen, "thread %s keeps capabilities (effective %llx, permitted "
		    "%llx, ambient %llx)", tid, eff, prm, amb);
		return 0;
	}
	return 1;
}

/* Every thread of the process, through /proc: the proof the switch is whole. */
static int
verify_threads(const struct privdrop *pd, char **err)
{
	struct dirent *de;
	char why[256];
	DIR *dir;
	int r, seen = 0;

	if ((dir = opendir("/proc/self/task")) == NULL) {
		log_warnx("event=privdrop-unverified reason=\"/proc/self/task: %s\"",
		    strerror(errno));
		return 0;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		r = task_clean(de->d_name, pd, pd->switch_user, why, sizeof(why));
		if (r == 0) {
			closedir(dir);
			return privdrop_error(err, "privilege drop incomplete: %s", why);
		}
		seen += r == 1;
	}
	closedir(dir);
	if (seen == 0)
		log_warnx("event=privdrop-unverified reason=\"/proc/self/task unreadable\"");
	return 0;
}

int
privdrop_after_secrets(struct privdrop *pd, char **err)
{
	gid_t g;

	*err = NULL;
	if (pd->switch_user) {
		if (pd->own_group) {
			g = pd->gid;
			if (setgroups(1, &g) == -1)
				return privdrop_error(err, "setgroups: %s", strerror(errno));
		} else if (initgroups(pd->name, pd->gid) == -1)
			return privdrop_error(err, "initgroups %s: %s", pd->name, strerror(errno));
		if (setresgid(pd->gid, pd->gid, pd->gid) == -1)
			return privdrop_error(err, "setresgid %u: %s", (unsigned)pd->gid,
			    strerror(errno));
		if (setresuid(pd->uid, pd->uid, pd->uid) == -1)
			return privdrop_error(err, "setresuid %u: %s", (unsigned)pd->uid,
			    strerror(errno));
		/* The ambient set is emptied by the kernel with the uid 0s; cleared
		 * again here for this thread in case an older kernel kept it. */
		(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	}
	pd->dropped = true;
	if (!pd->switch_user && geteuid() == 0)
		return 0;               /* root by choice (no user): warned at prepare */
	/* The way back must be closed. */
	if (setuid(0) == 0 || seteuid(0) == 0)
		return privdrop_error(err, "privilege drop incomplete: setuid(0) succeeded");
	if (pd->switch_user && (setgid(0) == 0 || setegid(0) == 0))
		return privdrop_error(err, "privilege drop incomplete: setgid(0) succeeded");
	if (verify_threads(pd, err) == -1)
		return -1;
	if (pd->switch_user)
		log_info("event=privdrop user=%s uid=%u gid=%u", pd->name, (unsigned)pd->uid,
		    (unsigned)pd->gid);
	/* Read as root at start, the policy is re-read as the user on reload:
	 * say now, not at the first reload, when that will fail. */
	if (pd->switch_user && access(pd->conf->policy_path, R_OK) == -1)
		log_warnx("event=policy-unreadable policy=%s user=%s: every reload will be refused "
		    "(%s); let %s read it", pd->conf->policy_file, pd->name, strerror(errno),
		    pd->name);
	return 0;
}
