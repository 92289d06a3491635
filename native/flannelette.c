// flannelette's native addon: system calls Node does not offer, through N-API
// (ABI-stable: built once against any Node's headers, it loads in the pinned Node 24).
// They return 0 or an errno (negative where a result is returned otherwise), never throw:
// callers decide.
//   flock(fd, op) -> errno            op: LOCK_EX | LOCK_SH | LOCK_UN, | LOCK_NB
//   flockWait(fd, op) -> Promise<errno>  the same on a libuv worker thread, for a lock
//                                        that may be held for long (the event loop runs on)
//   setns(fd, nstype) -> errno         moves the CALLING thread (Node's main thread) only
//   spawn(argv, envp) -> [pid, stdin, stdout, stderr] | -errno
//                                      posix_spawn (vfork: no copy of Node's page tables,
//                                      none of the copy-on-write faults a fork leaves in
//                                      Node's heap) with three pipes; argv[0] an absolute
//                                      path. The child starts in the caller's namespaces.
//   reap(pid) -> status | null | -errno   waitpid(WNOHANG): exit code or 128 + signal once
//                                      the child is gone, null while it runs
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <node_api.h>

static int int_arg(napi_env env, napi_value v, int *out) {
  int32_t n;
  if (napi_get_value_int32(env, v, &n) != napi_ok) return 0;
  *out = n;
  return 1;
}

static napi_value make_int(napi_env env, int n) {
  napi_value v;
  napi_create_int32(env, n, &v);
  return v;
}

// Two integer arguments; EINVAL (as a result) when they are not.
static int two_ints(napi_env env, napi_callback_info info, int *a, int *b) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return 0;
  return int_arg(env, argv[0], a) && int_arg(env, argv[1], b);
}

static int do_flock(int fd, int op) {
  int r;
  do r = flock(fd, op);
  while (r != 0 && errno == EINTR);
  return r == 0 ? 0 : errno;
}

static napi_value js_flock(napi_env env, napi_callback_info info) {
  int fd, op;
  if (!two_ints(env, info, &fd, &op)) return make_int(env, EINVAL);
  return make_int(env, do_flock(fd, op));
}

struct wait_job {
  int fd, op, result;
  napi_async_work work;
  napi_deferred deferred;
};

static void wait_execute(napi_env env, void *data) {
  (void)env;
  struct wait_job *job = data;
  job->result = do_flock(job->fd, job->op);
}

static void wait_complete(napi_env env, napi_status status, void *data) {
  struct wait_job *job = data;
  napi_resolve_deferred(env, job->deferred, make_int(env, status == napi_ok ? job->result : ECANCELED));
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value js_flock_wait(napi_env env, napi_callback_info info) {
  napi_value promise, name;
  struct wait_job *job = calloc(1, sizeof *job);
  if (!job) return NULL;
  napi_create_promise(env, &job->deferred, &promise);
  if (!two_ints(env, info, &job->fd, &job->op)) {
    napi_resolve_deferred(env, job->deferred, make_int(env, EINVAL));
    free(job);
    return promise;
  }
  napi_create_string_utf8(env, "flannelette:flock", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, wait_execute, wait_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

static napi_value js_setns(napi_env env, napi_callback_info info) {
  int fd, nstype;
  if (!two_ints(env, info, &fd, &nstype)) return make_int(env, EINVAL);
  return make_int(env, setns(fd, nstype) == 0 ? 0 : errno);
}

// A JS array of strings as a NULL-terminated C array (NULL on a bad argument).
static char **string_array(napi_env env, napi_value arr) {
  uint32_t n;
  if (napi_get_array_length(env, arr, &n) != napi_ok) return NULL;
  char **out = calloc(n + 1, sizeof *out);
  if (!out) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    size_t len;
    if (napi_get_element(env, arr, i, &v) != napi_ok || napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok ||
        !(out[i] = malloc(len + 1)) || napi_get_value_string_utf8(env, v, out[i], len + 1, &len) != napi_ok) {
      for (uint32_t j = 0; j <= i; j++) free(out[j]);
      free(out);
      return NULL;
    }
  }
  return out;
}

static void free_array(char **a) {
  if (!a) return;
  for (char **p = a; *p; p++) free(*p);
  free(a);
}

static napi_value js_spawn(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 2) return make_int(env, -EINVAL);
  char **argv = string_array(env, args[0]), **envp = string_array(env, args[1]);
  int err = !argv || !envp || !argv[0] ? EINVAL : 0;
  // Our ends keep O_CLOEXEC; the child's ends become its 0, 1 and 2 (dup2 clears it).
  int p[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  for (int i = 0; i < 3 && !err; i++)
    if (pipe2(p[i], O_CLOEXEC) != 0) err = errno;
  pid_t pid = 0;
  if (!err) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[0][0], 0);
    posix_spawn_file_actions_adddup2(&fa, p[1][1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[2][1], 2);
    // As libuv does for its children: no blocked signals, default dispositions (Node
    // ignores SIGPIPE, which ip must not inherit).
    posix_spawnattr_init(&at);
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    err = posix_spawn(&pid, argv[0], &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
  }
  free_array(argv);
  free_array(envp);
  int keep[3] = {p[0][1], p[1][0], p[2][0]};
  int give[3] = {p[0][0], p[1][1], p[2][1]};
  for (int i = 0; i < 3; i++) {
    if (give[i] >= 0) close(give[i]);
    if (err && keep[i] >= 0) close(keep[i]);
  }
  if (err) return make_int(env, -err);
  napi_value out;
  napi_create_array_with_length(env, 4, &out);
  napi_set_element(env, out, 0, make_int(env, pid));
  for (int i = 0; i < 3; i++) napi_set_element(env, out, i + 1, make_int(env, keep[i]));
  return out;
}

static napi_value js_reap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg, null;
  int pid, st;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) != napi_ok || argc < 1 || !int_arg(env, arg, &pid)) return make_int(env, -EINVAL);
  pid_t r;
  do r = waitpid(pid, &st, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r < 0) return make_int(env, -errno);
  if (r == 0) {
    napi_get_null(env, &null);
    return null;
  }
  return make_int(env, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static void set_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

static void set_int(napi_env env, napi_value exports, const char *name, int n) {
  napi_set_named_property(env, exports, name, make_int(env, n));
}

NAPI_MODULE_INIT() {
  set_fn(env, exports, "flock", js_flock);
  set_fn(env, exports, "flockWait", js_flock_wait);
  set_fn(env, exports, "setns", js_setns);
  set_fn(env, exports, "spawn", js_spawn);
  set_fn(env, exports, "reap", js_reap);
  set_int(env, exports, "LOCK_SH", LOCK_SH);
  set_int(env, exports, "LOCK_EX", LOCK_EX);
  set_int(env, exports, "LOCK_UN", LOCK_UN);
  set_int(env, exports, "LOCK_NB", LOCK_NB);
  set_int(env, exports, "CLONE_NEWNET", CLONE_NEWNET);
  set_int(env, exports, "EWOULDBLOCK", EWOULDBLOCK);
  return exports;
}
