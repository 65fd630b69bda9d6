# Mask fixtures for tests/test_io_mask.cpp, made with PIL (python3 make_mask_fixtures.py in this folder).
#   mask_palette_7x5.png   an 8-bit palette PNG whose palette is NOT VOC's (entries
#                          shuffled), so reading colours instead of indices gives different numbers;
#   mask_palette_7x5.npy   its indices (uint8, (5, 7));
#   mask_palette4_9x3.png  a 4-bit palette PNG (indices 0..15 packed two per byte);
#   mask_palette4_9x3.npy  its indices;
#   mask_grey_6x4.png      an 8-bit grey 0/255 figure-ground mask; mask_grey_6x4.npy its values.
import numpy as np
from PIL import Image

rng = np.random.default_rng(18)

idx = rng.choice([0, 1, 2, 3, 15, 20, 255], size=(5, 7)).astype(np.uint8)
idx[0, 0], idx[4, 6] = 255, 0
pal = rng.integers(0, 256, size=(256, 3), dtype=np.uint8)
im = Image.fromarray(idx, mode="P")
im.putpalette(pal.flatten().tolist())
im.save("mask_palette_7x5.png")
np.save("mask_palette_7x5.npy", np.asarray(Image.open("mask_palette_7x5.png")))
assert (np.asarray(Image.open("mask_palette_7x5.png")) == idx).all()

idx4 = rng.integers(0, 16, size=(3, 9)).astype(np.uint8)
im = Image.fromarray(idx4, mode="P")
im.putpalette(rng.integers(0, 256, size=(16 * 3,), dtype=np.uint8).tolist())
im.save("mask_palette4_9x3.png", bits=4)
back = Image.open("mask_palette4_9x3.png")
assert (np.asarray(back) == idx4).all()
np.save("mask_palette4_9x3.npy", idx4)

g = (rng.random((4, 6)) < 0.5).astype(np.uint8) * 255
Image.fromarray(g, mode="L").save("mask_grey_6x4.png")
np.save("mask_grey_6x4.npy", g)
