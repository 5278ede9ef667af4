// oneDNN 2.x implementation of the CDNNLConv interface (see include/CDNNLConv.h).
//
// Design:
//  * One CPU engine and one stream for the whole process, created once
//    (pthread_once), because engines are costly and stateless for our use.
//  * Each pass (forward, backward data, backward weights) is a `conv_pass`: a
//    primitive descriptor created with format_tag_any memory descriptors, so
//    oneDNN picks its preferred (usually blocked, e.g. nChw8c / OIhw8i8o)
//    layouts, plus one `conv_arg` per tensor argument.
//  * A `conv_arg` pairs a plain user-layout memory object (no buffer; its data
//    handle is pointed at the caller's array on every call) with the memory the
//    primitive actually consumes. When the layouts agree they are the same
//    object; otherwise the wrapper owns an intermediate buffer in the
//    primitive's layout and a cached reorder primitive between the two.
//  * Scratchpads are in user mode. A pass's scratchpad and intermediate
//    buffers are views into one process-wide workspace (grown to the largest
//    pass, guarded by a mutex), pointed at it on each call: a network with
//    many convolution shapes keeps one pass's worth of blocked copies, not
//    one per shape and pass (for CondInst R-50 at 512x640 that was ~1.7 GB).
//    The library never allocates during execution.
//  * Backward passes are built lazily, using the forward descriptor as hint so
//    oneDNN picks layouts consistent with the forward pass.

// posix_memalign and pthread_once are POSIX, not ISO C; ask for them
// explicitly so the file also builds under a strict -std=c11.
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "CDNNLConv.h"

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------
// Process-wide engine and stream.

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t g_engine = NULL;
static dnnl_stream_t g_stream = NULL;
static dnnl_status_t g_init_status = dnnl_success;
static const char *g_init_what = "";

static void init_engine_once(void) {
  dnnl_status_t st = dnnl_engine_create(&g_engine, dnnl_cpu, 0);
  if (st != dnnl_success) {
    g_init_status = st;
    g_init_what = "dnnl_engine_create";
    g_engine = NULL;
    return;
  }
  st = dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags);
  if (st != dnnl_success) {
    g_init_status = st;
    g_init_what = "dnnl_stream_create";
    g_stream = NULL;
  }
}

// ---------------------------------------------------------------------------
// Object layout.

enum { PASS_FWD = 0, PASS_BWD_DATA = 1, PASS_BWD_WEIGHTS = 2, PASS_COUNT = 3 };
enum { MAX_ARGS = 4 };

// One tensor argument of one primitive.
typedef struct conv_arg {
  int arg;                  // DNNL_ARG_* id
  int is_output;            // reorder runs after (prim -> user) instead of before
  dnnl_memory_t user;       // plain layout, no owned buffer; handle set per call
  dnnl_memory_t prim;       // what the primitive reads/writes (== user when no reorder)
  dnnl_primitive_t reorder; // user <-> prim, NULL when layouts already agree
  size_t ws_offset;         // where `prim`'s buffer lies in the workspace (when reordered)
} conv_arg;

typedef struct conv_pass {
  int ready;
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t prim;
  conv_arg args[MAX_ARGS];
  int nargs;
  dnnl_memory_t scratch;    // user-mode scratchpad (a workspace view), or NULL
  size_t scratch_offset;    // where the scratchpad lies in the workspace
  size_t ws_size;           // workspace bytes this pass needs (intermediates + scratchpad)
  dnnl_exec_arg_t exec[MAX_ARGS + 1]; // prebuilt execute() argument list
  int nexec;
} conv_pass;

struct pd_conv {
  pd_conv_geometry g;
  int with_bias;
  dnnl_dims_t strides, dilates, pad_l, pad_r;
  // Plain layouts the caller uses.
  dnnl_memory_desc_t src_md, wei_md, bias_md, dst_md;
  // Same shapes with format_tag_any, so each primitive picks its own layout.
  dnnl_memory_desc_t src_any, wei_any, bias_any, dst_any;
  dnnl_primitive_attr_t attr;  // scratchpad_mode = user
  int fuse_relu;               // forward applies ReLU as a post-op
  dnnl_primitive_attr_t fwd_attr;  // attr plus the ReLU post-op (forward only), or NULL
  float *bias_sink;            // receives diff_bias when the caller passes NULL
  conv_pass pass[PASS_COUNT];
  char err[512];
};

static const char *const k_pass_name[PASS_COUNT] = {
    "forward", "backward_data", "backward_weights"};

