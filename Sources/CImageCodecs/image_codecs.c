// The only include of turbojpeg.h (libjpeg-turbo, Debian package libturbojpeg0-dev).
#include "image_codecs.h"

#include <stdio.h>
#include <turbojpeg.h>

static int fail(tjhandle h, const char *what, char *err, size_t err_len) {
    if (err && err_len) snprintf(err, err_len, "%s: %s", what, h ? tjGetErrorStr2(h) : tjGetErrorStr2(NULL));
    if (h) tjDestroy(h);
    return -1;
}

int image_codecs_jpeg_encode_rgb(const unsigned char *rgb, int width, int height, int quality,
                                 unsigned char **out, size_t *out_size, char *err, size_t err_len) {
    if (!rgb || width <= 0 || height <= 0 || quality < 1 || quality > 100 || !out || !out_size) {
        if (err && err_len) snprintf(err, err_len, "JPEG encode: invalid arguments (%dx%d, quality %d)", width, height, quality);
        return -1;
    }
    tjhandle h = tjInitCompress();
    if (!h) return fail(NULL, "JPEG encoder init", err, err_len);
    unsigned char *buffer = NULL;
    unsigned long size = 0;
    // TJFLAG_ACCURATEDCT: the accurate integer DCT, not the fast approximate one (less codec error).
    if (tjCompress2(h, rgb, width, 0, height, TJPF_RGB, &buffer, &size, TJSAMP_420, quality, TJFLAG_ACCURATEDCT) != 0) {
        if (buffer) tjFree(buffer);
        return fail(h, "JPEG encode", err, err_len);
    }
    tjDestroy(h);
    *out = buffer;
    *out_size = (size_t)size;
    return 0;
}

int image_codecs_jpeg_size(const unsigned char *jpeg, size_t size, int *width, int *height,
                           char *err, size_t err_len) {
    tjhandle h = tjInitDecompress();
    if (!h) return fail(NULL, "JPEG decoder init", err, err_len);
    int subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(h, jpeg, (unsigned long)size, width, height, &subsamp, &colorspace) != 0)
        return fail(h, "JPEG header", err, err_len);
    tjDestroy(h);
    return 0;
}

int image_codecs_jpeg_decode_rgb(const unsigned char *jpeg, size_t size, unsigned char *rgb,
                                 int width, int height, char *err, size_t err_len) {
    tjhandle h = tjInitDecompress();
    if (!h) return fail(NULL, "JPEG decoder init", err, err_len);
    if (tjDecompress2(h, jpeg, (unsigned long)size, rgb, width, 0, height, TJPF_RGB, TJFLAG_ACCURATEDCT) != 0)
        return fail(h, "JPEG decode", err, err_len);
    tjDestroy(h);
    return 0;
}

void image_codecs_free(void *buffer) { tjFree((unsigned char *)buffer); }
