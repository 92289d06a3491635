// flannelette's native addon: system calls Node does not offer, through N-API
// (ABI-stable: built once against any Node's headers, it loads in the pinned Node 24).
// They return 0 or an errno (negative where a result is returned otherwise), never throw:
// callers decide.
//   flock(fd, op) -> errno            op: LOCK_EX | LOCK_SH | LOCK_UN, | LOCK_NB
//   flockWait(fd, op) -> Promise<errno>  the same on a thread of its own, for a lock
//                                        that may be held for long (the event loop runs on)
//   setns(fd, nstype) -> errno         moves the CALLING thread (Node's main thread) only
//   spawn(argv, envp) -> [pid, stdin, stdout, stderr] | -errno
//                                      posix_spawn (vfork: no copy of Node's page tables,
//                                      none of the copy-on-write faults a fork leaves in
//                                      Node's heap) with three pipes; argv[0] an absolute
//                                      path. The child starts in the caller's namespaces.
//   reap(pid) -> status | null | -errno   waitpid(WNOHANG): exit code or 128 + signal once
//                                      the child is gone, null while it runs
//   strerror(errno) -> string          the C library's text for an errno (as iproute2 prints it)
//   nlOpen(protocol) -> fd | -errno    a netlink socket (NETLINK_ROUTE: 0), bound, with extended
//                                      acks; it answers for the network namespace of the
//                                      thread that opened it, whichever thread uses it later
//   nlRequest(fd, msg) -> Buffer | -errno   sends one netlink message and returns every message
//                                      the kernel answers up to and including the one that ends
//                                      it (an error/ack, or the end of a dump)
//   nlRequestAsync(fd, msg) -> Promise<Buffer | -errno>   the same on a thread of its own, for
//                                      kernel work that takes milliseconds (creating or
//                                      deleting a veth) while the event loop runs on
//   exit(code)                         _exit(2): ends the process without Node's teardown
//                                      (joining V8's worker threads, which may be busy with a
//                                      background compile; static destructors). The plugins'
//                                      launcher calls it once process.exit has run its
//                                      'exit' listeners; everything we write is synchronous.
// The asynchronous calls do not use libuv's threadpool: its first use starts all its threads
// and waits until each has run, milliseconds on a busy machine (measured: 6-18 ms for the
// first request here), on the thread that should go on with IPAM.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <linux/netlink.h>
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

// One integer argument; 0 when there is none.
static int one_int(napi_env env, napi_callback_info info, int *a) {
  size_t argc = 1;
  napi_value arg;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) != napi_ok || argc < 1) return 0;
  return int_arg(env, arg, a);
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

// An asynchronous call: its work runs on a thread started for it (detached, all signals
// blocked), and its promise is settled on the main thread through one thread-safe function,
// which keeps the event loop alive only while calls are pending. Every job struct starts
// with this, so that the helpers below take any of them.
struct job {
  napi_deferred deferred;
  /** The work, on the job's thread. */
  void (*execute)(struct job *);
  /** On the main thread: the value to resolve with; frees what the job holds but not the job. */
  napi_value (*complete)(napi_env, struct job *);
};

// One per process: the plugins and the agent run in one Node environment (no worker_threads).
static napi_threadsafe_function done_fn;
static unsigned pending;

static void deliver(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)js_cb;
  (void)context;
  struct job *job = data;
  if (env) napi_resolve_deferred(env, job->deferred, job->complete(env, job));
  free(job);
  if (--pending == 0 && env) napi_unref_threadsafe_function(env, done_fn);
}

static void *run_job(void *arg) {
  struct job *job = arg;
  job->execute(job);
  napi_call_threadsafe_function(done_fn, job, napi_tsfn_blocking);
  return NULL;
}