// ---------------------------------------------------------------------------
// Errors.

static void set_err(pd_conv *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
}

// Records a failed oneDNN call as "<context>: <call> failed: <status name> (<code>)".
// Returns non-zero when `st` is a failure, so call sites read
// `if (check(...)) goto fail;`.
static int check(pd_conv *c, const char *context, dnnl_status_t st, const char *what) {
  if (st == dnnl_success) return 0;
  set_err(c, "%s: %s failed: %s (%d)", context, what, dnnl_status2str(st), (int)st);
  return 1;
}

// ---------------------------------------------------------------------------
// Pass construction.

// The process-wide workspace behind every pass's intermediate buffers and
// scratchpad. Passes run one at a time under the mutex (the stream is shared
// anyway), so one buffer the size of the largest pass serves them all.
static pthread_mutex_t g_ws_lock = PTHREAD_MUTEX_INITIALIZER;
static void *g_ws = NULL;
static size_t g_ws_size = 0;

// Rounds a workspace offset up to 64 bytes: oneDNN's JIT kernels prefer
// cache-line aligned buffers.
static size_t ws_align(size_t n) { return (n + 63) & ~(size_t)63; }

// Reserves `size` bytes of the pass's workspace share and returns its offset.
static size_t ws_reserve(conv_pass *p, size_t size) {
  size_t at = p->ws_size;
  p->ws_size = ws_align(at + size);
  return at;
}

// Grows the workspace to `size` bytes (caller holds g_ws_lock).
static int ws_ensure(pd_conv *c, const char *ctx, size_t size) {
  if (size <= g_ws_size) return 0;
  void *p = NULL;
  if (posix_memalign(&p, 64, size) != 0) {
    set_err(c, "%s: cannot allocate a %zu-byte convolution workspace", ctx, size);
    return 1;
  }
  free(g_ws);
  g_ws = p;
  g_ws_size = size;
  return 0;
}

// Adds argument `arg` to pass `p`: a plain user memory for `user_md`, and, if
// the primitive chose another layout, an owned intermediate memory plus a
// cached reorder in the direction given by `is_output`.
static int add_arg(pd_conv *c, const char *ctx, conv_pass *p, int arg,
                   const dnnl_memory_desc_t *user_md, int is_output) {
  conv_arg *a = &p->args[p->nargs++];
  a->arg = arg;
  a->is_output = is_output;

  const dnnl_memory_desc_t *prim_md =
      dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md, arg);
  if (prim_md == NULL) {
    set_err(c, "%s: dnnl_primitive_desc_query_md(exec_arg %d) returned NULL", ctx, arg);
    return 1;
  }
  if (check(c, ctx, dnnl_memory_create(&a->user, user_md, g_engine, DNNL_MEMORY_NONE),
            "dnnl_memory_create(user)"))
    return 1;

  if (dnnl_memory_desc_equal(user_md, prim_md)) {
    a->prim = a->user;  // caller's array is used in place
    return 0;
  }

  if (check(c, ctx, dnnl_memory_create(&a->prim, prim_md, g_engine, DNNL_MEMORY_NONE),
            "dnnl_memory_create(intermediate)"))
    return 1;
  a->ws_offset = ws_reserve(p, dnnl_memory_desc_get_size(prim_md));
  const dnnl_memory_desc_t *from = is_output ? prim_md : user_md;
  const dnnl_memory_desc_t *to = is_output ? user_md : prim_md;
  dnnl_primitive_desc_t rpd = NULL;
  if (check(c, ctx, dnnl_reorder_primitive_desc_create(&rpd, from, g_engine, to, g_engine, NULL),
            "dnnl_reorder_primitive_desc_create"))
    return 1;
  dnnl_status_t st = dnnl_primitive_create(&a->reorder, rpd);
  dnnl_primitive_desc_destroy(rpd);  // the primitive keeps its own copy
  return check(c, ctx, st, "dnnl_primitive_create(reorder)");
}

