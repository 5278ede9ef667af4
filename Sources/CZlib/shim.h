// The only place the project includes zlib.h (Debian package zlib1g-dev). ZlibCodec is the only
// Swift target importing CZlib.
#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H

#include <zlib.h>

// inflateInit2 is a macro over inflateInit2_ (it passes the header's version and z_stream size
// so the library can check them); Swift's importer skips function-like macros. Window bits -15:
// raw DEFLATE (zip's method 8); 15: a zlib stream with header and trailer (MATLAB v5).
static inline int czlib_inflate_init(z_stream *stream, int window_bits) {
    return inflateInit2(stream, window_bits);
}

#endif
