/* lxccontainer.h of LXC 5.0: every member of struct lxc_container and the
 * free functions.  API mode: field offsets come from the real header, so the
 * private fields are elided with "...". */

#define LXC_CLONE_KEEPNAME ...
#define LXC_CLONE_KEEPMACADDR ...
#define LXC_CLONE_SNAPSHOT ...
#define LXC_CLONE_KEEPBDEVTYPE ...
#define LXC_CLONE_MAYBE_SNAPSHOT ...
#define LXC_CLONE_ALLOW_RUNNING ...
#define LXC_CREATE_QUIET ...
#define LXC_MOUNT_API_V1 ...

struct lxc_mount {
    int version;
    ...;
};

struct lxc_snapshot {
    char *name;
    char *comment_pathname;
    char *timestamp;
    char *lxcpath;
    void (*free)(struct lxc_snapshot *s);
};

struct bdev_specs {
    char *fstype;
    uint64_t fssize;
    struct { char *zfsroot; } zfs;
    struct { char *vg; char *lv; char *thinpool; } lvm;
    char *dir;
    struct { char *rbdname; char *rbdpool; } rbd;
};

struct migrate_opts {
    char *directory;
    bool verbose;
    bool stop;
    char *predump_dir;
    char *pageserver_address;
    char *pageserver_port;
    bool preserves_inodes;
    char *action_script;
    bool disable_skip_in_flight;
    uint64_t ghost_limit;
    uint64_t features_to_check;
};

struct lxc_console_log {
    bool clear;
    bool read;
    uint64_t *read_max;
    char *data;
};

struct lxc_container {
    char *name;
    char *configfile;
    char *pidfile;
    int numthreads;
    char *error_string;
    int error_num;
    bool daemonize;
    char *config_path;