// Creates the primitive, its scratchpad view and the execute() argument list
// once `p->pd` and the arguments are in place.
static int finish_pass(pd_conv *c, const char *ctx, conv_pass *p) {
  if (check(c, ctx, dnnl_primitive_create(&p->prim, p->pd), "dnnl_primitive_create(convolution)"))
    return 1;

  p->nexec = 0;
  for (int i = 0; i < p->nargs; i++) {
    p->exec[p->nexec].arg = p->args[i].arg;
    p->exec[p->nexec].memory = p->args[i].prim;
    p->nexec++;
  }

  const dnnl_memory_desc_t *sp_md =
      dnnl_primitive_desc_query_md(p->pd, dnnl_query_scratchpad_md, 0);
  size_t sp_size = sp_md ? dnnl_memory_desc_get_size(sp_md) : 0;
  if (sp_size > 0) {
    if (check(c, ctx, dnnl_memory_create(&p->scratch, sp_md, g_engine, DNNL_MEMORY_NONE),
              "dnnl_memory_create(scratchpad)"))
      return 1;
    p->exec[p->nexec].arg = DNNL_ARG_SCRATCHPAD;
    p->exec[p->nexec].memory = p->scratch;
    p->nexec++;
    p->scratch_offset = ws_reserve(p, sp_size);
  }
  p->ready = 1;
  return 0;
}

static void destroy_pass(conv_pass *p) {
  for (int i = 0; i < p->nargs; i++) {
    conv_arg *a = &p->args[i];
    if (a->reorder) dnnl_primitive_destroy(a->reorder);
    if (a->prim && a->prim != a->user) dnnl_memory_destroy(a->prim);
    if (a->user) dnnl_memory_destroy(a->user);
  }
  if (p->scratch) dnnl_memory_destroy(p->scratch);
  if (p->prim) dnnl_primitive_destroy(p->prim);
  if (p->pd) dnnl_primitive_desc_destroy(p->pd);
  memset(p, 0, sizeof *p);
}

// oneDNN's own Winograd, asked for with PERCEP_DNNL_WINOGRAD=1, is measured against the project's
// Winograd (bench conv, bench lossnet); it is never the default. oneDNN 2.x implements it only with
// AVX-512 and only for dense stride-1 3x3 convolutions; where it declines, the pass stays direct.
static int dnnl_winograd_requested(const pd_conv *c) {
  static int requested = -1;
  if (requested < 0) {
    const char *v = getenv("PERCEP_DNNL_WINOGRAD");
    requested = v != NULL && strcmp(v, "1") == 0;
  }
  const pd_conv_geometry *g = &c->g;
  return requested && g->kh == 3 && g->kw == 3 && g->stride_h == 1 && g->stride_w == 1 &&
         g->dil_h == 1 && g->dil_w == 1 && g->groups == 1;
}

// Creates the forward primitive descriptor with `algorithm`; returns the oneDNN status.
static dnnl_status_t create_forward_pd(pd_conv *c, dnnl_alg_kind_t algorithm, const char **failed_call) {
  dnnl_convolution_desc_t d;
  // forward_training (not inference) so the pd can serve as hint for the backward passes.
  dnnl_status_t st = dnnl_dilated_convolution_forward_desc_init(
      &d, dnnl_forward_training, algorithm, &c->src_any, &c->wei_any,
      c->with_bias ? &c->bias_any : NULL, &c->dst_any, c->strides, c->dilates, c->pad_l, c->pad_r);
  if (st != dnnl_success) { *failed_call = "dnnl_dilated_convolution_forward_desc_init"; return st; }
  st = dnnl_primitive_desc_create(&c->pass[PASS_FWD].pd, &d, c->fwd_attr ? c->fwd_attr : c->attr, g_engine, NULL);
  if (st != dnnl_success) *failed_call = "dnnl_primitive_desc_create(convolution forward)";
  return st;
}

static int build_forward(pd_conv *c) {
  const char *ctx = "pd_conv_create(forward)", *failed_call = "";
  conv_pass *p = &c->pass[PASS_FWD];
  // Direct by default: Winograd needs AVX-512 in oneDNN 2.x, so "auto" would resolve to
  // direct on AVX2 anyway.
  if (!dnnl_winograd_requested(c) || create_forward_pd(c, dnnl_convolution_winograd, &failed_call) != dnnl_success) {
    dnnl_status_t st = create_forward_pd(c, dnnl_convolution_direct, &failed_call);
    if (check(c, ctx, st, failed_call)) return 1;
  }
  if (add_arg(c, ctx, p, DNNL_ARG_SRC, &c->src_md, 0)) return 1;
  if (add_arg(c, ctx, p, DNNL_ARG_WEIGHTS, &c->wei_md, 0)) return 1;
  if (c->with_bias && add_arg(c, ctx, p, DNNL_ARG_BIAS, &c->bias_md, 0)) return 1;
  if (add_arg(c, ctx, p, DNNL_ARG_DST, &c->dst_md, 1)) return 1;
  return finish_pass(c, ctx, p);
}

