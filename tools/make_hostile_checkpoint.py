#!/usr/bin/env python3
"""Writes Tests/ReliabilityTests/Fixtures/huge_claim.h5: a real train-demo checkpoint whose largest
/model dataset is replaced by a chunked float32 dataset claiming 2·10⁹ elements with no chunk
written (a few KB of file). Reading it naively allocates 8 GB; percep-dist must refuse it with an
error naming the dataset. Usage: python3 tools/make_hostile_checkpoint.py CHECKPOINT.h5 OUT.h5
(CHECKPOINT from `percep-dist train-demo --config configs/demo/tiny-synthetic.yaml
SOLVER.MAX_ITER 1 SOLVER.IMS_PER_BATCH 2 LOSS.PERCEPTUAL.ENABLED false OUTPUT_DIR …`)."""
import shutil
import sys

import h5py

src, out = sys.argv[1], sys.argv[2]
shutil.copyfile(src, out)
with h5py.File(out, "r+") as f:
    group = f["model"]
    name = max(group, key=lambda k: group[k].size)
    checksum = group[name].attrs.get("fnv1a64")
    del group[name]
    d = group.create_dataset(name, shape=(2_000_000_000,), dtype="float32", chunks=(1 << 20,))
    if checksum is not None:
        d.attrs["fnv1a64"] = checksum
    print(f"{out}: /model/{name} now claims {d.shape} float32")
