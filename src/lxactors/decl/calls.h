/* csrc/calls.c: hot handle members as plain functions (faster through cffi). */

const char *lxa_config_item(struct lxc_container *c, const char *key);
int lxa_spin_readable(int fd, long long spin_ns);