// Creates the backward-data primitive descriptor with `algorithm`, the forward pd as hint.
static dnnl_status_t create_backward_data_pd(pd_conv *c, dnnl_alg_kind_t algorithm, const char **failed_call) {
  dnnl_convolution_desc_t d;
  dnnl_status_t st = dnnl_dilated_convolution_backward_data_desc_init(
      &d, algorithm, &c->src_any, &c->wei_any, &c->dst_any, c->strides, c->dilates, c->pad_l, c->pad_r);
  if (st != dnnl_success) { *failed_call = "dnnl_dilated_convolution_backward_data_desc_init"; return st; }
  st = dnnl_primitive_desc_create(&c->pass[PASS_BWD_DATA].pd, &d, c->attr, g_engine, c->pass[PASS_FWD].pd);
  if (st != dnnl_success) *failed_call = "dnnl_primitive_desc_create(convolution backward data)";
  return st;
}

static int build_backward_data(pd_conv *c) {
  const char *ctx = "pd_conv_backward_data(create)", *failed_call = "";
  conv_pass *p = &c->pass[PASS_BWD_DATA];
  if (!dnnl_winograd_requested(c) || create_backward_data_pd(c, dnnl_convolution_winograd, &failed_call) != dnnl_success) {
    dnnl_status_t st = create_backward_data_pd(c, dnnl_convolution_direct, &failed_call);
    if (check(c, ctx, st, failed_call)) return 1;
  }
  if (add_arg(c, ctx, p, DNNL_ARG_DIFF_DST, &c->dst_md, 0)) return 1;
  if (add_arg(c, ctx, p, DNNL_ARG_WEIGHTS, &c->wei_md, 0)) return 1;
  if (add_arg(c, ctx, p, DNNL_ARG_DIFF_SRC, &c->src_md, 1)) return 1;
  return finish_pass(c, ctx, p);
}

static int build_backward_weights(pd_conv *c) {
  const char *ctx = "pd_conv_backward_weights(create)";
  conv_pass *p = &c->pass[PASS_BWD_WEIGHTS];
  dnnl_convolution_desc_t d;
  if (check(c, ctx,
            dnnl_dilated_convolution_backward_weights_desc_init(
                &d, dnnl_convolution_direct, &c->src_any, &c->wei_any,
                c->with_bias ? &c->bias_any : NULL, &c->dst_any, c->strides, c->dilates,
                c->pad_l, c->pad_r),
            "dnnl_dilated_convolution_backward_weights_desc_init"))
    return 1;
  if (check(c, ctx,
            dnnl_primitive_desc_create(&p->pd, &d, c->attr, g_engine, c->pass[PASS_FWD].pd),
            "dnnl_primitive_desc_create(convolution backward weights)"))
    return 1;
  if (add_arg(c, ctx, p, DNNL_ARG_SRC, &c->src_md, 0)) return 1;
  if (add_arg(c, ctx, p, DNNL_ARG_DIFF_DST, &c->dst_md, 0)) return 1;
  if (add_arg(c, ctx, p, DNNL_ARG_DIFF_WEIGHTS, &c->wei_md, 1)) return 1;
  if (c->with_bias && add_arg(c, ctx, p, DNNL_ARG_DIFF_BIAS, &c->bias_md, 1)) return 1;
  if (finish_pass(c, ctx, p)) return 1;
  if (c->with_bias && c->bias_sink == NULL) {
    c->bias_sink = malloc((size_t)c->g.c_out * sizeof(float));
    if (c->bias_sink == NULL) {
      set_err(c, "%s: cannot allocate diff_bias sink", ctx);
      return 1;
    }
  }
  return 0;
}

// Builds pass `which` if needed; on failure leaves it unbuilt (and retryable).
static int ensure_pass(pd_conv *c, int which) {
  if (c->pass[which].ready) return 0;
  int rc;
  switch (which) {
    case PASS_FWD: rc = build_forward(c); break;
    case PASS_BWD_DATA: rc = build_backward_data(c); break;
    default: rc = build_backward_weights(c); break;
  }
  if (rc) destroy_pass(&c->pass[which]);
  return rc;
}

// ---------------------------------------------------------------------------
// Execution.

static int run_pass_locked(pd_conv *c, int which, void *const *ptrs);

// Binds caller pointers (in argument order), runs input reorders, the
// convolution, output reorders, and waits for the stream.
static int run_pass(pd_conv *c, int which, void *const *ptrs) {
  pthread_mutex_lock(&g_ws_lock);
  int rc = run_pass_locked(c, which, ptrs);
  pthread_mutex_unlock(&g_ws_lock);
  return rc;
}

