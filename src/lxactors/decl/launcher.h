/* The helper's launcher (csrc/launcher.c): serve clone/start/destroy
 * requests on a socket from a small C process; never returns. */

int lxa_launcher_serve(int sock);
