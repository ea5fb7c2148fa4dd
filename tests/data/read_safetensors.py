#!/usr/bin/python3
"""Reads a safetensors file with only the standard library and NumPy (an independent reader
for checking mbpo.io by hand): prints each tensor's name, dtype, shape and values.
  /usr/bin/python3 tests/data/read_safetensors.py FILE [--full]"""
import json, struct, sys
import numpy as np

def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        dt = {"F32": "<f4", "I64": "<i8"}[e["dtype"]]
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype=dt).reshape(e["shape"])
    return out, meta, n

if __name__ == "__main__":
    tensors, meta, n = read(sys.argv[1])
    np.set_printoptions(threshold=sys.maxsize if "--full" in sys.argv else 20)
    print("header bytes", n, "(multiple of 8)" if n % 8 == 0 else "(NOT a multiple of 8)")
    print("metadata", meta)
    for k, v in tensors.items():
        print(k, v.dtype, list(v.shape))
        print(v)
