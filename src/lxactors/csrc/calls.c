/* Hot handle members as plain functions: cffi calls a library function in
 * a fraction of the time it takes to fetch a struct's function pointer and
 * call through it, and a value read into a thread's own buffer needs no
 * allocation and no lock (cffi releases the GIL during the call). */

#define LXA_ITEM_MAX 4096  /* per thread: a process may run hundreds of actor threads */

static __thread char lxa_item[LXA_ITEM_MAX];

/* The value of KEY in this thread's buffer; NULL for an unknown key or a
 * value too long for it (the caller asks liblxc for its length then). */
static const char *lxa_config_item(struct lxc_container *c, const char *key)
{
	int n = c->get_config_item(c, key, lxa_item, LXA_ITEM_MAX);
	if (n < 0 || n >= LXA_ITEM_MAX)
		return NULL;
	lxa_item[n] = '\0';  /* not every getter writes an empty value's NUL */
	return lxa_item;
}

/* Whether FD becomes readable within SPIN_NS, polled without sleeping and
 * yielding the CPU between polls: 1 if so, else 0.  In C, not Python, so
 * the GIL stays released the whole time (cffi) and a thread waiting for it
 * runs; the caller sleeps in Python's poll after (signals handled there). */
static int lxa_spin_readable(int fd, long long spin_ns)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	struct timespec now, end;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += (time_t)(spin_ns / 1000000000);
	end.tv_nsec += (long)(spin_ns % 1000000000);
	if (end.tv_nsec >= 1000000000) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000;
	}
	do {
		if (poll(&p, 1, 0) > 0)
			return 1;
		sched_yield();
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec < end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec < end.tv_nsec));
	return 0;
}
