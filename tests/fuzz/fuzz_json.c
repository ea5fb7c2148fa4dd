/* libFuzzer target: the safetensors JSON header / metadata reader (mbu_ioParseHeader).
   The first 8 bytes give the data section's length, the rest is the JSON text. */
#include <stdint.h>
#include <string.h>

#include "mbpo/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint64_t data_bytes = 0;
  if (size >= 8) { memcpy(&data_bytes, data, 8); data += 8; size -= 8; }
  data_bytes %= (uint64_t)1 << 40;
  mbIoFile f;
  if (mbu_ioParseHeader(&f, (const char *)data, size, data_bytes) == 0) mbu_ioFree(&f);
  return 0;
}
