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
