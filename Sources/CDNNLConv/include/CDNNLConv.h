// CDNNLConv: 2-D float32 convolutions (forward, backward-data, backward-weights)
// backed by oneDNN 2.x, behind a plain C interface.
//
// This header is the only part of the wrapper visible to Swift. It deliberately
// does not include dnnl.h, so that no oneDNN type leaks into the Swift module;
// all oneDNN state lives behind the opaque `pd_conv` handle.
//
// Layouts seen by callers are always plain and PyTorch-compatible:
//   input / diff_src   [N, C_in, H, W]                 (NCHW, contiguous)
//   weight / diff_w    [C_out, C_in/groups, KH, KW]    (OIHW, contiguous)
//   bias / diff_bias   [C_out]
//   output / diff_dst  [N, C_out, OH, OW]              (NCHW, contiguous)
// Internally oneDNN may use blocked layouts; the wrapper reorders to and from
// them with cached primitives and one process-wide workspace (as large as the
// largest pass run so far), so repeated calls do not allocate and the blocked
// copies cost one pass's worth of memory, not one per convolution shape.
//
// Threading: meant for single-threaded callers. A pd_conv must never be used
// from two threads at once, and all pd_conv objects share one process-wide
// oneDNN engine, stream and workspace (calls on different objects are
// serialised by a mutex). oneDNN itself parallelises each call with OpenMP
// (see pd_omp_set_num_threads in COpenMP).
//
// Error convention: functions returning int give 0 on success and non-zero on
// failure; the message (naming the failing oneDNN call and its dnnl_status_t)
// is then available from pd_conv_last_error().

#ifndef CDNNLCONV_H
#define CDNNLCONV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Geometry of one 2-D convolution, in PyTorch conventions.
typedef struct pd_conv_geometry {
  int64_t n, c_in, h, w;        // input [N, C_in, H, W], NCHW plain float32
  int64_t c_out, kh, kw;        // weight [C_out, C_in/groups, KH, KW], OIHW plain float32 (PyTorch layout)
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups; // dilation in PyTorch convention (1 = dense); symmetric padding
  int64_t out_h, out_w;         // filled by the caller (PyTorch formula)
} pd_conv_geometry;

/// Opaque convolution object: engine/stream refs, primitive descriptors,
/// primitives, reorders and scratch/intermediate memories for one geometry.
typedef struct pd_conv pd_conv;

/// Creates a convolution for geometry `g` and builds its forward primitive.
/// The backward primitives are built lazily on first use.
///
/// `g->out_h` / `g->out_w` must equal the PyTorch output size
///   out = (in + 2*pad - dil*(k-1) - 1) / stride + 1   (floor division);
/// a mismatch is reported as an error. C_in and C_out must be divisible by
/// `groups`. `with_bias` != 0 adds a [C_out] bias to the forward pass and makes
/// the backward-weights pass able to produce diff_bias.
///
/// oneDNN fixes a primitive's thread count when the primitive is created, so
/// set the thread count (COpenMP's pd_omp_set_num_threads) before creating convolutions.
///
/// Returns NULL on failure and writes a NUL-terminated message into `err`
/// (truncated to `err_len` bytes; `err` may be NULL if `err_len` is 0).
///
/// `fuse_relu` != 0 makes the forward pass write max(conv + bias, 0) (a oneDNN post-op); the
/// backward passes are unchanged (the caller masks diff_dst by the forward output).
pd_conv *pd_conv_create(const pd_conv_geometry *g, int with_bias, int fuse_relu, char *err, size_t err_len);

/// Forward pass: dst = conv(src, weight) (+ bias).
///   src    [N, C_in, H, W]
///   weight [C_out, C_in/groups, KH, KW]
///   bias   [C_out]; required if the object was created with bias, must be
///          NULL otherwise
///   dst    [N, C_out, OH, OW], overwritten (not accumulated into)
/// Returns 0 on success.
int pd_conv_forward(pd_conv *c, const float *src, const float *weight, const float *bias, float *dst);

/// Backward pass with respect to the input: diff_src = conv_transpose(diff_dst, weight).
///   diff_dst [N, C_out, OH, OW]
///   weight   [C_out, C_in/groups, KH, KW]
///   diff_src [N, C_in, H, W], overwritten (not accumulated into)
/// The primitive is created on the first call. Returns 0 on success.
int pd_conv_backward_data(pd_conv *c, const float *diff_dst, const float *weight, float *diff_src);

/// Backward pass with respect to the parameters.
///   src         [N, C_in, H, W]       (the forward input)
///   diff_dst    [N, C_out, OH, OW]
///   diff_weight [C_out, C_in/groups, KH, KW], overwritten (summed over the batch)
///   diff_bias   [C_out], overwritten with diff_dst summed over N, OH, OW;
///               may be NULL to skip it. Passing non-NULL for an object
///               created without bias is an error.
/// The primitive is created on the first call. Returns 0 on success.
int pd_conv_backward_weights(pd_conv *c, const float *src, const float *diff_dst, float *diff_weight, float *diff_bias);

/// oneDNN's implementation string for one pass (e.g. "jit:avx2"):
/// which = 0 forward, 1 backward data, 2 backward weights. The backward
/// primitives are created here if they do not exist yet. Returns NULL on
/// failure (see pd_conv_last_error). The string is owned by `c` and stays
/// valid until pd_conv_destroy(c).
const char *pd_conv_impl_name(pd_conv *c, int which);

/// Vector width in bits of the widest instruction set oneDNN's kernels use on this CPU (what
/// dnnl_get_effective_cpu_isa reports, after any DNNL_MAX_CPU_ISA limit): 512 for the AVX-512
/// families, 256 for AVX/AVX2, 128 for SSE4.1, 0 when oneDNN reports none of these.
int pd_dnnl_isa_bits(void);

/// 1 when pass `which` (0 forward, 1 backward data, 2 backward weights) computes in full float32
/// (oneDNN's strict fpmath mode, set on every pass whatever the process default), 0 when it may
/// round operands to a shorter type, -1 on failure (see pd_conv_last_error).
int pd_conv_is_strict_f32(pd_conv *c, int which);

/// Sets oneDNN's process-wide default fpmath mode to bf16 (1) or strict (0), as
/// ONEDNN_DEFAULT_FPMATH_MODE does at start-up; passes created here are strict either way.
/// Returns 0, or -1 if oneDNN refused.
int pd_dnnl_set_default_fpmath_bf16(int bf16);

/// oneDNN's version as "major.minor.patch" (static storage).
const char *pd_dnnl_version(void);

/// Workspace bytes pass `which` (0 forward, 1 backward data, 2 backward weights) needs for its
/// blocked copies and scratchpad, building the pass if needed; 0 on failure (see
/// pd_conv_last_error).
size_t pd_conv_pass_workspace_bytes(pd_conv *c, int which);

/// Bytes of the process-wide workspace behind every pass's blocked copies and scratchpad (it
/// grows to the largest pass run so far and is kept): memory outside tensors, for reports.
size_t pd_workspace_bytes(void);

/// Message describing the most recent failure on `c` ("" if none). Owned by
/// `c`; valid until the next call on `c` or its destruction.
const char *pd_conv_last_error(pd_conv *c);

/// Releases every oneDNN object and buffer held by `c`. NULL is allowed.
void pd_conv_destroy(pd_conv *c);

#ifdef __cplusplus
}
#endif

#endif // CDNNLCONV_H
