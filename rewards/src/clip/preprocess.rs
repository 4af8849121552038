//! Camera frame to CLIP input, as Hugging Face's `CLIPImageProcessorPil` does it (the PIL
//! backend, which transformers 5 uses when torchvision is absent, and which `CLIPImageProcessor`
//! always was before version 5):
//!
//! 1. resize with PIL's bicubic filter on uint8 (`Image.resize(..., BICUBIC)`): separable,
//!    a = -0.5, the kernel widened by the scale when shrinking, fixed-point weights with 22
//!    fraction bits, rounding and clipping to uint8 after each pass (horizontal first);
//! 2. `CentreCrop`: the shortest side becomes 224 (the other `int(224 * long / short)`), then
//!    the centre 224 x 224 is cut out (offset `(size - 224) / 2`, rounded down);
//!    `Plain`: straight to 224 x 224, the aspect ratio lost, as VLM-RM fed its frames;
//! 3. `x / 255` then `(x - mean) / std` with OpenAI's channel means and deviations, in f32.
//!
//! transformers' torchvision backend (the default when torchvision is installed) resizes with
//! torchvision's antialiased bicubic kernel and rounds the crop offset instead: pixels can differ
//! by one level on some frames.

use super::ClipError;

// OpenAI's published constants, written as published (HF rounds them to f32 the same way).
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.48145466, 0.4578275, 0.40821073];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.26862954, 0.26130258, 0.27577711];

/// How a frame is brought to the model's square input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    /// Shortest side to the input size, then a centre crop (HF `CLIPImageProcessor`).
    CentreCrop,
    /// Straight to the input size, aspect ratio not kept (VLM-RM).
    Plain,
}

/// An RGB frame, 8 bits per channel, rows top to bottom, no padding between rows.
#[derive(Clone, Copy, Debug)]
pub struct Rgb8<'a> {
    pub data: &'a [u8],
    pub width: usize,
    pub height: usize,
}

impl Rgb8<'_> {
    fn check(&self) -> Result<(), ClipError> {
        if self.width == 0 || self.height == 0 {
            return Err(ClipError::Image(format!(
                "{} x {} frame: width and height must be above zero",
                self.width, self.height
            )));
        }
        let expected = self.width * self.height * 3;
        if self.data.len() != expected {
            return Err(ClipError::Image(format!(
                "{} x {} rgb8 frame needs {expected} bytes (3 per pixel), got {}",
                self.width,
                self.height,
                self.data.len()
            )));
        }
        Ok(())
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// For each output index: the first input index and the fixed-point weights.
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    (0..out_size)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale;
            // `as i64` truncates toward zero like C's (int) cast.
            let min = ((centre - support + 0.5) as i64).max(0) as usize;
            let max = ((centre + support + 0.5) as i64).min(in_size as i64) as usize;
            let weights: Vec<f64> = (min..max)
                .map(|i| bicubic((i as f64 - centre + 0.5) / filter_scale))
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|w| {
                    let w = if total != 0.0 { w / total } else { *w };
                    let scaled = w * (1u64 << PRECISION_BITS) as f64;
                    if w < 0.0 {
                        (scaled - 0.5) as i64
                    } else {
                        (scaled + 0.5) as i64
                    }
                })
                .collect();
            (min, fixed)
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    if acc >= (1i64 << PRECISION_BITS << 8) {
        255
    } else if acc <= 0 {
        0
    } else {
        (acc >> PRECISION_BITS) as u8
    }
}

fn resize_horizontal(img: &[u8], w: usize, h: usize, out_w: usize) -> Vec<u8> {
    let coeffs = coefficients(w, out_w);
    let mut out = vec![0u8; out_w * h * 3];
    for y in 0..h {
        for (x, (min, k)) in coeffs.iter().enumerate() {
            for c in 0..3 {
                let mut acc = 1i64 << (PRECISION_BITS - 1);
                for (j, kk) in k.iter().enumerate() {
                    acc += img[(y * w + min + j) * 3 + c] as i64 * kk;
                }
                out[(y * out_w + x) * 3 + c] = clip8(acc);
            }
        }
    }
    out
}

fn resize_vertical(img: &[u8], w: usize, h: usize, out_h: usize) -> Vec<u8> {
    let coeffs = coefficients(h, out_h);
    let mut out = vec![0u8; w * out_h * 3];
    for (y, (min, k)) in coeffs.iter().enumerate() {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 1i64 << (PRECISION_BITS - 1);
                for (j, kk) in k.iter().enumerate() {
                    acc += img[((min + j) * w + x) * 3 + c] as i64 * kk;
                }
                out[(y * w + x) * 3 + c] = clip8(acc);
            }
        }
    }
    out
}

/// Whether the vertical pass runs first. Pillow up to 12.x always ran the horizontal pass
/// first; Pillow 13.0 (what transformers 5.24 was checked against) starts with the vertical
/// one when the height loses more than twice as many pixels as the width
/// (`ImagingResampleInner` in Pillow 13.0's `Resample.c`), and rounding to uint8 between the
/// passes makes the order visible.
fn vertical_first(w: usize, h: usize, out_w: usize, out_h: usize) -> bool {
    let (shrink_h, shrink_w) = (h as i64 - out_h as i64, w as i64 - out_w as i64);
    shrink_h > 0 && shrink_h > 2 * shrink_w
}