    bool (*is_defined)(struct lxc_container *c);
    const char *(*state)(struct lxc_container *c);
    bool (*is_running)(struct lxc_container *c);
    bool (*freeze)(struct lxc_container *c);
    bool (*unfreeze)(struct lxc_container *c);
    pid_t (*init_pid)(struct lxc_container *c);
    bool (*load_config)(struct lxc_container *c, const char *alt_file);
    bool (*start)(struct lxc_container *c, int useinit, char * const argv[]);
    bool (*startl)(struct lxc_container *c, int useinit, ...);
    bool (*stop)(struct lxc_container *c);
    bool (*want_daemonize)(struct lxc_container *c, bool state);
    bool (*want_close_all_fds)(struct lxc_container *c, bool state);
    char *(*config_file_name)(struct lxc_container *c);
    bool (*wait)(struct lxc_container *c, const char *state, int timeout);
    bool (*set_config_item)(struct lxc_container *c, const char *key, const char *value);
    bool (*destroy)(struct lxc_container *c);
    bool (*save_config)(struct lxc_container *c, const char *alt_file);
    bool (*create)(struct lxc_container *c, const char *t, const char *bdevtype,
                   struct bdev_specs *specs, int flags, char *const argv[]);
    bool (*createl)(struct lxc_container *c, const char *t, const char *bdevtype,
                    struct bdev_specs *specs, int flags, ...);
    bool (*rename)(struct lxc_container *c, const char *newname);
    bool (*reboot)(struct lxc_container *c);
    bool (*shutdown)(struct lxc_container *c, int timeout);
    void (*clear_config)(struct lxc_container *c);
    bool (*clear_config_item)(struct lxc_container *c, const char *key);
    int (*get_config_item)(struct lxc_container *c, const char *key, char *retv, int inlen);
    char *(*get_running_config_item)(struct lxc_container *c, const char *key);
    int (*get_keys)(struct lxc_container *c, const char *key, char *retv, int inlen);
    char **(*get_interfaces)(struct lxc_container *c);
    char **(*get_ips)(struct lxc_container *c, const char *interface, const char *family, int scope);
    int (*get_cgroup_item)(struct lxc_container *c, const char *subsys, char *retv, int inlen);
    bool (*set_cgroup_item)(struct lxc_container *c, const char *subsys, const char *value);
    const char *(*get_config_path)(struct lxc_container *c);
    bool (*set_config_path)(struct lxc_container *c, const char *path);
    struct lxc_container *(*clone)(struct lxc_container *c, const char *newname,
                                   const char *lxcpath, int flags, const char *bdevtype,
                                   const char *bdevdata, uint64_t newsize, char **hookargs);
    int (*console_getfd)(struct lxc_container *c, int *ttynum, int *ptxfd);
    int (*console)(struct lxc_container *c, int ttynum,
                   int stdinfd, int stdoutfd, int stderrfd, int escape);
    int (*attach)(struct lxc_container *c, lxc_attach_exec_t exec_function,
                  void *exec_payload, lxc_attach_options_t *options, pid_t *attached_process);
    int (*attach_run_wait)(struct lxc_container *c, lxc_attach_options_t *options,
                           const char *program, const char * const argv[]);
    int (*attach_run_waitl)(struct lxc_container *c, lxc_attach_options_t *options,
                            const char *program, const char *arg, ...);
    int (*snapshot)(struct lxc_container *c, const char *commentfile);
    int (*snapshot_list)(struct lxc_container *c, struct lxc_snapshot **snapshots);
    bool (*snapshot_restore)(struct lxc_container *c, const char *snapname, const char *newname);
    bool (*snapshot_destroy)(struct lxc_container *c, const char *snapname);
    bool (*may_control)(struct lxc_container *c);
    bool (*add_device_node)(struct lxc_container *c, const char *src_path, const char *dest_path);
    bool (*remove_device_node)(struct lxc_container *c, const char *src_path, const char *dest_path);
    bool (*attach_interface)(struct lxc_container *c, const char *dev, const char *dst_dev);
    bool (*detach_interface)(struct lxc_container *c, const char *dev, const char *dst_dev);
    bool (*checkpoint)(struct lxc_container *c, char *directory, bool stop, bool verbose);
    bool (*restore)(struct lxc_container *c, char *directory, bool verbose);
    bool (*destroy_with_snapshots)(struct lxc_container *c);
    bool (*snapshot_destroy_all)(struct lxc_container *c);
    int (*migrate)(struct lxc_container *c, unsigned int cmd, struct migrate_opts *opts, unsigned int size);
    int (*console_log)(struct lxc_container *c, struct lxc_console_log *log);
    bool (*reboot2)(struct lxc_container *c, int timeout);
    int (*mount)(struct lxc_container *c, const char *source, const char *target,
                 const char *filesystemtype, unsigned long mountflags, const void *data,
                 struct lxc_mount *mnt);
    int (*umount)(struct lxc_container *c, const char *target, unsigned long mountflags,
                  struct lxc_mount *mnt);
    int (*seccomp_notify_fd)(struct lxc_container *c);
    int (*seccomp_notify_fd_active)(struct lxc_container *c);
    int (*init_pidfd)(struct lxc_container *c);
    int (*devpts_fd)(struct lxc_container *c);
    ...;
};

struct lxc_log {
    const char *name;
    const char *lxcpath;
    const char *file;
    const char *level;
    const char *prefix;
    bool quiet;
};

struct lxc_container *lxc_container_new(const char *name, const char *configpath);
int lxc_container_get(struct lxc_container *c);
int lxc_container_put(struct lxc_container *c);
int lxc_get_wait_states(const char **states);
const char *lxc_get_global_config_item(const char *key);
const char *lxc_get_version(void);
int list_defined_containers(const char *lxcpath, char ***names, struct lxc_container ***cret);
int list_active_containers(const char *lxcpath, char ***names, struct lxc_container ***cret);
int list_all_containers(const char *lxcpath, char ***names, struct lxc_container ***cret);
int lxc_log_init(struct lxc_log *log);
void lxc_log_close(void);
bool lxc_config_item_is_supported(const char *key);
bool lxc_has_api_extension(const char *extension);

/* libc, for freeing what liblxc hands over */
void free(void *ptr);
