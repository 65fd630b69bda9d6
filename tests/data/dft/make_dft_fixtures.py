#!/usr/bin/env python3
"""Writes tests/data/dft/dft.npz, the numpy.fft references of tests/test_dft.cpp.

For each case i (shapes below: odd and even H and W, size 1, batch dims) it stores, all float64:
  c{i}_x                      a seeded real input (..., H, W)
  c{i}_re_{norm}, c{i}_im_{norm}   numpy.fft.rfft2(x, norm=norm), norm in backward, ortho, forward
  c{i}_zre, c{i}_zim          a seeded half spectrum (..., H, W//2+1) that is NOT the rfft2 of a real
                              image (the DC and Nyquist columns have arbitrary imaginary parts)
  c{i}_xz_{norm}              numpy.fft.irfft2(zre + 1j zim, s=(H, W), norm=norm): what the engine's
                              irfft2 must do with such input (numpy ignores those imaginary parts)
  fx_{H}x{W}                  |f| grid: sqrt(fftfreq(H)[:,None]^2 + rfftfreq(W)[None,:]^2)
Run: python3 tests/data/dft/make_dft_fixtures.py   (numpy only; deterministic)
"""
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dft.npz")
CASES = [(1, 1), (1, 5), (5, 1), (2, 2), (4, 6), (5, 7), (6, 5), (3, 8), (7, 9), (2, 3, 4, 5), (3, 1, 6), (16, 16)]
NORMS = ["backward", "ortho", "forward"]
FREQ = [(1, 1), (4, 6), (5, 7), (8, 8), (3, 10)]


def main():
    rng = np.random.default_rng(20261203)
    arrays = {}
    for i, shape in enumerate(CASES):
        x = rng.standard_normal(shape)
        arrays[f"c{i}_x"] = x
        for norm in NORMS:
            y = np.fft.rfft2(x, norm=norm)
            arrays[f"c{i}_re_{norm}"] = y.real.copy()
            arrays[f"c{i}_im_{norm}"] = y.imag.copy()
        h, w = shape[-2], shape[-1]
        zshape = shape[:-1] + (w // 2 + 1,)
        zre = rng.standard_normal(zshape)
        zim = rng.standard_normal(zshape)
        arrays[f"c{i}_zre"] = zre
        arrays[f"c{i}_zim"] = zim
        for norm in NORMS:
            arrays[f"c{i}_xz_{norm}"] = np.fft.irfft2(zre + 1j * zim, s=(h, w), norm=norm)
    for h, w in FREQ:
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.rfftfreq(w)[None, :]
        arrays[f"fx_{h}x{w}"] = np.sqrt(fy * fy + fx * fx)
    np.savez(OUT, **{k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items()})
    print(f"wrote {OUT}: {len(arrays)} arrays")


if __name__ == "__main__":
    main()
