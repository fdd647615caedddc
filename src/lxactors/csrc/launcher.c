/* The launcher: the helper's small C program that runs clone, start,
 * destroy and attach without forking a Python interpreter.
 *
 * The helper execs it once, as "lxa-launcher FD" (FD: its end of a
 * SOCK_SEQPACKET pair), so the launcher, each request's child and every
 * [lxc monitor] that child forks are copies of a small C process, not of
 * the Python helper's heap and page tables (a fork of the helper itself
 * cost a spawn ~6 ms and each monitor ~0.26 MB of private pages more).
 * setup.py links it against liblxc next to the helper's modules.
 * Ops: clone, start, clone_start (a spawn's clone and start), destroy,
 * attach (on the fds sent along; capture stays with the Python worker).
 * It says "ready" on its socket once it serves.  For each request it forks
 * a child that makes the liblxc call and writes one result line to the
 * pipe sent along: "ok PID" or "err" ("err clone": a clone_start's clone
 * failed, not its start); an attach writes "pid PID", then "exit STATUS".
 * liblxc moves the caller of a daemonized start into the monitor's cgroups:
 * the caller is the child, which exits at once; each reaped child is
 * reported to the helper ("reaped OP NAME"), which removes the monitor
 * cgroups a monitor that ended first could not.
 *
 * Request: one SOCK_SEQPACKET message of NUL-terminated fields (op first),
 * with the result pipe's write end by SCM_RIGHTS (and, for an attach, the
 * command's stdin, stdout and stderr after it).  Optional strings are ""
 * for NULL and "+value" otherwise; a malformed request is answered "err",
 * one for which no child is free "err busy".
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lxc/lxccontainer.h>
#include <lxc/attach_options.h>

#define LXA_MAX_FIELDS 1100
#define LXA_MAX_REQ (1 << 20)
#define LXA_MAX_CHILDREN 4096
#define LXA_RESERVED_CHILDREN 256  /* of them, not for attach */

static int lxa_sigpipe[2] = {-1, -1};

static void lxa_on_child(int sig)
{
	int saved = errno;
	(void)sig;
	if (write(lxa_sigpipe[1], "c", 1) < 0) { /* full: a wake-up is pending anyway */ }
	errno = saved;
}

static const char *lxa_opt(const char *s)
{
	return (s && s[0] == '+') ? s + 1 : NULL;
}

/* A number field: whole, in [lo, hi]; else 0 (the request is refused). */
static int lxa_num(const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	long long v;

	if (!s || !*s)
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return 0;
	*out = v;
	return 1;
}

/* A child's signals as a program's: the defaults and no mask, not the
 * launcher's handler, its ignored ^C, hangup and SIGPIPE, nor what whoever
 * started the user's process ignored (a shell's `&` ignores SIGQUIT); and a
 * session of its own, so the terminal's ^C reaches nothing it starts.
 * (lxactors/_helper/signals.py is the same for the helper's children.) */
static void lxa_default_signals(void)
{
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);  /* EINVAL for SIGKILL, SIGSTOP, libc's own */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
}

