#ifndef PERCEP_IMAGE_CODECS_H
#define PERCEP_IMAGE_CODECS_H

/* JPEG encode/decode of 8-bit interleaved RGB images through libjpeg-turbo's TurboJPEG API.
 * Plain C types only: no libjpeg type leaves image_codecs.c, the only file including turbojpeg.h.
 * Every function returns 0 on success and -1 on failure, with a message in err (err_len bytes,
 * NUL-terminated). */

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

#ifdef __cplusplus
}
#endif

#endif
