//! `--log FILE`: one row per step (CSV or JSONL, by the extension) and, at the end, a plot of
//! the loss per step beside it (FILE with the extension .png): the training loss in grey, its
//! moving average in blue, the held-out losses as red squares.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub struct Row {
    pub step: usize,
    pub epoch: usize,
    pub loss: f32,
    pub lr: f64,
    pub tokens: usize,
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Csv,
    Jsonl,
}

pub struct Log {
    file: Option<(std::fs::File, PathBuf, Format)>,
    losses: Vec<(usize, f32)>,
    heldout: Vec<(usize, f32)>,
}

impl Log {
    /// Opens `path` (appending when `resumed`); None logs nothing.
    pub fn open(path: Option<&Path>, resumed: bool) -> anyhow::Result<Log> {
        let file = match path {
            None => None,
            Some(p) => {
                let format = match p.extension().and_then(|e| e.to_str()) {
                    Some("csv") => Format::Csv,
                    Some("jsonl") | Some("json") => Format::Jsonl,
                    _ => {
                        anyhow::bail!("--log {}: the name must end in .csv or .jsonl", p.display())
                    }
                };
                let existed = p.exists();
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(resumed)
                    .truncate(!resumed)
                    .open(p)
                    .with_context(|| format!("cannot write {}", p.display()))?;
                if format == Format::Csv && !(resumed && existed) {
                    writeln!(
                        f,
                        "step,epoch,loss,lr,tokens,tokens_per_s,elapsed_s,heldout_loss"
                    )?;
                }
                Some((f, p.to_path_buf(), format))
            }
        };
        Ok(Log {
            file,
            losses: vec![],
            heldout: vec![],
        })
    }

    pub fn step(&mut self, r: &Row) -> anyhow::Result<()> {
        self.losses.push((r.step, r.loss));
        if let Some((f, _, format)) = &mut self.file {
            match format {
                Format::Csv => writeln!(
                    f,
                    "{},{},{},{:e},{},{:.1},{:.2},",
                    r.step, r.epoch, r.loss, r.lr, r.tokens, r.tokens_per_s, r.elapsed_s
                )?,
                Format::Jsonl => writeln!(
                    f,
                    "{}",
                    serde_json::json!({
                        "step": r.step, "epoch": r.epoch, "loss": r.loss, "lr": r.lr,
                        "tokens": r.tokens, "tokens_per_s": r.tokens_per_s,
                        "elapsed_s": r.elapsed_s,
                    })
                )?,
            }
        }
        Ok(())
    }

    pub fn heldout(&mut self, step: usize, epoch: usize, loss: f32) -> anyhow::Result<()> {
        self.heldout.push((step, loss));
        if let Some((f, _, format)) = &mut self.file {
            match format {
                Format::Csv => writeln!(f, "{step},{epoch},,,,,,{loss}")?,
                Format::Jsonl => writeln!(
                    f,
                    "{}",
                    serde_json::json!({"step": step, "epoch": epoch, "heldout_loss": loss})
                )?,
            }
        }
        Ok(())
    }

    /// Flushes the log and writes the plot; returns the plot's path.
    pub fn finish(mut self) -> anyhow::Result<Option<PathBuf>> {
        let Some((mut f, path, _)) = self.file.take() else {
            return Ok(None);
        };
        f.flush()?;
        let png = path.with_extension("png");
        let image = plot(&self.losses, &self.heldout);
        std::fs::write(&png, image.encode_png()?)
            .with_context(|| format!("cannot write {}", png.display()))?;
        Ok(Some(png))
    }
}

/// An RGB canvas.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<[u8; 3]>,
}

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];
const GREY: [u8; 3] = [190, 190, 190];
const BLUE: [u8; 3] = [31, 90, 200];
const RED: [u8; 3] = [210, 40, 40];

impl Canvas {
    fn new(w: usize, h: usize) -> Canvas {
        Canvas {
            w,
            h,
            px: vec![WHITE; w * h],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            self.px[y as usize * self.w + x as usize] = c;
        }
    }

