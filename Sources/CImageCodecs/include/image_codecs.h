#ifndef PERCEP_IMAGE_CODECS_H
#define PERCEP_IMAGE_CODECS_H

/* JPEG encode/decode of 8-bit interleaved RGB images through libjpeg-turbo's TurboJPEG API, and
 * PNG encode/decode through libspng. Plain C types only: no libjpeg or libspng type leaves
 * image_codecs.c, the only file including turbojpeg.h and spng.h.
 * Every function returns 0 on success and -1 on failure, with a message in err (err_len bytes,
 * NUL-terminated). Pixel buffers are row-major, channels interleaved, no row padding. */

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Encodes rgb (height × width × 3 bytes, row-major) at quality 1…100 with 4:2:0 chroma
 * subsampling. On success *out holds a buffer of *out_size bytes that the caller releases with
 * image_codecs_free. */
int image_codecs_jpeg_encode_rgb(const unsigned char *rgb, int width, int height, int quality,
                                 unsigned char **out, size_t *out_size, char *err, size_t err_len);

/* Reads the width and height of a JPEG stream without decoding it. */
int image_codecs_jpeg_size(const unsigned char *jpeg, size_t size, int *width, int *height,
                           char *err, size_t err_len);

/* Decodes a JPEG stream into rgb, which must hold width × height × 3 bytes (from
 * image_codecs_jpeg_size). */
int image_codecs_jpeg_decode_rgb(const unsigned char *jpeg, size_t size, unsigned char *rgb,
                                 int width, int height, char *err, size_t err_len);

/* Releases a buffer returned by image_codecs_jpeg_encode_rgb. */
void image_codecs_free(void *buffer);

/* ---- PNG (libspng) ---- */

/* PNG colour types (the IHDR byte). */
enum {
    IMAGE_CODECS_PNG_GREY = 0,
    IMAGE_CODECS_PNG_RGB = 2,
    IMAGE_CODECS_PNG_PALETTE = 3,
    IMAGE_CODECS_PNG_GREY_ALPHA = 4,
    IMAGE_CODECS_PNG_RGBA = 6
};

/* Reads width, height, bit depth (1, 2, 4, 8 or 16) and colour type from the IHDR chunk. */
int image_codecs_png_info(const unsigned char *png, size_t size, int *width, int *height,
                          int *bit_depth, int *color_type, char *err, size_t err_len);

/* Decodes any PNG to 8-bit RGB (width × height × 3 bytes in rgb): palette entries are looked up,
 * grey is replicated, 16-bit samples keep their high byte and alpha is dropped (not composited). */
int image_codecs_png_decode_rgb8(const unsigned char *png, size_t size, unsigned char *rgb,
                                 int width, int height, char *err, size_t err_len);

/* Decodes any PNG to 8-bit grey (width × height bytes). Grey of 1…8 bits is scaled to 0…255,
 * 16-bit grey keeps its high byte, alpha is dropped, and colour (RGB or palette colours) is
 * converted with ITU-R 601 weights as Pillow's convert("L") does: (19595 R + 38470 G + 7471 B
 * + 32768) >> 16. */
int image_codecs_png_decode_grey8(const unsigned char *png, size_t size, unsigned char *grey,
                                  int width, int height, char *err, size_t err_len);

/* Decodes a palette PNG or a grey PNG of at most 8 bits to its raw sample values, one byte per
 * pixel (width × height): palette indices rather than colours, and grey values not rescaled
 * (a 1-bit image gives 0/1). Other colour types fail. This is how label maps are read. */
int image_codecs_png_decode_indices(const unsigned char *png, size_t size, unsigned char *indices,
                                    int width, int height, char *err, size_t err_len);

/* Decodes a grey PNG (without alpha) to 16-bit values in host byte order (width × height
 * uint16): 16-bit files keep all 16 bits, shallower grey is widened unscaled. Other colour types
 * fail. */
int image_codecs_png_decode_grey16(const unsigned char *png, size_t size, unsigned short *grey,
                                   int width, int height, char *err, size_t err_len);

/* Encodes pixels as a PNG of the given colour type and bit depth, all 8-bit except grey, which may
 * be 16 (pixels then hold host-order uint16). Supported: grey 8/16 (1 sample per pixel), RGB 8
 * (3), palette 8 (1 index per pixel; palette_rgb holds palette_entries × 3 bytes, 1…256 entries,
 * and every index must be < palette_entries). On success *out holds *out_size bytes that the
 * caller releases with image_codecs_png_free. */
int image_codecs_png_encode(const void *pixels, int width, int height, int color_type, int bit_depth,
                            const unsigned char *palette_rgb, int palette_entries,
                            unsigned char **out, size_t *out_size, char *err, size_t err_len);

/* Releases a buffer returned by image_codecs_png_encode. */
void image_codecs_png_free(void *buffer);

#ifdef __cplusplus
}
#endif

#endif