static int run_pass_locked(pd_conv *c, int which, void *const *ptrs) {
  const char *ctx = k_pass_name[which];
  conv_pass *p = &c->pass[which];
  if (ws_ensure(c, ctx, p->ws_size)) return 1;
  char *ws = (char *)g_ws;
  if (p->scratch &&
      check(c, ctx, dnnl_memory_set_data_handle(p->scratch, ws + p->scratch_offset),
            "dnnl_memory_set_data_handle(scratchpad)"))
    return 1;
  // Padded blocked layouts (channels rounded up to the block) need their padding
  // zeroed; oneDNN 2.x's set_data_handle does that on every rebind, which is what
  // makes sharing the buffer across shapes safe. Re-check this before moving to 3.x.
  for (int i = 0; i < p->nargs; i++) {
    conv_arg *a = &p->args[i];
    if (a->reorder &&
        check(c, ctx, dnnl_memory_set_data_handle(a->prim, ws + a->ws_offset),
              "dnnl_memory_set_data_handle(intermediate)"))
      return 1;
  }
  for (int i = 0; i < p->nargs; i++) {
    if (check(c, ctx, dnnl_memory_set_data_handle(p->args[i].user, ptrs[i]),
              "dnnl_memory_set_data_handle"))
      return 1;
  }
  for (int i = 0; i < p->nargs; i++) {
    conv_arg *a = &p->args[i];
    if (a->reorder && !a->is_output) {
      dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, a->user}, {DNNL_ARG_TO, a->prim}};
      if (check(c, ctx, dnnl_primitive_execute(a->reorder, g_stream, 2, ra),
                "dnnl_primitive_execute(input reorder)"))
        return 1;
    }
  }
  if (check(c, ctx, dnnl_primitive_execute(p->prim, g_stream, p->nexec, p->exec),
            "dnnl_primitive_execute(convolution)"))
    return 1;
  for (int i = 0; i < p->nargs; i++) {
    conv_arg *a = &p->args[i];
    if (a->reorder && a->is_output) {
      dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, a->prim}, {DNNL_ARG_TO, a->user}};
      if (check(c, ctx, dnnl_primitive_execute(a->reorder, g_stream, 2, ra),
                "dnnl_primitive_execute(output reorder)"))
        return 1;
    }
  }
  // CPU execution is synchronous in practice; waiting keeps the contract
  // "outputs are ready on return" explicit.
  return check(c, ctx, dnnl_stream_wait(g_stream), "dnnl_stream_wait");
}

// ---------------------------------------------------------------------------
// Public API.

static int geometry_error(const pd_conv_geometry *g, char *msg, size_t len) {
  if (g->n <= 0 || g->c_in <= 0 || g->h <= 0 || g->w <= 0 || g->c_out <= 0 || g->kh <= 0 ||
      g->kw <= 0) {
    snprintf(msg, len, "pd_conv_create: sizes must be positive");
    return 1;
  }
  if (g->stride_h <= 0 || g->stride_w <= 0 || g->dil_h <= 0 || g->dil_w <= 0 ||
      g->pad_h < 0 || g->pad_w < 0 || g->groups <= 0) {
    snprintf(msg, len, "pd_conv_create: need stride >= 1, dilation >= 1, padding >= 0, groups >= 1");
    return 1;
  }
  if (g->c_in % g->groups != 0 || g->c_out % g->groups != 0) {
    snprintf(msg, len, "pd_conv_create: C_in (%lld) and C_out (%lld) must be divisible by groups (%lld)",
             (long long)g->c_in, (long long)g->c_out, (long long)g->groups);
    return 1;
  }
  int64_t span_h = g->dil_h * (g->kh - 1) + 1, span_w = g->dil_w * (g->kw - 1) + 1;
  int64_t oh = g->h + 2 * g->pad_h - span_h, ow = g->w + 2 * g->pad_w - span_w;
  oh = oh < 0 ? 0 : oh / g->stride_h + 1;
  ow = ow < 0 ? 0 : ow / g->stride_w + 1;
  if (oh <= 0 || ow <= 0 || oh != g->out_h || ow != g->out_w) {
    snprintf(msg, len, "pd_conv_create: output size %lldx%lld given, PyTorch formula gives %lldx%lld",
             (long long)g->out_h, (long long)g->out_w, (long long)oh, (long long)ow);
    return 1;
  }
  return 0;
}