// Starts `job` and returns its promise; when its arguments were bad (`bad` not NULL) the
// promise is resolved with `bad` at once and the job freed instead.
static napi_value start_job(napi_env env, struct job *job, napi_value bad) {
  napi_value promise;
  napi_create_promise(env, &job->deferred, &promise);
  if (!bad && !done_fn) {
    napi_value name;
    napi_create_string_utf8(env, "flannelette", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, deliver, &done_fn) != napi_ok) done_fn = NULL;
    else napi_unref_threadsafe_function(env, done_fn);
  }
  pthread_t t;
  pthread_attr_t at;
  sigset_t all, old;
  int started = 0;
  if (!bad && done_fn) {
    if (pending++ == 0) napi_ref_threadsafe_function(env, done_fn);
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); // the thread starts with every signal blocked
    started = pthread_create(&t, &at, run_job, job) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&at);
    if (!started && --pending == 0) napi_unref_threadsafe_function(env, done_fn);
  }
  if (!started) {
    // No thread to run it on: do the work here, still answering through the promise.
    if (!bad) job->execute(job);
    napi_resolve_deferred(env, job->deferred, bad ? bad : job->complete(env, job));
    free(job);
  }
  return promise;
}

struct wait_job {
  struct job base;
  int fd, op, result;
};

static void wait_execute(struct job *base) {
  struct wait_job *job = (struct wait_job *)base;
  job->result = do_flock(job->fd, job->op);
}

static napi_value wait_complete(napi_env env, struct job *base) {
  return make_int(env, ((struct wait_job *)base)->result);
}

static napi_value js_flock_wait(napi_env env, napi_callback_info info) {
  struct wait_job *job = calloc(1, sizeof *job);
  if (!job) return NULL;
  job->base.execute = wait_execute;
  job->base.complete = wait_complete;
  napi_value bad = two_ints(env, info, &job->fd, &job->op) ? NULL : make_int(env, EINVAL);
  return start_job(env, &job->base, bad);
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
  napi_value null;
  int pid, st;
  if (!one_int(env, info, &pid)) return make_int(env, -EINVAL);
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


// ---- netlink -------------------------------------------------------------------------

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

static napi_value js_strerror(napi_env env, napi_callback_info info) {
  napi_value out;
  int e = 0;
  if (!one_int(env, info, &e)) e = EINVAL;
  napi_create_string_utf8(env, strerror(e), NAPI_AUTO_LENGTH, &out);
  return out;
}

static napi_value js_nl_open(napi_env env, napi_callback_info info) {
  int proto;
  if (!one_int(env, info, &proto)) return make_int(env, -EINVAL);
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
  if (fd < 0) return make_int(env, -errno);
  int one = 1, big = 1 << 20;
  // Error messages from the kernel (extended acks), without the request echoed back.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  // Dumps filtered by the kernel (links of one kind, addresses of one link) on kernels
  // that can (4.20+); callers filter again, so older kernels answer the same.
  setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    close(fd);
    return make_int(env, -e);
  }
  return make_int(env, fd);
}

struct nl_reply {
  char *data;
  size_t len;
  int err; // an errno when sending or receiving failed
};

// Sends `msg` and collects the kernel's answer until a message ends it: NLMSG_ERROR (an
// ack or an error) or NLMSG_DONE with the request's sequence number. Other sequence
// numbers (a late answer to an earlier request) are dropped.
static void nl_transact(int fd, const char *msg, size_t len, struct nl_reply *out, char *rbuf, size_t rcap) {
  out->data = NULL;
  out->len = 0;
  out->err = 0;
  if (len < sizeof(struct nlmsghdr)) {
    out->err = EINVAL;
    return;
  }
  uint32_t seq = ((const struct nlmsghdr *)msg)->nlmsg_seq;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t r;
  do r = sendto(fd, msg, len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    out->err = errno;
    return;
  }
  // Received into the caller's buffer (no 128 KiB allocation, mapped and unmapped, per
  // request); what is kept is copied out, usually a few hundred bytes.
  size_t cap = 0;
  for (;;) {
    do r = recv(fd, rbuf, rcap, MSG_TRUNC);
    while (r < 0 && errno == EINTR);
    if (r < 0 || (size_t)r > rcap) {
      out->err = r < 0 ? errno : EMSGSIZE; // a datagram larger than any the kernel sends us
      return;
    }
    char *p = rbuf;
    size_t left = (size_t)r;
    int done = 0;
    while (left >= sizeof(struct nlmsghdr)) {
      struct nlmsghdr *h = (struct nlmsghdr *)p;
      if (h->nlmsg_len < sizeof *h || h->nlmsg_len > left) break;
      size_t step = NLMSG_ALIGN(h->nlmsg_len);
      if (step > left) step = left;
      // Keep messages of this request; stop after the one that ends it.
      if (h->nlmsg_seq == seq) {
        if (out->len + step > cap) {
          size_t want = cap ? cap * 2 : 4096;
          while (want < out->len + step) want *= 2;
          char *grown = realloc(out->data, want);
          if (!grown) {
            out->err = ENOMEM;
            return;
          }
          out->data = grown;
          cap = want;
        }
        memcpy(out->data + out->len, p, step);
        out->len += step;
        if (h->nlmsg_type == NLMSG_ERROR || h->nlmsg_type == NLMSG_DONE) done = 1;
      }
      p += step;
      left -= step;
      if (done) break;
    }
    if (done) return;
  }
}

