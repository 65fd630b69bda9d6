// The one translation unit that compiles stb_image and stb_image_write (everything else includes
// <stb_image.h> / <stb_image_write.h> for declarations only). Decoding is limited to PNG and JPEG:
// the formats this project reads, and less decoder code exposed to hostile files.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STB_IMAGE_WRITE_IMPLEMENTATION
// Zeroed allocations: stb_image mallocs its JPEG decoder state, and a scan naming a Huffman table
// that the file never defined reads that table uninitialised and indexes far outside it (found by
// fuzz_image). Zeroed, an undefined table decodes in bounds (image.cpp also refuses such files).
#include <cstdlib>
#define STBI_MALLOC(sz) std::calloc(1, (sz))
#define STBI_REALLOC(p, newsz) std::realloc((p), (newsz))
#define STBI_FREE(p) std::free(p)

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#include <stb_image.h>
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