    /// A straight line (Bresenham).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// `text` in a 3×5 pixel font scaled by 2, left edge at x, top at y.
    fn text(&mut self, x: i64, y: i64, text: &str) {
        for (i, ch) in text.chars().enumerate() {
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        for (ox, oy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            self.set(
                                x + i as i64 * 8 + col * 2 + ox,
                                y + r as i64 * 2 + oy,
                                BLACK,
                            );
                        }
                    }
                }
            }
        }
    }

    fn encode_png(&self) -> anyhow::Result<Vec<u8>> {
        let mut raw = Vec::with_capacity(self.h * (1 + 3 * self.w));
        for row in self.px.chunks_exact(self.w) {
            raw.push(0); // filter: none
            for p in row {
                raw.extend_from_slice(p);
            }
        }
        let mut z = flate2::write::ZlibEncoder::new(vec![], flate2::Compression::default());
        z.write_all(&raw)?;
        let idat = z.finish()?;
        let mut ihdr = vec![];
        ihdr.extend_from_slice(&(self.w as u32).to_be_bytes());
        ihdr.extend_from_slice(&(self.h as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in [
            (b"IHDR", &ihdr[..]),
            (b"IDAT", &idat[..]),
            (b"IEND", &[][..]),
        ] {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let start = out.len();
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            let crc = crc32fast::hash(&out[start..]);
            out.extend_from_slice(&crc.to_be_bytes());
        }
        Ok(out)
    }
}

/// Rows of a 3×5 glyph, 3 bits each (4 = left column); digits and the characters of
/// numbers and axis names.
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        'e' => [0, 7, 7, 4, 7],
        'l' => [6, 2, 2, 2, 7],
        'o' => [0, 7, 5, 5, 7],
        's' => [0, 7, 6, 1, 7],
        't' => [2, 7, 2, 2, 3],
        'p' => [0, 7, 5, 7, 4],
        _ => [0; 5],
    }
}

/// The loss per step (grey), its moving average (blue), held-out losses (red squares).
fn plot(losses: &[(usize, f32)], heldout: &[(usize, f32)]) -> Canvas {
    let (w, h) = (800usize, 420usize);
    let (left, right, top, bottom) = (70i64, 20i64, 20i64, 40i64);
    let mut c = Canvas::new(w, h);
    let (x1, y1) = (w as i64 - right, h as i64 - bottom);
    c.line((left, top), (left, y1), BLACK);
    c.line((left, y1), (x1, y1), BLACK);
    let finite = |v: &&(usize, f32)| v.1.is_finite();
    let all: Vec<(usize, f32)> = losses
        .iter()
        .chain(heldout)
        .filter(finite)
        .copied()
        .collect();
    if all.is_empty() {
        return c;
    }
    let max_step = all.iter().map(|p| p.0).max().unwrap_or(1).max(1);
    let max_loss = all.iter().map(|p| p.1).fold(0f32, f32::max).max(1e-6);
    let to_px = |(s, l): (usize, f32)| {
        let x = left + ((s as f64 / max_step as f64) * (x1 - left) as f64) as i64;
        let y = y1 - ((l / max_loss) as f64 * (y1 - top) as f64) as i64;
        (x, y)
    };
    let points: Vec<(usize, f32)> = losses.iter().filter(finite).copied().collect();
    for pair in points.windows(2) {
        c.line(to_px(pair[0]), to_px(pair[1]), GREY);
    }
    let mut ema: Option<f32> = None;
    let mut last = None;
    for &(s, l) in &points {
        let e = ema.map_or(l, |e| 0.9 * e + 0.1 * l);
        ema = Some(e);
        let p = to_px((s, e));
        if let Some(q) = last {
            c.line(q, p, BLUE);
        }
        last = Some(p);
    }
    for &(s, l) in heldout.iter().filter(finite) {
        let (x, y) = to_px((s, l));
        for dx in -3..=3 {
            for dy in -3..=3 {
                c.set(x + dx, y + dy, RED);
            }
        }
    }
    c.text(4, top - 4, &format!("{max_loss:.3}"));
    c.text(4, y1 - 10, "0");
    c.text(4, (top + y1) / 2, "loss");
    c.text(left, y1 + 14, "0");
    c.text(x1 - 8 * 6, y1 + 14, &format!("{max_step}"));
    c.text((left + x1) / 2 - 16, y1 + 14, "steps");
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_is_a_png_of_its_size() {
        let losses: Vec<(usize, f32)> = (1..=50).map(|s| (s, 3.0 / s as f32)).collect();
        let png = plot(&losses, &[(50, 0.2)]).encode_png().unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 800);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 420);
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
        // the IHDR chunk's CRC covers its type and data
        let crc = crc32fast::hash(&png[12..29]);
        assert_eq!(u32::from_be_bytes(png[29..33].try_into().unwrap()), crc);
    }

    #[test]
    fn an_empty_or_nan_run_still_plots() {
        assert!(plot(&[], &[]).encode_png().is_ok());
        assert!(plot(&[(1, f32::NAN), (2, f32::INFINITY)], &[])
            .encode_png()
            .is_ok());
    }
}
