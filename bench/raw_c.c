/* The "raw C" side of the lxactors benchmark: liblxc called directly.
 *
 * Built by bench/run.py at run time (gcc -O2 raw_c.c -llxc) into a temporary
 * directory.  Every container is an overlay snapshot of a stopped base, in the
 * lxcpath given; nothing else on the host is touched.
 *
 *   raw_c spawn LXCPATH BASE PREFIX COUNT JOBS CONSOLE
 *       COUNT cycles of clone + start (RUNNING) [+ console answering] + stop
 *       + destroy, split over JOBS forked processes.  One line per cycle:
 *       "cycle RUNNING_MS CONSOLE_MS GONE_MS" (CONSOLE_MS is -1 without it).
 *   raw_c calls LXCPATH NAME ITERS
 *       ns per call of get_config_item("lxc.rootfs.path") and state().
 *   raw_c hold LXCPATH BASE PREFIX COUNT
 *       clone + start COUNT containers, print "ready", wait for a line on
 *       stdin, then stop + destroy them all and print "done".
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

/* Send "echo x-$((1+1))" to tty1's shell and wait for "x-2". */
static void console_answer(struct lxc_container *c)
{
	int tty = 1, ptx = -1;
	int keep = c->console_getfd(c, &tty, &ptx);
	if (keep < 0)
		die("console_getfd", c->name);
	const char cmd[] = "echo x-$((1+1))\n";
	if (write(ptx, cmd, sizeof(cmd) - 1) != (ssize_t)(sizeof(cmd) - 1))
		die("console write", c->name);
	char buf[8192];
	size_t have = 0;
	double deadline = now_ms() + 10000;
	for (;;) {
		struct pollfd p = {.fd = ptx, .events = POLLIN};
		int left = (int)(deadline - now_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0)
			die("console answer", c->name);
		ssize_t n = read(ptx, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			die("console read", c->name);
		have += (size_t)n;
		buf[have] = 0;
		if (memmem(buf, have, "x-2", 3))
			break;
		if (have > sizeof(buf) / 2) { /* keep the tail only */
			memmove(buf, buf + have - 8, 8);
			have = 8;
		}
	}
	close(ptx);
	close(keep);
}

static struct lxc_container *clone_start(struct lxc_container *base, const char *name,
					 const char *path)
{
	struct lxc_container *c = base->clone(base, name, path, LXC_CLONE_SNAPSHOT, "overlay",
					      NULL, 0, NULL);
	if (!c)
		die("clone", name);
	c->want_daemonize(c, true);
	if (!c->start(c, 0, NULL))
		die("start", name);
	if (!c->is_running(c))
		die("running", name);
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
		int len = snprintf(line, sizeof(line), "cycle %.3f %.3f %.3f\n", t1 - t0, tc, t3 - t2);
		if (write(1, line, (size_t)len) != len) /* one write: lines never mix */
			exit(1);
	}
	lxc_container_put(base);
}

static int cmd_spawn(char **argv)
{
	const char *path = argv[0], *base = argv[1], *prefix = argv[2];
	int count = atoi(argv[3]), jobs = atoi(argv[4]), console = atoi(argv[5]);
	if (jobs <= 1) {
		spawn_loop(path, base, prefix, 0, count, console);
		return 0;
	}
	for (int j = 0; j < jobs; j++) {
		int share = count / jobs + (j < count % jobs);
		pid_t pid = fork();
		if (pid < 0)
			die("fork", prefix);
		if (pid == 0) {
			spawn_loop(path, base, prefix, j, share, console);
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
	double t0 = now_ms();
	for (long i = 0; i < iters; i++)
		if (c->get_config_item(c, "lxc.rootfs.path", buf, sizeof(buf)) < 0)
			die("get_config_item", name);
	double t1 = now_ms();
	for (long i = 0; i < iters; i++)
		if (!c->state(c))
			die("state", name);
	double t2 = now_ms();
	printf("get_config_item %.1f\nstate %.1f\nstate_value %s\n", (t1 - t0) * 1e6 / iters,
	       (t2 - t1) * 1e6 / iters, c->state(c));
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
	for (int i = 0; i < count; i++) {
		char name[128];
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		cs[i] = clone_start(base, name, path);
	}
	printf("ready\n");
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof(line), stdin))
		line[0] = 0;
	for (int i = 0; i < count; i++)
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
	fprintf(stderr, "usage: raw_c spawn PATH BASE PREFIX COUNT JOBS CONSOLE | "
			"calls PATH NAME ITERS | hold PATH BASE PREFIX COUNT\n");
	return 2;
}