static void lxa_result(int fd, const char *text)
{
	size_t n = strlen(text);
	while (n > 0) {
		ssize_t w = write(fd, text, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		text += w;
		n -= (size_t)w;
	}
}

/* The handle of a request, as the helper's Python workers open it: the
 * on-disk config replaced by the client's snapshot if there is one, else the
 * client's log file set (liblxc's reasons for a failure go there). */
/* A request not run: "err" (or why) to its result pipe, and its fds closed. */
static void lxa_refuse(int result, const char *why, const int *std, int nstd)
{
	lxa_result(result, why);
	close(result);
	for (int i = 0; i < nstd; i++)
		close(std[i]);
}

static struct lxc_container *lxa_handle(const char *name, const char *path,
					const char *config, const char *logfile)
{
	struct lxc_container *c = lxc_container_new(name, path);
	if (!c)
		return NULL;
	if (config) {
		c->clear_config(c);
		if (!c->load_config(c, config)) {
			lxc_container_put(c);
			return NULL;
		}
	} else if (logfile) {
		c->set_config_item(c, "lxc.log.file", logfile);
	}
	return c;
}

static int lxa_do_start(char **f, int n)
{
	/* start name path +config +log useinit close_all_fds +PATH has_argv argv... */
	struct lxc_container *c;
	const char *path_env;
	char **argv = NULL;
	int useinit, ok, pid;

	if (n < 9)
		return -1;
	lxa_default_signals();  /* the terminal's ^C must not reach a start half done */
	path_env = lxa_opt(f[7]);
	if (path_env)
		setenv("PATH", path_env, 1);
	if (f[8][0] == '1')
		argv = &f[9];  /* NULL-terminated by the parser */
	c = lxa_handle(f[1], f[2], lxa_opt(f[3]), lxa_opt(f[4]));
	if (!c)
		return -1;
	useinit = f[5][0] == '1';
	c->want_close_all_fds(c, f[6][0] == '1');
	c->want_daemonize(c, true);
	ok = c->start(c, useinit, argv);
	pid = ok ? c->init_pid(c) : -1;
	lxc_container_put(c);
	return ok ? (pid > 0 ? pid : 0) : -1;
}

static int lxa_do_clone(char **f, int n)
{
	/* clone name path +config +log newname +lxcpath flags +bdevtype +bdevdata newsize */
	struct lxc_container *c, *c2;
	const char *logfile;
	char *cur;
	int len;
	long long flags, newsize;

	if (n < 11 || !lxa_num(f[7], 0, INT_MAX, &flags) || !lxa_num(f[10], 0, LLONG_MAX, &newsize))
		return -1;
	logfile = lxa_opt(f[4]);
	c = lxa_handle(f[1], f[2], lxa_opt(f[3]), logfile);
	if (!c)
		return -1;
	/* The clone writes the handle's in-memory config: without the client's
	 * log file in it (the new container's own handles set theirs), which
	 * this process logs to instead. */
	len = c->get_config_item(c, "lxc.log.file", NULL, 0);
	if (len > 0 && logfile) {
		cur = calloc(1, (size_t)len + 1);
		if (cur && c->get_config_item(c, "lxc.log.file", cur, len + 1) >= 0 &&
		    strcmp(cur, logfile) == 0) {
			struct lxc_log log = {.name = f[1], .lxcpath = f[2], .file = logfile,
					      .level = "ERROR", .prefix = "lxc", .quiet = true};
			c->clear_config_item(c, "lxc.log.file");
			lxc_log_init(&log);
		}
		free(cur);
	}
	c2 = c->clone(c, f[5], lxa_opt(f[6]), (int)flags, lxa_opt(f[8]), lxa_opt(f[9]),
		      (uint64_t)newsize, NULL);
	lxc_container_put(c);
	if (!c2)
		return -1;
	lxc_container_put(c2);
	return 0;
}

/* Clone the stopped container BASE as an overlay snapshot and start the
 * clone: a spawn's two requests in one, each config parsed once (the base's
 * from disk, the clone's by liblxc's clone).  A clone whose items or start
 * fail is destroyed: the caller gets a running container or none. */
static int lxa_do_clone_start(char **f, int n)
{
	/* clone_start name path +log base useinit close_all_fds +PATH nitems
	 * (key +value)... has_argv argv...  (an item without a value is cleared) */
	struct lxc_container *base, *c;
	const char *logfile, *path_env;
	char **argv = NULL;
	int nitems, ok, pid;
	long long count;

	if (n < 10 || !lxa_num(f[8], 0, (n - 10) / 2, &count))
		return -1;
	nitems = (int)count;
	lxa_default_signals();  /* as lxa_do_start */
	path_env = lxa_opt(f[7]);
	if (path_env)
		setenv("PATH", path_env, 1);
	if (f[9 + 2 * nitems][0] == '1')
		argv = &f[10 + 2 * nitems];
	logfile = lxa_opt(f[3]);
	if (logfile) {
		/* The clone's and the start's reasons (and init's exit status,
		 * which the monitor logs at INFO) go to the client's log; the
		 * base's config, which the clone copies, is left without it.  A
		 * level given here overrides every config's (liblxc's
		 * lxc_loglevel_specified): it is the items' own. */
		const char *level = "ERROR";
		for (int i = 0; i < nitems; i++)
			if (strcmp(f[9 + 2 * i], "lxc.log.level") == 0 && lxa_opt(f[10 + 2 * i]))
				level = lxa_opt(f[10 + 2 * i]);
		struct lxc_log log = {.name = f[1], .lxcpath = f[2], .file = logfile,
				      .level = level, .prefix = "lxc", .quiet = true};
		lxc_log_init(&log);
	}
	base = lxc_container_new(f[4], f[2]);
	if (!base)
		return -1;
	c = base->clone(base, f[1], f[2], LXC_CLONE_SNAPSHOT, "overlay", NULL, 0, NULL);
	lxc_container_put(base);
	if (!c)
		return -2;  /* "err clone" */
	ok = !logfile || c->set_config_item(c, "lxc.log.file", logfile);
	for (int i = 0; ok && i < nitems; i++) {
		const char *key = f[9 + 2 * i], *value = lxa_opt(f[10 + 2 * i]);
		ok = value ? c->set_config_item(c, key, value) : c->clear_config_item(c, key);
	}
	if (ok) {
		c->want_close_all_fds(c, f[6][0] == '1');
		c->want_daemonize(c, true);
		ok = c->start(c, f[5][0] == '1', argv);
	}
	pid = ok ? c->init_pid(c) : -1;
	if (!ok) {
		if (c->is_running(c))
			c->stop(c);
		c->destroy(c);
	}
	lxc_container_put(c);
	return ok ? (pid > 0 ? pid : 0) : -1;
}

static int lxa_do_destroy(char **f, int n)
{
	/* destroy|destroy_with_snapshots name path +config +log [+PATH] */
	struct lxc_container *c;
	const char *path_env;
	bool ok;

	if (n < 5)
		return -1;
	path_env = n > 5 ? lxa_opt(f[5]) : NULL;
	if (path_env)
		setenv("PATH", path_env, 1);
	c = lxa_handle(f[1], f[2], lxa_opt(f[3]), lxa_opt(f[4]));
	if (!c)
		return -1;
	ok = strcmp(f[0], "destroy") == 0 ? c->destroy(c) : c->destroy_with_snapshots(c);
	lxc_container_put(c);
	return ok ? 0 : -1;
}

/* The attached command has exec'd (or died) once the gate pipe's last
 * writer is gone: until then it is a fork of this child holding its fds. */
static void lxa_wait_exec(int gate)
{
	struct pollfd p = {.fd = gate, .events = POLLIN};
	while (poll(&p, 1, 10000) < 0 && errno == EINTR)
		;
	close(gate);
}

/* Run a command in the container on the three fds sent along (stdin,
 * stdout, stderr), as the helper's Python attach does without capture:
 * write "pid PID" once it runs its command, then "exit STATUS" (the raw
 * wait status).
 * The command gets the default signal dispositions, not the launcher's,
 * in a session of its own (as the Python worker's, see _helper/attach.py). */
static int lxa_do_attach(char **f, int n, int result, const int *std)
{
	/* attach name path +config +log flags namespaces +cwd uid gid clear_env
	 * nenv env... ngroups group... argv... */
	static const int ignored[] = {SIGHUP, SIGINT, SIGTERM, SIGPIPE};
	lxc_attach_options_t opts = LXC_ATTACH_OPTIONS_DEFAULT;
	lxc_attach_command_t cmd;
	struct lxc_container *c;
	static gid_t groups[LXA_MAX_FIELDS];
	char line[80];
	int i = 12, nenv, ngroups, gate[2], ret, status = 0;
	long long flags, ns, uid, gid, count;
	pid_t pid = -1;

	if (n < 14 || !lxa_num(f[5], 0, INT_MAX, &flags) || !lxa_num(f[6], -1, INT_MAX, &ns) ||
	    !lxa_num(f[8], -1, UINT32_MAX - 1, &uid) || !lxa_num(f[9], -1, UINT32_MAX - 1, &gid) ||
	    !lxa_num(f[11], 0, n - 14, &count))
		return -1;
	nenv = (int)count;
	char **env = &f[i];
	i += nenv;
	if (!lxa_num(f[i], -1, n - i - 2, &count))
		return -1;
	ngroups = (int)count;
	f[i++] = NULL;  /* ends env */
	for (int k = 0; k < ngroups; k++) {
		if (!lxa_num(f[i++], 0, UINT32_MAX - 1, &count))
			return -1;
		groups[k] = (gid_t)count;
	}
	lxa_default_signals();
	c = lxa_handle(f[1], f[2], lxa_opt(f[3]), lxa_opt(f[4]));
	if (!c)
		return -1;
	opts.attach_flags = LXC_ATTACH_DEFAULT | (int)flags;
	opts.namespaces = (int)ns;
	opts.personality = LXC_ATTACH_DETECT_PERSONALITY;
	opts.initial_cwd = (char *)lxa_opt(f[7]);
	opts.uid = (uid_t)uid;  /* -1: 0xFFFFFFFF, liblxc's "unset" */
	opts.gid = (gid_t)gid;
	opts.env_policy = f[10][0] == '1' ? LXC_ATTACH_CLEAR_ENV : LXC_ATTACH_KEEP_ENV;
	opts.extra_env_vars = nenv ? env : NULL;
	if (ngroups >= 0) {
		opts.groups.size = (size_t)ngroups;
		opts.groups.list = groups;
		opts.attach_flags |= LXC_ATTACH_SETGROUPS;
	}
	opts.log_fd = -EBADF;  /* no separate attach log */
	opts.stdin_fd = std[0];
	opts.stdout_fd = std[1];
	opts.stderr_fd = std[2];
	cmd.program = f[i];
	cmd.argv = &f[i];  /* NULL-terminated by the parser */
	if (pipe2(gate, O_CLOEXEC) < 0) {
		lxc_container_put(c);
		return -1;
	}
	ret = c->attach(c, lxc_attach_run_command, &cmd, &opts, &pid);
	close(gate[1]);
	/* The command has its own copies: its stdout's readers see end of
	 * file when it (and what it left running) closes them, not this child. */
	for (int k = 0; k < 3; k++)
		close(std[k]);
	lxc_container_put(c);
	if (ret < 0 || pid <= 0) {
		close(gate[0]);
		return -1;
	}
	/* The command has its dispositions; this waiter must outlive a helper
	 * that stopped reading (its lines then go nowhere) and reap it. */
	for (size_t k = 0; k < sizeof(ignored) / sizeof(ignored[0]); k++)
		signal(ignored[k], SIG_IGN);
	lxa_wait_exec(gate[0]);
	snprintf(line, sizeof(line), "pid %d\n", (int)pid);
	lxa_result(result, line);
	while ((ret = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (ret != pid)
		return -1;  /* "err" after "pid": the end is unknown */
	snprintf(line, sizeof(line), "exit %d\n", status);
	lxa_result(result, line);
	return 0;
}

static void lxa_child(int sock, int result, char **f, int n, const int *std, int nstd)
{
	char line[64];
	int value = -1;

	/* Not the launcher's handler: it would write to lxa_sigpipe's numbers,
	 * which liblxc may reuse for its own fds once they are closed here. */
	signal(SIGCHLD, SIG_DFL);
	close(sock);
	close(lxa_sigpipe[0]);
	close(lxa_sigpipe[1]);
	if (strcmp(f[0], "attach") == 0) {
		/* Its own lines ("pid", then "exit"); only a failure is said here. */
		if (nstd == 3 && lxa_do_attach(f, n, result, std) == 0)
			_exit(0);
		lxa_result(result, "err\n");
		_exit(1);
	}
	for (int i = 0; i < nstd; i++)
		close(std[i]);  /* only an attach's command gets fds */
	if (strcmp(f[0], "start") == 0)
		value = lxa_do_start(f, n);
	else if (strcmp(f[0], "clone") == 0)
		value = lxa_do_clone(f, n);
	else if (strcmp(f[0], "clone_start") == 0)
		value = lxa_do_clone_start(f, n);
	else if (strcmp(f[0], "destroy") == 0 || strcmp(f[0], "destroy_with_snapshots") == 0)
		value = lxa_do_destroy(f, n);
	if (value >= 0)
		snprintf(line, sizeof(line), "ok %d\n", value);
	else if (value == -2)
		snprintf(line, sizeof(line), "err clone\n");
	else
		snprintf(line, sizeof(line), "err\n");
	lxa_result(result, line);
	_exit(value >= 0 ? 0 : 1);
}

struct lxa_running {
	pid_t pid;
	char *what;  /* "OP NAME" */
};

static void lxa_reap(int sock, struct lxa_running *kids)
{
	pid_t pid;
	char msg[4200];

	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
		for (int i = 0; i < LXA_MAX_CHILDREN; i++) {
			if (kids[i].pid != pid)
				continue;
			int len = kids[i].what ? snprintf(msg, sizeof(msg), "reaped %s", kids[i].what) : -1;
			if (len > 0 && (size_t)len < sizeof(msg))
				(void)send(sock, msg, (size_t)len, MSG_NOSIGNAL);
			free(kids[i].what);
			kids[i].pid = 0;
			kids[i].what = NULL;
			break;
		}
	}
}

/* Serve the helper on sock until it closes; then exit (never returns). */
__attribute__((noreturn)) static void lxa_serve(int sock)
{
	static char buf[LXA_MAX_REQ + 1];
	static char *fields[LXA_MAX_FIELDS + 1];
	static struct lxa_running kids[LXA_MAX_CHILDREN];
	char cbuf[CMSG_SPACE(sizeof(int) * 8)];
	struct sigaction sa;

	if (pipe(lxa_sigpipe) < 0)
		_exit(3);
	for (int i = 0; i < 2; i++) {
		fcntl(lxa_sigpipe[i], F_SETFL, O_NONBLOCK);
		fcntl(lxa_sigpipe[i], F_SETFD, FD_CLOEXEC);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = lxa_on_child;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* The user's ^C and hangups are for the user's process; the helper
	 * closing the socket is what ends this one. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	if (send(sock, "ready", 5, MSG_NOSIGNAL) != 5)
		_exit(0);  /* the helper is gone */

	for (;;) {
		struct pollfd p[2] = {{.fd = sock, .events = POLLIN}, {.fd = lxa_sigpipe[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(4);
		}
		if (p[1].revents) {
			char drain[64];
			while (read(lxa_sigpipe[0], drain, sizeof(drain)) > 0)
				;
			lxa_reap(sock, kids);
		}
		if (!p[0].revents)
			continue;

		struct iovec iov = {.iov_base = buf, .iov_len = LXA_MAX_REQ};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
		ssize_t got = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			_exit(0);  /* the helper is gone */
		/* The result pipe, then (an attach's) stdin, stdout and stderr. */
		int result = -1, std[3], nstd = 0;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				int nfds = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				int *fds = (int *)CMSG_DATA(cm);
				for (int i = 0; i < nfds; i++) {
					if (result < 0)
						result = fds[i];
					else if (nstd < 3)
						std[nstd++] = fds[i];
					else
						close(fds[i]);
				}
			}
		}
		if (result < 0) {
			for (int i = 0; i < nstd; i++)
				close(std[i]);
			continue;
		}
		if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {  /* cut: never run part of one */
			lxa_refuse(result, "err\n", std, nstd);
			continue;
		}
		buf[got] = '\0';
		int n = 0;
		for (char *s = buf; s < buf + got && n < LXA_MAX_FIELDS; s += strlen(s) + 1)
			fields[n++] = s;
		fields[n] = NULL;
		if (n < 3) {
			lxa_refuse(result, "err\n", std, nstd);
			continue;
		}
		/* Attached commands may run for long: they leave room for starts. */
		int slot = -1, free_slots = 0;
		for (int i = 0; i < LXA_MAX_CHILDREN; i++) {
			if (kids[i].pid != 0)
				continue;
			if (slot < 0)
				slot = i;
			free_slots++;
		}
		if (strcmp(fields[0], "attach") == 0 && free_slots <= LXA_RESERVED_CHILDREN)
			slot = -1;
		pid_t pid = slot < 0 ? -1 : fork();
		if (pid == 0)
			lxa_child(sock, result, fields, n, std, nstd);
		if (pid < 0) {
			lxa_result(result, slot < 0 ? "err busy\n" : "err\n");
		} else {
			size_t len = strlen(fields[0]) + strlen(fields[1]) + 2;
			kids[slot].what = malloc(len);
			if (kids[slot].what)
				snprintf(kids[slot].what, len, "%s %s", fields[0], fields[1]);
			kids[slot].pid = pid;
		}
		close(result);
		for (int i = 0; i < nstd; i++)
			close(std[i]);
	}
}

int main(int argc, char **argv)
{
	char *end;
	long sock;

	if (argc != 2)
		return 2;
	errno = 0;
	sock = strtol(argv[1], &end, 10);
	if (errno || end == argv[1] || *end || sock < 3 || sock > 1 << 20)
		return 2;
	lxa_serve((int)sock);
}
