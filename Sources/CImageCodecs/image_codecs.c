// The only include of turbojpeg.h (libjpeg-turbo, Debian package libturbojpeg0-dev) and of
// spng.h (libspng, Debian package libspng-dev).
#include "image_codecs.h"

#include <spng.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ---- PNG ---- */

/* Largest accepted image: 2^28 pixels (16384 × 16384), so a corrupt or hostile IHDR cannot ask for
 * tens of gigabytes before a single row is read. */
#define PNG_MAX_PIXELS ((size_t)1 << 28)

static int png_fail(spng_ctx *ctx, const char *what, int rc, char *err, size_t err_len) {
    if (err && err_len) snprintf(err, err_len, "PNG %s: %s", what, rc ? spng_strerror(rc) : "invalid arguments");
    if (ctx) spng_ctx_free(ctx);
    return -1;
}

/* A decoder over the buffer with its IHDR read and the size checked against what the caller
 * allocated (width, height from image_codecs_png_info). NULL on failure (err filled). */
static spng_ctx *png_open(const unsigned char *png, size_t size, struct spng_ihdr *ihdr, int width, int height,
                          char *err, size_t err_len) {
    if (!png || !size) { png_fail(NULL, "decode", 0, err, err_len); return NULL; }
    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx) { if (err && err_len) snprintf(err, err_len, "PNG decoder: out of memory"); return NULL; }
    int rc = spng_set_png_buffer(ctx, png, size);
    if (!rc) rc = spng_get_ihdr(ctx, ihdr);
    if (rc) { png_fail(ctx, "header", rc, err, err_len); return NULL; }
    if (width >= 0 && ((int)ihdr->width != width || (int)ihdr->height != height)) {
        if (err && err_len) snprintf(err, err_len, "PNG decode: image is %ux%u, buffer is for %dx%d",
                                     ihdr->width, ihdr->height, width, height);
        spng_ctx_free(ctx);
        return NULL;
    }
    if ((size_t)ihdr->width * ihdr->height > PNG_MAX_PIXELS) {
        if (err && err_len) snprintf(err, err_len, "PNG header: %ux%u image exceeds the 2^28-pixel limit", ihdr->width, ihdr->height);
        spng_ctx_free(ctx);
        return NULL;
    }
    /* Deflate expands at most 1032:1, so a file of `size` bytes cannot hold more filtered image
     * data than about 1032 x size: a 32-byte file claiming 83886087x3 pixels is refused before
     * hundreds of megabytes are allocated for it. */
    int channels = ihdr->color_type == 2 ? 3 : ihdr->color_type == 4 ? 2 : ihdr->color_type == 6 ? 4 : 1;
    size_t row_bytes = 1 + ((size_t)ihdr->width * channels * ihdr->bit_depth + 7) / 8;
    size_t image_bytes = row_bytes * ihdr->height;
    if (image_bytes / 1032 > size + 1024) {
        if (err && err_len) snprintf(err, err_len, "PNG header: %ux%u image needs %zu bytes of image data, more than a %zu-byte file can hold",
                                     ihdr->width, ihdr->height, image_bytes, size);
        spng_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Decodes the whole image in format fmt into a fresh malloc'ed buffer (*len bytes), or NULL. */
static void *png_decode_alloc(spng_ctx *ctx, int fmt, size_t *len, char *err, size_t err_len) {
    int rc = spng_decoded_image_size(ctx, fmt, len);
    if (rc) { png_fail(NULL, "decode", rc, err, err_len); return NULL; }
    void *buffer = malloc(*len ? *len : 1);
    if (!buffer) { if (err && err_len) snprintf(err, err_len, "PNG decode: out of memory (%zu bytes)", *len); return NULL; }
    rc = spng_decode_image(ctx, buffer, *len, fmt, 0);
    if (rc) { free(buffer); png_fail(NULL, "decode", rc, err, err_len); return NULL; }
    return buffer;
}

int image_codecs_png_info(const unsigned char *png, size_t size, int *width, int *height,
                          int *bit_depth, int *color_type, char *err, size_t err_len) {
    struct spng_ihdr ihdr;
    spng_ctx *ctx = png_open(png, size, &ihdr, -1, -1, err, err_len);
    if (!ctx) return -1;
    *width = (int)ihdr.width; *height = (int)ihdr.height;
    *bit_depth = ihdr.bit_depth; *color_type = ihdr.color_type;
    spng_ctx_free(ctx);
    return 0;
}

int image_codecs_png_decode_rgb8(const unsigned char *png, size_t size, unsigned char *rgb,
                                 int width, int height, char *err, size_t err_len) {
    struct spng_ihdr ihdr;
    spng_ctx *ctx = png_open(png, size, &ihdr, width, height, err, err_len);
    if (!ctx) return -1;
    size_t len = 0;
    int rc = spng_decoded_image_size(ctx, SPNG_FMT_RGB8, &len);
    if (!rc && len != (size_t)width * height * 3) return png_fail(ctx, "decode", SPNG_EINTERNAL, err, err_len);
    if (!rc) rc = spng_decode_image(ctx, rgb, len, SPNG_FMT_RGB8, 0);
    if (rc) return png_fail(ctx, "decode", rc, err, err_len);
    spng_ctx_free(ctx);
    return 0;
}

/* Raw samples of a grey (no alpha) or palette image, one value per pixel, unscaled. libspng's
 * SPNG_FMT_PNG keeps sub-byte depths packed (MSB first, rows padded to a byte), so they are
 * unpacked here; 16-bit samples come back in host order. */
static int png_raw_samples(spng_ctx *ctx, const struct spng_ihdr *ihdr, unsigned char *out8, unsigned short *out16,
                           char *err, size_t err_len) {
    size_t len = 0;
    unsigned char *raw = png_decode_alloc(ctx, SPNG_FMT_PNG, &len, err, err_len);
    if (!raw) return -1;
    const size_t w = ihdr->width, h = ihdr->height;
    const int depth = ihdr->bit_depth;
    if (depth == 16) {
        if (len != w * h * 2 || !out16) { free(raw); if (err && err_len) snprintf(err, err_len, "PNG decode: 16-bit samples need a 16-bit buffer"); return -1; }
        memcpy(out16, raw, len);
    } else {
        const size_t stride = (w * depth + 7) / 8;
        if (len != stride * h) { free(raw); if (err && err_len) snprintf(err, err_len, "PNG decode: unexpected decoded size %zu", len); return -1; }
        const unsigned mask = (1u << depth) - 1;
        for (size_t y = 0; y < h; y++) {
            const unsigned char *row = raw + y * stride;
            for (size_t x = 0; x < w; x++) {
                unsigned v;
                if (depth == 8) v = row[x];
                else {
                    size_t bit = x * depth;
                    v = (row[bit / 8] >> (8 - depth - bit % 8)) & mask;
                }
                if (out8) out8[y * w + x] = (unsigned char)v; else out16[y * w + x] = (unsigned short)v;
            }
        }
    }
    free(raw);
    return 0;
}

int image_codecs_png_decode_grey8(const unsigned char *png, size_t size, unsigned char *grey,
                                  int width, int height, char *err, size_t err_len) {
    struct spng_ihdr ihdr;
    spng_ctx *ctx = png_open(png, size, &ihdr, width, height, err, err_len);
    if (!ctx) return -1;
    const size_t n = (size_t)width * height;
    if (ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE && ihdr.bit_depth <= 8) {
        if (png_raw_samples(ctx, &ihdr, grey, NULL, err, err_len)) { spng_ctx_free(ctx); return -1; }
        // Scale 1/2/4-bit grey to the full 8-bit range (v · 255 / max is exact for these depths).
        if (ihdr.bit_depth < 8) {
            const unsigned max = (1u << ihdr.bit_depth) - 1;
            for (size_t i = 0; i < n; i++) grey[i] = (unsigned char)(grey[i] * 255u / max);
        }
        spng_ctx_free(ctx);
        return 0;
    }
    // Everything else (16-bit grey, grey + alpha, colour, palette) goes through libspng's RGB8
    // output (16-bit samples keep their high byte, alpha is dropped). For grey sources R = G = B = v
    // and the weights sum to 65536, so the conversion below returns v exactly.
    size_t len = 0;
    unsigned char *rgb = png_decode_alloc(ctx, SPNG_FMT_RGB8, &len, err, err_len);
    if (!rgb) { spng_ctx_free(ctx); return -1; }
    for (size_t i = 0; i < n; i++)
        grey[i] = (unsigned char)((19595u * rgb[3 * i] + 38470u * rgb[3 * i + 1] + 7471u * rgb[3 * i + 2] + 32768u) >> 16);
    free(rgb);
    spng_ctx_free(ctx);
    return 0;
}

int image_codecs_png_decode_indices(const unsigned char *png, size_t size, unsigned char *indices,
                                    int width, int height, char *err, size_t err_len) {
    struct spng_ihdr ihdr;
    spng_ctx *ctx = png_open(png, size, &ihdr, width, height, err, err_len);
    if (!ctx) return -1;
    const int ok = ihdr.color_type == SPNG_COLOR_TYPE_INDEXED ||
                   (ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE && ihdr.bit_depth <= 8);
    if (!ok) {
        if (err && err_len) snprintf(err, err_len, "PNG decode: a label map must be a palette or 8-bit grey PNG, not colour type %d at %d bits",
                                     ihdr.color_type, ihdr.bit_depth);
        spng_ctx_free(ctx);
        return -1;
    }
    int rc = png_raw_samples(ctx, &ihdr, indices, NULL, err, err_len);
    spng_ctx_free(ctx);
    return rc;
}

int image_codecs_png_decode_grey16(const unsigned char *png, size_t size, unsigned short *grey,
                                   int width, int height, char *err, size_t err_len) {
    struct spng_ihdr ihdr;
    spng_ctx *ctx = png_open(png, size, &ihdr, width, height, err, err_len);
    if (!ctx) return -1;
    if (ihdr.color_type != SPNG_COLOR_TYPE_GRAYSCALE) {
        if (err && err_len) snprintf(err, err_len, "PNG decode: 16-bit decoding needs a grey PNG, not colour type %d", ihdr.color_type);
        spng_ctx_free(ctx);
        return -1;
    }
    int rc = png_raw_samples(ctx, &ihdr, NULL, grey, err, err_len);
    spng_ctx_free(ctx);
    return rc;
}

int image_codecs_png_encode(const void *pixels, int width, int height, int color_type, int bit_depth,
                            const unsigned char *palette_rgb, int palette_entries,
                            unsigned char **out, size_t *out_size, char *err, size_t err_len) {
    int channels = 0;
    if (color_type == SPNG_COLOR_TYPE_GRAYSCALE && (bit_depth == 8 || bit_depth == 16)) channels = 1;
    else if (color_type == SPNG_COLOR_TYPE_TRUECOLOR && bit_depth == 8) channels = 3;
    else if (color_type == SPNG_COLOR_TYPE_INDEXED && bit_depth == 8) channels = 1;
    if (!pixels || width <= 0 || height <= 0 || !channels || !out || !out_size ||
        (size_t)width * height > PNG_MAX_PIXELS) {
        if (err && err_len) snprintf(err, err_len, "PNG encode: unsupported %dx%d image, colour type %d at %d bits",
                                     width, height, color_type, bit_depth);
        return -1;
    }
    const size_t n = (size_t)width * height;
    if (color_type == SPNG_COLOR_TYPE_INDEXED) {
        if (!palette_rgb || palette_entries < 1 || palette_entries > 256) {
            if (err && err_len) snprintf(err, err_len, "PNG encode: a palette needs 1…256 entries, got %d", palette_entries);
            return -1;
        }
        const unsigned char *idx = pixels;
        for (size_t i = 0; i < n; i++) if (idx[i] >= palette_entries) {
            if (err && err_len) snprintf(err, err_len, "PNG encode: index %u at pixel %zu is outside the %d-entry palette",
                                         idx[i], i, palette_entries);
            return -1;
        }
    }
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    if (!ctx) { if (err && err_len) snprintf(err, err_len, "PNG encoder: out of memory"); return -1; }
    int rc = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    struct spng_ihdr ihdr = {0};
    ihdr.width = (uint32_t)width; ihdr.height = (uint32_t)height;
    ihdr.bit_depth = (uint8_t)bit_depth; ihdr.color_type = (uint8_t)color_type;
    if (!rc) rc = spng_set_ihdr(ctx, &ihdr);
    if (!rc && color_type == SPNG_COLOR_TYPE_INDEXED) {
        struct spng_plte plte = {0};
        plte.n_entries = (uint32_t)palette_entries;
        for (int i = 0; i < palette_entries; i++) {
            plte.entries[i].red = palette_rgb[3 * i];
            plte.entries[i].green = palette_rgb[3 * i + 1];
            plte.entries[i].blue = palette_rgb[3 * i + 2];
        }
        rc = spng_set_plte(ctx, &plte);
    }
    // SPNG_FMT_PNG: samples in the PNG's own format, 16-bit in host order (libspng swaps to big-endian).
    const size_t len = n * channels * (bit_depth == 16 ? 2 : 1);
    if (!rc) rc = spng_encode_image(ctx, pixels, len, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    if (rc) return png_fail(ctx, "encode", rc, err, err_len);
    size_t size = 0;
    unsigned char *buffer = spng_get_png_buffer(ctx, &size, &rc);
    if (!buffer || rc) return png_fail(ctx, "encode", rc ? rc : SPNG_EINTERNAL, err, err_len);
    spng_ctx_free(ctx);
    *out = buffer;
    *out_size = size;
    return 0;
}

void image_codecs_png_free(void *buffer) { free(buffer); }