// A copy of `c->attr` with ReLU appended as a post-op: the forward pass writes max(conv, 0)
// directly, saving a separate pass over the output. Backward passes keep the plain attr.
static int make_relu_attr(pd_conv *c, const char *ctx) {
  dnnl_post_ops_t ops = NULL;
  int failed = check(c, ctx, dnnl_post_ops_create(&ops), "dnnl_post_ops_create") ||
               check(c, ctx, dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f),
                     "dnnl_post_ops_append_eltwise(relu)") ||
               check(c, ctx, dnnl_primitive_attr_clone(&c->fwd_attr, c->attr), "dnnl_primitive_attr_clone") ||
               check(c, ctx, dnnl_primitive_attr_set_post_ops(c->fwd_attr, ops), "dnnl_primitive_attr_set_post_ops");
  if (ops) dnnl_post_ops_destroy(ops);
  return failed;
}

pd_conv *pd_conv_create(const pd_conv_geometry *g, int with_bias, int fuse_relu, char *err, size_t err_len) {
  char local[256];
  if (err == NULL || err_len == 0) { err = local; err_len = sizeof local; }
  err[0] = '\0';
  if (g == NULL) {
    snprintf(err, err_len, "pd_conv_create: geometry is NULL");
    return NULL;
  }
  if (geometry_error(g, err, err_len)) return NULL;

  pthread_once(&g_once, init_engine_once);
  if (g_engine == NULL || g_stream == NULL) {
    snprintf(err, err_len, "pd_conv_create: %s failed: %s (%d)", g_init_what,
             dnnl_status2str(g_init_status), (int)g_init_status);
    return NULL;
  }

  pd_conv *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(err, err_len, "pd_conv_create: out of memory");
    return NULL;
  }
  c->g = *g;
  c->with_bias = with_bias != 0;
  c->fuse_relu = fuse_relu != 0;
  const char *ctx = "pd_conv_create";

  // oneDNN counts dilation as the number of skipped elements (0 = dense).
  c->strides[0] = g->stride_h;  c->strides[1] = g->stride_w;
  c->dilates[0] = g->dil_h - 1; c->dilates[1] = g->dil_w - 1;
  c->pad_l[0] = g->pad_h;       c->pad_l[1] = g->pad_w;
  // Right/bottom padding that makes the last window end exactly at the last
  // used input element. It is <= the left padding and may even be negative
  // (down to 1 - stride) when PyTorch's floor drops trailing input columns;
  // oneDNN accepts that and checks out == (in + pl + pr - span) / stride + 1.
  c->pad_r[0] = (g->out_h - 1) * g->stride_h + g->dil_h * (g->kh - 1) + 1 - g->h - g->pad_h;
  c->pad_r[1] = (g->out_w - 1) * g->stride_w + g->dil_w * (g->kw - 1) + 1 - g->w - g->pad_w;

  dnnl_dims_t src_dims = {g->n, g->c_in, g->h, g->w};
  dnnl_dims_t dst_dims = {g->n, g->c_out, g->out_h, g->out_w};
  dnnl_dims_t bias_dims = {g->c_out};
  // Grouped weights are 5-D [G, O/G, I/G, KH, KW] in oneDNN; in memory that is
  // exactly PyTorch's [O, I/G, KH, KW], so goihw maps onto the caller's array.
  dnnl_dims_t wei_dims = {g->groups, g->c_out / g->groups, g->c_in / g->groups, g->kh, g->kw};
  dnnl_dims_t wei_dims4 = {g->c_out, g->c_in, g->kh, g->kw};
  int grouped = g->groups > 1;
  const int64_t *wd = grouped ? wei_dims : wei_dims4;
  int wnd = grouped ? 5 : 4;
  dnnl_format_tag_t wtag = grouped ? dnnl_goihw : dnnl_oihw;

  if (check(c, ctx, dnnl_memory_desc_init_by_tag(&c->src_md, 4, src_dims, dnnl_f32, dnnl_nchw), "dnnl_memory_desc_init_by_tag(src)") ||
      check(c, ctx, dnnl_memory_desc_init_by_tag(&c->dst_md, 4, dst_dims, dnnl_f32, dnnl_nchw), "dnnl_memory_desc_init_by_tag(dst)") ||
      check(c, ctx, dnnl_memory_desc_init_by_tag(&c->wei_md, wnd, wd, dnnl_f32, wtag), "dnnl_memory_desc_init_by_tag(weights)") ||
      check(c, ctx, dnnl_memory_desc_init_by_tag(&c->bias_md, 1, bias_dims, dnnl_f32, dnnl_x), "dnnl_memory_desc_init_by_tag(bias)") ||
      check(c, ctx, dnnl_memory_desc_init_by_tag(&c->src_any, 4, src_dims, dnnl_f32, dnnl_format_tag_any), "dnnl_memory_desc_init_by_tag(src any)") ||
      check(c, ctx, dnnl_memory_desc_init_by_tag(&c->dst_any, 4, dst_dims, dnnl_f32, dnnl_format_tag_any), "dnnl_memory_desc_init_by_tag(dst any)") ||
      check(c, ctx, dnnl_memory_desc_init_by_tag(&c->wei_any, wnd, wd, dnnl_f32, dnnl_format_tag_any), "dnnl_memory_desc_init_by_tag(weights any)") ||
      check(c, ctx, dnnl_memory_desc_init_by_tag(&c->bias_any, 1, bias_dims, dnnl_f32, dnnl_format_tag_any), "dnnl_memory_desc_init_by_tag(bias any)") ||
      // User-mode scratchpad: we own one buffer instead of oneDNN allocating
      // (or sharing a global one) on each execution.
      check(c, ctx, dnnl_primitive_attr_create(&c->attr), "dnnl_primitive_attr_create") ||
      check(c, ctx, dnnl_primitive_attr_set_scratchpad_mode(c->attr, dnnl_scratchpad_mode_user), "dnnl_primitive_attr_set_scratchpad_mode") ||
      // Full float32 whatever the process default is: ONEDNN_DEFAULT_FPMATH_MODE=BF16 (or
      // dnnl_set_default_fpmath_mode) lets oneDNN round f32 operands to bfloat16 (8 significant
      // bits) on CPUs that have bf16 instructions, which no gradient here can afford.
      check(c, ctx, dnnl_primitive_attr_set_fpmath_mode(c->attr, dnnl_fpmath_mode_strict), "dnnl_primitive_attr_set_fpmath_mode") ||
      (c->fuse_relu && make_relu_attr(c, ctx)) ||
      ensure_pass(c, PASS_FWD)) {
    snprintf(err, err_len, "%s", c->err);
    pd_conv_destroy(c);
    return NULL;
  }
  return c;
}

