#!/usr/bin/env python3
"""Makes the fixtures of tests/test_io_*.cpp (run from anywhere; writes next to this script).

Needs numpy, pillow and safetensors (pip install numpy pillow safetensors), and torch for the
decoding fixtures (`make_io_fixtures.py decode` remakes only those: decode/, features_jpeg/). The
build and the tests never run Python: the outputs are committed. Made with numpy 2.4.6, Pillow
13.0.0 (its bundled libjpeg-turbo 3.2.0; cortex links Debian's 2.1.5, which decodes identically),
safetensors 0.8.0, torch 2.15.0 (CPU).

Values of the plain arrays follow formulas the C++ tests recompute:
  ints   v[i] = (i * 37) % 101 - 50        (flat C-order index i)
  floats v[i] = ((i * 37) % 101 - 50) / 8  (exact in float16)
  uint8  v[i] = (i * 37) % 256
  bool   v[i] = i % 3 == 0
Image references are what torchvision does on PIL images, computed here with PIL directly (the
same calls torchvision makes: img.resize((w, h), resample) after its size rule, then a crop at
int(round((H - h) / 2.0))), so torch/torchvision are not needed.
"""
import json
import os
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


def formula(shape, kind):
    n = int(np.prod(shape)) if len(shape) else 1
    i = np.arange(n, dtype=np.int64)
    if kind == "int":
        v = (i * 37) % 101 - 50
    elif kind == "float":
        v = ((i * 37) % 101 - 50) / 8.0
    elif kind == "u1":
        v = (i * 37) % 256
    elif kind == "bool":
        v = i % 3 == 0
    return v.reshape(shape)


# ---------------------------------------------------------------- .npy

def make_npy():
    kinds = {"f4": "float", "f8": "float", "f2": "float", "i4": "int", "i8": "int", "u1": "u1", "b1": "bool",
             "i2": "int", "i1": "int", "u2": "u1"}
    for code, kind in kinds.items():
        a = formula((3, 5), kind).astype(np.dtype(code))
        np.save(path(f"npy_{code}_3x5.npy"), a)
    # Fortran order, 3-D float and 2-D int16 (conversion + transpose together)
    np.save(path("npy_fortran_f4_3x4x5.npy"), np.asfortranarray(formula((3, 4, 5), "float").astype("<f4")))
    np.save(path("npy_fortran_i2_4x6.npy"), np.asfortranarray(formula((4, 6), "int").astype("<i2")))
    np.save(path("npy_scalar_f8.npy"), np.float64(3.5))
    np.save(path("npy_empty_f4_0x3.npy"), np.zeros((0, 3), np.float32))
    for ver in [(2, 0), (3, 0)]:
        with open(path(f"npy_v{ver[0]}_f4_2x3.npy"), "wb") as f:
            np.lib.format.write_array(f, formula((2, 3), "float").astype("<f4"), version=ver)
    # unsupported: big-endian, object (pickled), complex, uint64, structured
    np.save(path("npy_bad_bigendian.npy"), formula((2, 3), "float").astype(">f4"))
    np.save(path("npy_bad_object.npy"), np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(path("npy_bad_complex.npy"), np.ones(3, np.complex64))
    np.save(path("npy_bad_u8.npy"), np.ones(3, np.uint64))
    np.save(path("npy_bad_structured.npy"), np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))


# ---------------------------------------------------------------- .npz

def npz_arrays():
    return {"a": formula((3, 4), "float").astype("<f4"), "b": formula((5,), "int").astype("<i8"),
            "c": formula((2, 2, 3), "u1").astype("u1"), "scalar": np.float64(2.25)}


