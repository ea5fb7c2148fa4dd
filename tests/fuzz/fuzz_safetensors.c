/* libFuzzer target: the safetensors loader (mbu_ioLoad) on a file holding the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mbpo/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/mbpo-fuzz-st-%d.safetensors", (int)getpid());
  FILE *fp = fopen(path, "wb");
  if (!fp) return 0;
  if (size && fwrite(data, 1, size, fp) != size) { fclose(fp); return 0; }
  fclose(fp);
  mbIoFile f;
  if (mbu_ioLoad(&f, path) == 0) mbu_ioFree(&f);
  return 0;
}