/// PIL's bicubic resize of an interleaved RGB image.
pub fn resize_bicubic(
    src: &[u8],
    width: usize,
    height: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    match (out_w != width, out_h != height) {
        (false, false) => src.to_vec(),
        (true, false) => resize_horizontal(src, width, height, out_w),
        (false, true) => resize_vertical(src, width, height, out_h),
        (true, true) if vertical_first(width, height, out_w, out_h) => {
            let tmp = resize_vertical(src, width, height, out_h);
            resize_horizontal(&tmp, width, out_h, out_w)
        }
        (true, true) => {
            let tmp = resize_horizontal(src, width, height, out_w);
            resize_vertical(&tmp, out_w, height, out_h)
        }
    }
}

/// The uint8 frame the model sees, `size` x `size`, interleaved RGB.
pub fn resize_frame(frame: Rgb8<'_>, size: usize, mode: Resize) -> Result<Vec<u8>, ClipError> {
    frame.check()?;
    let (w, h) = (frame.width, frame.height);
    match mode {
        Resize::Plain => Ok(resize_bicubic(frame.data, w, h, size, size)),
        Resize::CentreCrop => {
            let (short, long) = if w <= h { (w, h) } else { (h, w) };
            // Python's int(size * long / short): truncation of the float quotient.
            let new_long = (size as f64 * long as f64 / short as f64) as usize;
            let (rw, rh) = if w <= h {
                (size, new_long)
            } else {
                (new_long, size)
            };
            let resized = resize_bicubic(frame.data, w, h, rw, rh);
            let (top, left) = ((rh - size) / 2, (rw - size) / 2);
            let mut out = Vec::with_capacity(size * size * 3);
            for y in top..top + size {
                out.extend_from_slice(&resized[(y * rw + left) * 3..(y * rw + left + size) * 3]);
            }
            Ok(out)
        }
    }
}

/// Rescale and normalise a `size` x `size` uint8 frame into the model's [3, size, size]
/// layout, in HF's order of f32 operations.
pub fn normalise(rgb: &[u8], size: usize) -> Vec<f32> {
    let mut out = vec![0f32; 3 * size * size];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            // HF rescales in f64 (x * (1/255)) and casts to f32 before normalising in f32.
            let x = (px[c] as f64 * (1.0 / 255.0)) as f32;
            out[c * size * size + i] = (x - CLIP_MEAN[c]) / CLIP_STD[c];
        }
    }
    out
}

/// Reads a PNG file as an rgb8 frame: (bytes, width, height). Palette and grey images are
/// expanded, 16-bit channels cut to 8 and alpha dropped, as PIL's `convert("RGB")` does.
pub fn read_png(path: &std::path::Path) -> Result<(Vec<u8>, usize, usize), ClipError> {
    let bad = |message: String| ClipError::Image(format!("{}: {message}", path.display()));
    let png = |source| ClipError::Png {
        file: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(|source| ClipError::Read {
        file: path.to_owned(),
        source,
    })?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(png)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad("the image is too large".into()))?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(png)?;
    buf.truncate(info.buffer_size());
    let (width, height) = (info.width as usize, info.height as usize);
    let rgb = match info.color_type {
        png::ColorType::Rgb => buf,
        png::ColorType::Rgba => buf
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => buf
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        other => return Err(bad(format!("unsupported PNG colour type {other:?}"))),
    };
    Ok((rgb, width, height))
}

/// A frame all the way to the model's input, [3, size, size] flattened.
pub fn preprocess(frame: Rgb8<'_>, size: usize, mode: Resize) -> Result<Vec<f32>, ClipError> {
    Ok(normalise(&resize_frame(frame, size, mode)?, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(301, 224), (61, 224), (224, 224), (640, 224)] {
            for (_, k) in coefficients(i, o) {
                let sum: i64 = k.iter().sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= k.len() as i64,
                    "{i}->{o}: {sum}"
                );
            }
        }
    }

    #[test]
    fn flat_frame_stays_flat() {
        let frame = vec![200u8; 37 * 53 * 3];
        let out = resize_frame(
            Rgb8 {
                data: &frame,
                width: 37,
                height: 53,
            },
            224,
            Resize::CentreCrop,
        )
        .unwrap();
        assert_eq!(out.len(), 224 * 224 * 3);
        assert!(out.iter().all(|&v| v == 200));
    }

    #[test]
    fn wrong_sizes_are_rejected() {
        let frame = vec![0u8; 10];
        let err = preprocess(
            Rgb8 {
                data: &frame,
                width: 2,
                height: 2,
            },
            224,
            Resize::Plain,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("needs 12 bytes") && err.contains("got 10"),
            "{err}"
        );
        assert!(preprocess(
            Rgb8 {
                data: &[],
                width: 0,
                height: 4
            },
            224,
            Resize::Plain
        )
        .is_err());
    }
}
