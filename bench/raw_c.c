/* The "raw C" side of the lxactors benchmark: liblxc called directly.
 *
 * Built by bench/run.py at run time (gcc -O2 raw_c.c -llxc) into a temporary
 * directory.  Every container is an overlay snapshot of a stopped base, in the
 * lxcpath given; nothing else on the host is touched.
 *
 *   raw_c spawn LXCPATH BASE PREFIX PER_JOB JOBS CONSOLE
 *       In each of JOBS forked processes, PER_JOB cycles of clone + start
 *       (RUNNING) [+ console answering] + stop + destroy.  One line per
 *       cycle: "cycle JOB I RUNNING_MS CONSOLE_MS GONE_MS" (CONSOLE_MS is -1
 *       without the console).
 *   raw_c calls LXCPATH NAME ITERS
 *       ns per call of get_config_item("lxc.rootfs.path") and state().
 *   raw_c hold LXCPATH BASE PREFIX COUNT
 *       print "base" and wait for a line on stdin; clone + start COUNT
 *       containers (stopping at the first failure), print "ready STARTED"
 *       and wait for a line; then stop + destroy them all, print "done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <lxc/lxccontainer.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what, const char *name)
{
	fprintf(stderr, "raw_c: %s failed for %s\n", what, name);
	exit(1);
}

/* The console probe: wait for the prompt of tty1's shell (busybox ash ends it
 * with a cursor-position query, ESC [6n), answer the query as a terminal
 * would, type "echo x-$((1+1))" and wait for "x-2". */