int pd_conv_forward(pd_conv *c, const float *src, const float *weight, const float *bias, float *dst) {
  if (c == NULL) return -1;
  c->err[0] = '\0';
  if (src == NULL || weight == NULL || dst == NULL) {
    set_err(c, "forward: src, weight and dst must not be NULL");
    return -1;
  }
  if (c->with_bias != (bias != NULL)) {
    set_err(c, c->with_bias ? "forward: bias is NULL but the convolution was created with bias"
                            : "forward: bias given but the convolution was created without bias");
    return -1;
  }
  if (ensure_pass(c, PASS_FWD)) return -1;
  // Order matches build_forward's add_arg calls.
  void *ptrs[MAX_ARGS];
  int k = 0;
  ptrs[k++] = (void *)src;     // read-only: only reorders/conv read it
  ptrs[k++] = (void *)weight;
  if (c->with_bias) ptrs[k++] = (void *)bias;
  ptrs[k++] = dst;
  return run_pass(c, PASS_FWD, ptrs) ? -1 : 0;
}

int pd_conv_backward_data(pd_conv *c, const float *diff_dst, const float *weight, float *diff_src) {
  if (c == NULL) return -1;
  c->err[0] = '\0';
  if (diff_dst == NULL || weight == NULL || diff_src == NULL) {
    set_err(c, "backward_data: diff_dst, weight and diff_src must not be NULL");
    return -1;
  }
  if (ensure_pass(c, PASS_BWD_DATA)) return -1;
  void *ptrs[MAX_ARGS] = {(void *)diff_dst, (void *)weight, diff_src};
  return run_pass(c, PASS_BWD_DATA, ptrs) ? -1 : 0;
}

int pd_conv_backward_weights(pd_conv *c, const float *src, const float *diff_dst, float *diff_weight,
                             float *diff_bias) {
  if (c == NULL) return -1;
  c->err[0] = '\0';
  if (src == NULL || diff_dst == NULL || diff_weight == NULL) {
    set_err(c, "backward_weights: src, diff_dst and diff_weight must not be NULL");
    return -1;
  }
  if (!c->with_bias && diff_bias != NULL) {
    set_err(c, "backward_weights: diff_bias given but the convolution was created without bias");
    return -1;
  }
  if (ensure_pass(c, PASS_BWD_WEIGHTS)) return -1;
  void *ptrs[MAX_ARGS];
  int k = 0;
  ptrs[k++] = (void *)src;
  ptrs[k++] = (void *)diff_dst;
  ptrs[k++] = diff_weight;
  // The primitive always computes diff_bias when created with bias; a NULL
  // request lands in an internal sink instead of costing a second primitive.
  if (c->with_bias) ptrs[k++] = diff_bias ? diff_bias : c->bias_sink;
  return run_pass(c, PASS_BWD_WEIGHTS, ptrs) ? -1 : 0;
}

