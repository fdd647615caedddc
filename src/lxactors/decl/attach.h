/* attach_options.h of LXC 5.0: what lxactors' helper uses to run commands
 * inside a container.  API mode: cffi checks these against the real header. */

/* integer types whose exact size the compiler decides */
typedef int... pid_t;
typedef int... uid_t;
typedef int... gid_t;

typedef enum lxc_attach_env_policy_t {
    LXC_ATTACH_KEEP_ENV = 0,
    LXC_ATTACH_CLEAR_ENV = 1,
} lxc_attach_env_policy_t;

#define LXC_ATTACH_MOVE_TO_CGROUP ...
#define LXC_ATTACH_DROP_CAPABILITIES ...
#define LXC_ATTACH_SET_PERSONALITY ...
#define LXC_ATTACH_LSM_EXEC ...
#define LXC_ATTACH_REMOUNT_PROC_SYS ...
#define LXC_ATTACH_NO_NEW_PRIVS ...
#define LXC_ATTACH_TERMINAL ...
#define LXC_ATTACH_SETGROUPS ...
#define LXC_ATTACH_DEFAULT ...
#define LXC_ATTACH_DETECT_PERSONALITY ...

typedef int (*lxc_attach_exec_t)(void *payload);

typedef struct lxc_groups_t {
    size_t size;
    gid_t *list;
} lxc_groups_t;

typedef struct lxc_attach_options_t {
    int attach_flags;
    int namespaces;
    long personality;
    char *initial_cwd;
    uid_t uid;
    gid_t gid;
    lxc_attach_env_policy_t env_policy;
    char **extra_env_vars;
    char **extra_keep_env;
    int stdin_fd;
    int stdout_fd;
    int stderr_fd;
    int log_fd;
    char *lsm_label;
    lxc_groups_t groups;
} lxc_attach_options_t;

typedef struct lxc_attach_command_t {
    char *program;
    char **argv;
} lxc_attach_command_t;

int lxc_attach_run_command(void *payload);
int lxc_attach_run_shell(void *payload);