static void console_answer(struct lxc_container *c)
{
	int tty = 1, ptx = -1;
	int keep = c->console_getfd(c, &tty, &ptx);
	if (keep < 0)
		die("console_getfd", c->name);
	static const char typed[] = "\x1b[1;1Recho x-$((1+1))\n";
	static char buf[65536];
	size_t have = 0;
	int state = 0; /* 0: waiting for the prompt, 1: typed */
	double deadline = now_ms() + 10000;
	for (;;) {
		struct pollfd p = {.fd = ptx, .events = POLLIN};
		int left = (int)(deadline - now_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0 || have >= sizeof(buf) - 1)
			die("console answer", c->name);
		ssize_t n = read(ptx, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			die("console read", c->name);
		have += (size_t)n;
		if (state == 0 && memmem(buf, have, "\x1b[6n", 4)) {
			if (write(ptx, typed, sizeof(typed) - 1) != (ssize_t)(sizeof(typed) - 1))
				die("console write", c->name);
			state = 1;
			have = 0;
		} else if (state == 1 && memmem(buf, have, "x-2", 3)) {
			break;
		}
	}
	close(ptx);
	close(keep);
}

/* Clone and start; NULL (and a message) on failure, nothing left behind. */
static struct lxc_container *try_clone_start(struct lxc_container *base, const char *name,
					     const char *path)
{
	struct lxc_container *c = base->clone(base, name, path, LXC_CLONE_SNAPSHOT, "overlay",
					      NULL, 0, NULL);
	if (!c) {
		fprintf(stderr, "raw_c: clone failed for %s\n", name);
		return NULL;
	}
	c->want_daemonize(c, true);
	if (!c->start(c, 0, NULL) || !c->is_running(c)) {
		fprintf(stderr, "raw_c: start failed for %s\n", name);
		c->stop(c);
		c->destroy(c);
		lxc_container_put(c);
		return NULL;
	}
	return c;
}

static struct lxc_container *clone_start(struct lxc_container *base, const char *name,
					 const char *path)
{
	struct lxc_container *c = try_clone_start(base, name, path);
	if (!c)
		exit(1);
	return c;
}

static void stop_destroy(struct lxc_container *c)
{
	if (!c->stop(c))
		die("stop", c->name);
	if (!c->destroy(c))
		die("destroy", c->name);
	lxc_container_put(c);
}

static void spawn_loop(const char *path, const char *basename, const char *prefix, int job,
		       int count, int console)
{
	struct lxc_container *base = lxc_container_new(basename, path);
	if (!base || !base->is_defined(base))
		die("open base", basename);
	for (int i = 0; i < count; i++) {
		char name[128];
		snprintf(name, sizeof(name), "%s%d-%d", prefix, job, i);
		double t0 = now_ms();
		struct lxc_container *c = clone_start(base, name, path);
		double t1 = now_ms();
		double tc = -1;
		if (console) {
			console_answer(c);
			tc = now_ms() - t1;
		}
		double t2 = now_ms();
		stop_destroy(c);
		double t3 = now_ms();
		char line[128];
		int len = snprintf(line, sizeof(line), "cycle %d %d %.3f %.3f %.3f\n", job, i, t1 - t0,
				   tc, t3 - t2);
		if (write(1, line, (size_t)len) != len) /* one write: lines never mix */
			exit(1);
	}
	lxc_container_put(base);
}

static int cmd_spawn(char **argv)
{
	const char *path = argv[0], *base = argv[1], *prefix = argv[2];
	int per_job = atoi(argv[3]), jobs = atoi(argv[4]), console = atoi(argv[5]);
	if (jobs <= 1) {
		spawn_loop(path, base, prefix, 0, per_job, console);
		return 0;
	}
	for (int j = 0; j < jobs; j++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork", prefix);
		if (pid == 0) {
			spawn_loop(path, base, prefix, j, per_job, console);
			_exit(0);
		}
	}
	int status, failed = 0;
	while (wait(&status) > 0)
		failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	return failed;
}

static int cmd_calls(char **argv)
{
	const char *path = argv[0], *name = argv[1];
	long iters = atol(argv[2]);
	struct lxc_container *c = lxc_container_new(name, path);
	if (!c || !c->is_defined(c))
		die("open", name);
	char buf[4096];
	/* The fastest of 5 blocks, as the Python workers measure. */
	long per = iters / 5 > 0 ? iters / 5 : 1;
	double best_item = 1e18, best_state = 1e18;
	for (int b = 0; b < 5; b++) {
		double t0 = now_ms();
		for (long i = 0; i < per; i++)
			if (c->get_config_item(c, "lxc.rootfs.path", buf, sizeof(buf)) < 0)
				die("get_config_item", name);
		double t1 = now_ms();
		for (long i = 0; i < per; i++)
			if (!c->state(c))
				die("state", name);
		double t2 = now_ms();
		if (t1 - t0 < best_item)
			best_item = t1 - t0;
		if (t2 - t1 < best_state)
			best_state = t2 - t1;
	}
	printf("get_config_item %.1f\nstate %.1f\nstate_value %s\n", best_item * 1e6 / per,
	       best_state * 1e6 / per, c->state(c));
	lxc_container_put(c);
	return 0;
}

static int cmd_hold(char **argv)
{
	const char *path = argv[0], *basename = argv[1], *prefix = argv[2];
	int count = atoi(argv[3]);
	struct lxc_container *base = lxc_container_new(basename, path);
	if (!base || !base->is_defined(base))
		die("open base", basename);
	struct lxc_container **cs = calloc((size_t)count, sizeof(*cs));
	char line[64];
	printf("base\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	int started = 0;
	for (; started < count; started++) {
		char name[128];
		snprintf(name, sizeof(name), "%s%d", prefix, started);
		cs[started] = try_clone_start(base, name, path);
		if (!cs[started])
			break;
	}
	printf("ready %d\n", started);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		line[0] = 0;
	for (int i = 0; i < started; i++)
		stop_destroy(cs[i]);
	free(cs);
	lxc_container_put(base);
	printf("done\n");
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 8 && !strcmp(argv[1], "spawn"))
		return cmd_spawn(argv + 2);
	if (argc == 5 && !strcmp(argv[1], "calls"))
		return cmd_calls(argv + 2);
	if (argc == 6 && !strcmp(argv[1], "hold"))
		return cmd_hold(argv + 2);
	fprintf(stderr, "usage: raw_c spawn PATH BASE PREFIX PER_JOB JOBS CONSOLE | "
			"calls PATH NAME ITERS | hold PATH BASE PREFIX COUNT\n");
	return 2;
}
