/* libFuzzer target: mbpo.checkpoint.load of a run directory whose part is the input (its
   manifest checksum made to match, so the loader's own checks are reached), then the loaded
   tree restored into an agent, an ensemble, a buffer and an env. Driver:
   tests/fuzz/checkpoint.lua. */
#include "lua_target.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  fuzz_open("checkpoint");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1 << 16)) return 0;
  return fuzz_run(data, size);
}