def make_zip64_npz(fname, arrays):
    """A stored zip whose central directory uses zip64 extra fields for sizes and offsets, with a zip64
    end record, as a writer does for members over 4 GiB (here on small members)."""
    out = bytearray()
    central = bytearray()
    for key, arr in arrays.items():
        import io
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asanyarray(arr))
        data = buf.getvalue()
        name = (key + ".npy").encode()
        crc = zlib.crc32(data) & 0xFFFFFFFF
        offset = len(out)
        extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(name),
                           len(extra)) + name + extra + data
        cextra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x032D, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF,
                               0xFFFFFFFF, len(name), len(cextra), 0, 0, 0, 0o644 << 16, 0xFFFFFFFF) + name + cextra
    cd_off = len(out)
    out += central
    z64 = len(out)
    n = len(arrays)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 0x032D, 45, 0, 0, n, n, len(central), cd_off)
    out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(fname, "wb") as f:
        f.write(out)


def make_npz():
    arrays = npz_arrays()
    np.savez(path("npz_stored.npz"), **arrays)
    np.savez_compressed(path("npz_deflated.npz"), **arrays)
    make_zip64_npz(path("npz_zip64.npz"), arrays)
    with zipfile.ZipFile(path("npz_with_readme.npz"), "w", zipfile.ZIP_DEFLATED) as z:
        import io
        buf = io.BytesIO()
        np.lib.format.write_array(buf, formula((2, 3), "int").astype("<i4"))
        z.writestr("x.npy", buf.getvalue())
        z.writestr("README.txt", "not an array\n")
    for f in ["npz_stored.npz", "npz_deflated.npz", "npz_zip64.npz"]:
        with np.load(path(f)) as z:
            assert sorted(z.files) == sorted(arrays), f
            for k, v in arrays.items():
                assert np.array_equal(z[k], v), (f, k)


# ---------------------------------------------------------------- safetensors