static napi_value reply_value(napi_env env, struct nl_reply *rep) {
  if (rep->err) {
    free(rep->data);
    return make_int(env, -rep->err);
  }
  napi_value buf;
  void *dst;
  if (napi_create_buffer_copy(env, rep->len, rep->data ? rep->data : "", &dst, &buf) != napi_ok) buf = make_int(env, -ENOMEM);
  free(rep->data);
  return buf;
}

// fd and the message's bytes (copied: the caller's buffer may move or go).
static int nl_args(napi_env env, napi_callback_info info, int *fd, char **msg, size_t *len) {
  size_t argc = 2;
  napi_value argv[2];
  void *data;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || !int_arg(env, argv[0], fd)) return 0;
  if (napi_get_buffer_info(env, argv[1], &data, len) != napi_ok) return 0;
  *msg = malloc(*len ? *len : 1);
  if (!*msg) return 0;
  memcpy(*msg, data, *len);
  return 1;
}

/** Large enough for any datagram the kernel sends a netlink socket (32 KiB at most). */
#define RECV_BUF (64 * 1024)

static napi_value js_nl_request(napi_env env, napi_callback_info info) {
  // Only Node's main thread calls this: one static buffer, its pages touched only as far as
  // answers reach (a thread-local one would be allocated and zeroed whole).
  static char rbuf[RECV_BUF];
  int fd;
  char *msg;
  size_t len;
  if (!nl_args(env, info, &fd, &msg, &len)) return make_int(env, -EINVAL);
  struct nl_reply rep;
  nl_transact(fd, msg, len, &rep, rbuf, sizeof rbuf);
  free(msg);
  return reply_value(env, &rep);
}

struct nl_job {
  struct job base;
  int fd;
  char *msg;
  size_t len;
  struct nl_reply rep;
};

static void nl_execute(struct job *base) {
  struct nl_job *job = (struct nl_job *)base;
  char rbuf[RECV_BUF]; // on the job thread's stack
  nl_transact(job->fd, job->msg, job->len, &job->rep, rbuf, sizeof rbuf);
}

static napi_value nl_complete(napi_env env, struct job *base) {
  struct nl_job *job = (struct nl_job *)base;
  free(job->msg);
  return reply_value(env, &job->rep);
}

static napi_value js_nl_request_async(napi_env env, napi_callback_info info) {
  struct nl_job *job = calloc(1, sizeof *job);
  if (!job) return NULL;
  job->base.execute = nl_execute;
  job->base.complete = nl_complete;
  napi_value bad = nl_args(env, info, &job->fd, &job->msg, &job->len) ? NULL : make_int(env, -EINVAL);
  return start_job(env, &job->base, bad);
}

static napi_value js_exit(napi_env env, napi_callback_info info) {
  int code = 0;
  if (!one_int(env, info, &code)) code = 1;
  _exit(code & 0xff);
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
  set_fn(env, exports, "strerror", js_strerror);
  set_fn(env, exports, "nlOpen", js_nl_open);
  set_fn(env, exports, "nlRequest", js_nl_request);
  set_fn(env, exports, "nlRequestAsync", js_nl_request_async);
  set_fn(env, exports, "exit", js_exit);
  set_int(env, exports, "LOCK_SH", LOCK_SH);
  set_int(env, exports, "LOCK_EX", LOCK_EX);
  set_int(env, exports, "LOCK_UN", LOCK_UN);
  set_int(env, exports, "LOCK_NB", LOCK_NB);
  set_int(env, exports, "CLONE_NEWNET", CLONE_NEWNET);
  set_int(env, exports, "EWOULDBLOCK", EWOULDBLOCK);
  return exports;
}
