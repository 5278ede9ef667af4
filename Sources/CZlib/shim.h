// The only place the project includes zlib.h (Debian package zlib1g-dev): raw DEFLATE for the
// deflated members of PyTorch zip checkpoints. PretrainedWeights is the only Swift target
// importing CZlib.
#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H

#include <zlib.h>

// inflateInit2 is a macro over inflateInit2_ (it passes the header's version and z_stream size
// so the library can check them); Swift's importer skips function-like macros.
static inline int czlib_inflate_init_raw(z_stream *stream) {
    // Negative window bits: a raw DEFLATE stream, no zlib header or trailer (zip's method 8).
    return inflateInit2(stream, -15);
}

#endif