def raw_safetensors(fname, entries, metadata=None, pad_to=8, extra_pad=0):
    """Writes a safetensors file by hand: entries = [(name, dtype, shape, bytes)]."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    off = 0
    blob = b""
    for name, dt, shape, data in entries:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        off += len(data)
        blob += data
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((pad_to - len(text) % pad_to) % pad_to + extra_pad)
    with open(fname, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob)


def make_safetensors():
    from safetensors.numpy import save_file, load_file
    t = {
        "f32": formula((3, 4), "float").astype("<f4"), "f64": formula((2, 3), "float").astype("<f8"),
        "f16": formula((5,), "float").astype("<f2"), "i64": formula((2, 2), "int").astype("<i8"),
        "i32": formula((3,), "int").astype("<i4"), "i16": formula((2, 3), "int").astype("<i2"),
        "u8": formula((4,), "u1").astype("u1"), "bool": formula((2, 3), "bool"),
        "scalar": np.array(1.5, np.float32), "empty": np.zeros((0, 4), np.float32),
        "layer1.0.conv1.weight": formula((4, 3, 3, 3), "float").astype("<f4"),
    }
    save_file(t, path("st_numpy.safetensors"), metadata={"format": "np", "source": "make_io_fixtures.py"})
    back = load_file(path("st_numpy.safetensors"))
    for k in t:
        assert np.array_equal(back[k], t[k]), k
    # BF16 (numpy has no bfloat16): top halves of float32 values that bfloat16 holds exactly
    f = formula((2, 4), "float").astype("<f4")
    bf = (f.view("<u4") >> 16).astype("<u2").tobytes()
    raw_safetensors(path("st_bf16.safetensors"), [("w", "BF16", (2, 4), bf), ("b", "F32", (4,), f[0].tobytes())],
                    metadata={"format": "pt"})
    # Header length 8k+2: the F32 and F64 tensors are not aligned to their element size in the file.
    raw_safetensors(path("st_unaligned.safetensors"),
                    [("x", "F32", (3,), formula((3,), "float").astype("<f4").tobytes()),
                     ("y", "F64", (2,), formula((2,), "float").astype("<f8").tobytes())], extra_pad=2)
    back = load_file(path("st_unaligned.safetensors"))
    assert np.array_equal(back["x"], formula((3,), "float").astype("<f4"))


# ---------------------------------------------------------------- images

def torchvision_resize_size(h, w, size):
    # torchvision.transforms.functional._compute_resized_output_size for an int size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if w <= h else (new_short, new_long)  # (h, w)


def torchvision_center_crop(a, ch, cw):
    h, w = a.shape[:2]
    if ch > h or cw > w:
        left, top = ((cw - w) // 2 if cw > w else 0), ((ch - h) // 2 if ch > h else 0)
        right, bottom = ((cw - w + 1) // 2 if cw > w else 0), ((ch - h + 1) // 2 if ch > h else 0)
        a = np.pad(a, ((top, bottom), (left, right), (0, 0)))
        h, w = a.shape[:2]
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return a[top:top + ch, left:left + cw]


def smooth_image(rng, h, w, c):
    low = rng.integers(0, 256, size=(h // 8 + 2, w // 8 + 2, c)).astype(np.float64)
    img = Image.fromarray(low.astype(np.uint8).squeeze() if c == 1 else low.astype(np.uint8))
    img = img.resize((w, h), Image.BICUBIC)
    a = np.asarray(img).astype(np.int64).reshape(h, w, c)
    a = a + rng.integers(-20, 21, size=a.shape)  # texture, so every pixel matters
    return np.clip(a, 0, 255).astype(np.uint8)


def preprocess(a, resize, crop, resample, mean, std):
    img = Image.fromarray(a)
    h, w = torchvision_resize_size(a.shape[0], a.shape[1], resize)
    r = np.asarray(img.resize((w, h), resample))
    c = torchvision_center_crop(r, crop, crop)
    x = c.transpose(2, 0, 1).astype(np.float32) / np.float32(255)  # ToTensor
    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    return ((x - m) / s).astype(np.float32)  # Normalize: sub_(mean).div_(std) in float32


def make_images():
    rng = np.random.default_rng(1234)
    land = smooth_image(rng, 120, 160, 3)
    port = smooth_image(rng, 75, 50, 3)
    Image.fromarray(land).save(path("img_land_120x160.png"))
    Image.fromarray(port).save(path("img_port_75x50.png"))
    np.save(path("img_land_120x160.npy"), land)
    np.save(path("img_port_75x50.npy"), port)
    # shorter sides 120 and 50: downscales by up to 3.6x (antialias), and upscales
    for name, a, sizes in [("land", land, [33, 47, 131]), ("port", port, [33, 64, 90])]:
        for size in sizes:
            h, w = torchvision_resize_size(a.shape[0], a.shape[1], size)
            for tag, rs in [("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC)]:
                r = np.asarray(Image.fromarray(a).resize((w, h), rs))
                np.save(path(f"ref_{name}_resize{size}_{tag}.npy"), r)
    # center crops (odd and even margins, and a crop larger than the image: zero padding)
    for ch, cw in [(100, 101), (99, 150), (130, 170), (121, 50)]:
        np.save(path(f"ref_land_crop{ch}x{cw}.npy"), torchvision_center_crop(land, ch, cw))
    imnet_mean, imnet_std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    clip_mean, clip_std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    np.save(path("ref_land_imagenet_r64_c56.npy"), preprocess(land, 64, 56, Image.BILINEAR, imnet_mean, imnet_std))
    np.save(path("ref_port_imagenet_r64_c56.npy"), preprocess(port, 64, 56, Image.BILINEAR, imnet_mean, imnet_std))
    np.save(path("ref_land_clip_48.npy"), preprocess(land, 48, 48, Image.BICUBIC, clip_mean, clip_std))
    # grey, RGBA and palette PNGs; a JPEG with PIL's (libjpeg's) decoding
    grey = smooth_image(rng, 20, 30, 1)[:, :, 0]
    Image.fromarray(grey, "L").save(path("img_grey_20x30.png"))
    np.save(path("img_grey_20x30.npy"), grey)
    rgba = smooth_image(rng, 20, 30, 4)
    Image.fromarray(rgba, "RGBA").save(path("img_rgba_20x30.png"))
    np.save(path("img_rgba_20x30.npy"), rgba)
    pal = Image.fromarray(port).convert("P", palette=Image.ADAPTIVE, colors=16)
    pal.save(path("img_palette_75x50.png"))
    np.save(path("img_palette_75x50_rgb.npy"), np.asarray(pal.convert("RGB")))
    Image.fromarray(land).save(path("img_land_120x160.jpg"), quality=90)
    np.save(path("img_land_120x160_jpg_pil.npy"), np.asarray(Image.open(path("img_land_120x160.jpg")).convert("RGB")))


# ---------------------------------------------------------------- decoding against PIL (decode/)
#
# Every file under decode/ has a decode/<name>.npz of what PIL gives for it:
#   rgb, l, rgba   np.asarray(Image.open(f).convert("RGB" / "L" / "RGBA"))
#   native         PIL's own mode when it is L, LA, RGB or RGBA; otherwise the conversion
#                  cortex's ImageMode::Native promises (P -> RGB, or RGBA with tRNS; 1 and I;16 -> L;
#                  CMYK -> RGB)
#   exif_rgb       np.asarray(ImageOps.exif_transpose(Image.open(f)).convert("RGB"))
# PNGs in every colour type and bit depth are written by png_bytes() below (PIL writes only some),
# with every row filter and Adam7 interlacing; JPEGs are written by PIL (libjpeg-turbo).

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(samples, color, depth, plte=None, trns=None, interlace=False, exif=None, exif_after=False):
    """A PNG of `samples` (h, w, channels) ints < 2**depth; rows cycle through filter types 0..4."""
    h, w, c = samples.shape
    bpp_bits = c * depth
    bpp = max(1, bpp_bits // 8)

    def raw_row(row):  # (w, c) -> packed bytes
        if depth == 16:
            return b"".join(struct.pack(">H", int(v)) for v in row.reshape(-1))
        if depth == 8:
            return bytes(int(v) for v in row.reshape(-1))
        vals, out, acc, nbits = row.reshape(-1), bytearray(), 0, 0
        for v in vals:
            acc = (acc << depth) | int(v)
            nbits += depth
            if nbits == 8:
                out.append(acc)
                acc, nbits = 0, 0
        if nbits:
            out.append(acc << (8 - nbits))
        return bytes(out)

    def filtered(rows):
        out, prev = bytearray(), None
        for k, r in enumerate(rows):
            ft = k % 5
            up = prev if prev is not None else bytes(len(r))
            f = bytearray(len(r))
            for i in range(len(r)):
                a = r[i - bpp] if i >= bpp else 0
                b = up[i]
                cc = up[i - bpp] if i >= bpp else 0
                if ft == 0:
                    pred = 0
                elif ft == 1:
                    pred = a
                elif ft == 2:
                    pred = b
                elif ft == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - cc
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
                f[i] = (r[i] - pred) & 0xFF
            out.append(ft)
            out += f
            prev = r
        return bytes(out)

    if interlace:
        data = b""
        for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                               (0, 1, 1, 2)]:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                data += filtered([raw_row(r) for r in sub])
    else:
        data = filtered([raw_row(r) for r in samples])
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, int(interlace)))
    if plte is not None:
        out += png_chunk(b"PLTE", bytes(int(v) for v in np.asarray(plte).reshape(-1)))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    if exif is not None and not exif_after:
        out += png_chunk(b"eXIf", exif)
    comp = zlib.compress(data, 9)
    out += png_chunk(b"IDAT", comp[: len(comp) // 2]) + png_chunk(b"IDAT", comp[len(comp) // 2:])  # two IDATs
    if exif is not None and exif_after:
        out += png_chunk(b"eXIf", exif)
    return out + png_chunk(b"IEND", b"")


def tiff_orientation(o, big_endian):
    """An EXIF TIFF block whose IFD0 holds only Orientation = o."""
    e = ">" if big_endian else "<"
    head = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    ifd = struct.pack(e + "H", 1) + struct.pack(e + "HHI", 0x0112, 3, 1) + struct.pack(e + "HH", o, 0)
    return head + ifd + struct.pack(e + "I", 0)


def photo(rng, h, w):
    """Smooth colours, noise and hard-edged shapes: ringing that clips, so rounding shows."""
    a = smooth_image(rng, h, w, 3).astype(np.int64)
    a[h // 5: h // 2, w // 6: w // 2] = [250, 250, 250]
    a[h // 2:, w // 2: w // 2 + 3] = [5, 5, 5]
    a[(np.arange(h)[:, None] + np.arange(w)[None, :]) % 7 == 0] = [255, 0, 0]
    return np.clip(a, 0, 255).astype(np.uint8)


def save_decode_refs(fname):
    im = Image.open(path(fname))
    im.load()
    native = im.mode
    if native in ("L", "LA", "RGB", "RGBA"):
        nat = np.asarray(im)
    elif native == "P":
        nat = np.asarray(im.convert("RGBA" if "transparency" in im.info else "RGB"))
    elif native in ("1", "I;16"):
        nat = np.asarray(im.convert("L"))
    else:  # CMYK
        nat = np.asarray(im.convert("RGB"))
    if nat.ndim == 2:
        nat = nat[:, :, None]
    refs = {"rgb": np.asarray(im.convert("RGB")), "l": np.asarray(im.convert("L"))[:, :, None],
            "rgba": np.asarray(Image.open(path(fname)).convert("RGBA")), "native": nat,
            "exif_rgb": np.asarray(ImageOps.exif_transpose(Image.open(path(fname))).convert("RGB"))}
    np.savez_compressed(path(os.path.splitext(fname)[0] + ".npz"), **{k: np.ascontiguousarray(v) for k, v in refs.items()})


def make_decode():
    os.makedirs(path("decode"), exist_ok=True)
    rng = np.random.default_rng(2026)
    rgb = photo(rng, 61, 83)  # odd sizes: partial MCUs and Adam7 passes
    names = []

    def jpeg(name, img, **kw):
        img.save(path(f"decode/{name}.jpg"), "JPEG", **kw)
        names.append(f"decode/{name}.jpg")

    base = Image.fromarray(rgb)
    for q in (50, 75, 95):
        jpeg(f"jpeg_q{q}_420", base, quality=q)
    for sub, tag in ((0, "444"), (1, "422"), (2, "420")):
        jpeg(f"jpeg_q90_{tag}", base, quality=90, subsampling=sub)
    jpeg("jpeg_q90_411", base, quality=90, subsampling="4:1:1")
    jpeg("jpeg_restart_blocks", base, quality=90, restart_marker_blocks=3)
    jpeg("jpeg_restart_rows_progressive", base, quality=88, restart_marker_rows=1, progressive=True)
    jpeg("jpeg_progressive_420", base, quality=85, progressive=True)
    jpeg("jpeg_progressive_444", base, quality=92, progressive=True, subsampling=0)
    jpeg("jpeg_optimized_422", base, quality=80, optimize=True, subsampling=1)
    jpeg("jpeg_grey", base.convert("L"), quality=90)
    jpeg("jpeg_grey_progressive", base.convert("L"), quality=70, progressive=True)
    jpeg("jpeg_cmyk", base.convert("CMYK"), quality=90)
    small = Image.fromarray(rgb[:37, :53])
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        jpeg(f"jpeg_exif_{o}", small, quality=90, exif=ex.tobytes())
    # big-endian ("MM") EXIF, inserted after SOI by hand
    small.save(path("decode/jpeg_exif_mm_6.jpg"), "JPEG", quality=90)
    b = open(path("decode/jpeg_exif_mm_6.jpg"), "rb").read()
    app1 = b"Exif\x00\x00" + tiff_orientation(6, True)
    b = b[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + b[2:]
    open(path("decode/jpeg_exif_mm_6.jpg"), "wb").write(b)
    names.append("decode/jpeg_exif_mm_6.jpg")

    def png(name, *args, **kw):
        open(path(f"decode/{name}.png"), "wb").write(png_bytes(*args, **kw))
        names.append(f"decode/{name}.png")

    h, w = 29, 37
    g = rgb[:h, :w, 1:2].astype(np.int64)
    png("png_grey1", g >> 7, 0, 1)
    png("png_grey2", g >> 6, 0, 2)
    png("png_grey4_interlaced", g >> 4, 0, 4, interlace=True)
    png("png_grey8_trns", g, 0, 8, trns=struct.pack(">H", int(g[3, 4, 0])))
    g16 = (g * 256 + rng.integers(0, 256, size=g.shape)) * (np.arange(w)[None, :, None] % 3 == 0) + \
        g * (np.arange(w)[None, :, None] % 3 != 0)  # some samples above 255, some below
    png("png_grey16", g16, 0, 16)
    png("png_grey16_trns_interlaced", g16, 0, 16, trns=struct.pack(">H", int(g16[0, 1, 0])), interlace=True)
    la = np.concatenate([g, rgb[:h, :w, 2:3]], axis=2).astype(np.int64)
    png("png_greyalpha8", la, 4, 8)
    png("png_greyalpha16", la * 256 + 3, 4, 16)
    c = rgb[:h, :w].astype(np.int64)
    png("png_rgb8_trns", c, 2, 8, trns=struct.pack(">HHH", *[int(v) for v in c[5, 6]]))
    png("png_rgb16_interlaced", c * 256 + rng.integers(0, 256, size=c.shape), 2, 16, interlace=True)
    rgba = np.concatenate([c, rgb[:h, :w, :1]], axis=2).astype(np.int64)
    png("png_rgba8_interlaced", rgba, 6, 8, interlace=True)
    png("png_rgba16", rgba * 257, 6, 16)
    plte = rng.integers(0, 256, size=(16, 3))
    idx = (g >> 4)
    png("png_palette1", idx & 1, 3, 1, plte=plte[:2])
    png("png_palette2_trns", idx & 3, 3, 2, plte=plte[:4], trns=bytes([0, 128]))
    png("png_palette4_simple_trns", idx, 3, 4, plte=plte, trns=bytes([255, 255, 0]))
    png("png_palette8_short_plte", (g % 12), 3, 8, plte=plte[:9], trns=bytes([10, 255, 200]))  # 9..11 not in PLTE
    png("png_exif_6", c, 2, 8, exif=tiff_orientation(6, False))
    png("png_exif_8_after_idat", c, 2, 8, exif=tiff_orientation(8, True), exif_after=True)
    for n in names:
        save_decode_refs(n)

    # cortex features on a folder of JPEGs against torchvision's preprocessing and the first conv of
    # tests/data/models/alexnet.safetensors, computed with torch (Resize(256) = PIL resize BILINEAR,
    # CenterCrop(224), ToTensor, Normalize; F.conv2d with features.0's stride 4 and padding 2).
    import torch
    import torch.nn.functional as F
    os.makedirs(path("features_jpeg"), exist_ok=True)
    files = []
    for k, (hh, ww) in enumerate([(261, 347), (300, 241)]):
        Image.fromarray(photo(rng, hh, ww)).save(path(f"features_jpeg/img{k}.jpg"), quality=90)
        files.append(path(f"features_jpeg/img{k}.jpg"))
    wts = read_safetensors(os.path.join(HERE, "..", "models", "alexnet.safetensors"))
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float32)[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float32)[:, None, None]
    xs = []
    for f in files:
        im = Image.open(f).convert("RGB")
        hh, ww = torchvision_resize_size(im.height, im.width, 256)
        a = torchvision_center_crop(np.asarray(im.resize((ww, hh), Image.BILINEAR)), 224, 224)
        x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div(255)
        xs.append((x - mean) / std)
    x = torch.stack(xs)
    y = F.conv2d(x, torch.from_numpy(wts["features.0.weight"]), torch.from_numpy(wts["features.0.bias"]), stride=4,
                 padding=2)
    np.save(path("features_jpeg_alexnet_features0.npy"), y.numpy().astype(np.float32))


def read_safetensors(fname):
    raw = open(fname, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", v
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<f4").reshape(v["shape"]).copy()
    return out


if __name__ == "__main__":
    import sys
    # `make_io_fixtures.py decode` remakes only the decoding fixtures (decode/, features_jpeg/).
    if sys.argv[1:] != ["decode"]:
        make_npy()
        make_npz()
        make_safetensors()
        make_images()
    make_decode()
    print("fixtures written to", HERE)
