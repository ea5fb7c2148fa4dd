/* libFuzzer target: the command line's key=value overrides (mbpo.config.apply_overrides,
   then mbpo.schema.check, config.lua written and read back in the sandbox). Driver:
   tests/fuzz/overrides.lua; one override per input line. */
#include "lua_target.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  fuzz_open("overrides");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  return fuzz_run(data, size);
}