const char *pd_conv_impl_name(pd_conv *c, int which) {
  if (c == NULL) return NULL;
  if (which < 0 || which >= PASS_COUNT) {
    set_err(c, "pd_conv_impl_name: which must be 0, 1 or 2 (got %d)", which);
    return NULL;
  }
  if (ensure_pass(c, which)) return NULL;
  const char *name = NULL;
  if (check(c, "pd_conv_impl_name",
            dnnl_primitive_desc_query(c->pass[which].pd, dnnl_query_impl_info_str, 0, &name),
            "dnnl_primitive_desc_query(impl_info_str)"))
    return NULL;
  return name;  // owned by the primitive descriptor, which lives as long as c
}

int pd_conv_is_strict_f32(pd_conv *c, int which) {
  if (c == NULL) return -1;
  if (which < 0 || which >= PASS_COUNT) {
    set_err(c, "pd_conv_is_strict_f32: which must be 0, 1 or 2 (got %d)", which);
    return -1;
  }
  if (ensure_pass(c, which)) return -1;
  const_dnnl_primitive_attr_t attr = NULL;
  dnnl_fpmath_mode_t mode;
  if (check(c, "pd_conv_is_strict_f32", dnnl_primitive_desc_get_attr(c->pass[which].pd, &attr), "dnnl_primitive_desc_get_attr") ||
      check(c, "pd_conv_is_strict_f32", dnnl_primitive_attr_get_fpmath_mode(attr, &mode), "dnnl_primitive_attr_get_fpmath_mode"))
    return -1;
  return mode == dnnl_fpmath_mode_strict ? 1 : 0;
}

int pd_dnnl_set_default_fpmath_bf16(int bf16) {
  return dnnl_set_default_fpmath_mode(bf16 ? dnnl_fpmath_mode_bf16 : dnnl_fpmath_mode_strict) == dnnl_success ? 0 : -1;
}

const char *pd_dnnl_version(void) {
  static char text[48];
  const dnnl_version_t *v = dnnl_version();
  snprintf(text, sizeof text, "%d.%d.%d", v->major, v->minor, v->patch);
  return text;
}

size_t pd_conv_pass_workspace_bytes(pd_conv *c, int which) {
  if (c == NULL) return 0;
  if (which < 0 || which >= PASS_COUNT) {
    set_err(c, "pd_conv_pass_workspace_bytes: which must be 0, 1 or 2 (got %d)", which);
    return 0;
  }
  if (ensure_pass(c, which)) return 0;
  return c->pass[which].ws_size;
}

size_t pd_workspace_bytes(void) {
  pthread_mutex_lock(&g_ws_lock);
  size_t size = g_ws_size;
  pthread_mutex_unlock(&g_ws_lock);
  return size;
}

int pd_dnnl_isa_bits(void) {
  switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_avx512_mic:
    case dnnl_cpu_isa_avx512_mic_4ops:
    case dnnl_cpu_isa_avx512_core:
    case dnnl_cpu_isa_avx512_core_vnni:
    case dnnl_cpu_isa_avx512_core_bf16:
    case dnnl_cpu_isa_avx512_core_amx:
      return 512;
    case dnnl_cpu_isa_avx:
    case dnnl_cpu_isa_avx2:
    case dnnl_cpu_isa_avx2_vnni:
      return 256;
    case dnnl_cpu_isa_sse41:
      return 128;
    default:
      return 0;
  }
}

const char *pd_conv_last_error(pd_conv *c) {
  return c ? c->err : "pd_conv_last_error: object is NULL";
}

void pd_conv_destroy(pd_conv *c) {
  if (c == NULL) return;
  for (int i = 0; i < PASS_COUNT; i++) destroy_pass(&c->pass[i]);
  if (c->attr) dnnl_primitive_attr_destroy(c->attr);
  if (c->fwd_attr) dnnl_primitive_attr_destroy(c->fwd_attr);
  free(c->bias_sink);
  free(c);
}
