//! Reading the golden fixtures under testdata/model/ (shared by the CPU and GPU golden tests).

use std::io::Read;
use std::path::Path;

/// Copies `src` into `dst`, gunzipping `*.gz` files (dropping the suffix).
pub fn materialize(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_dir() {
            materialize(&p, &dst.join(&name));
        } else if let Some(stem) = name.strip_suffix(".gz") {
            let mut out = vec![];
            flate2::read::GzDecoder::new(std::fs::File::open(&p).unwrap())
                .read_to_end(&mut out)
                .unwrap();
            std::fs::write(dst.join(stem), out).unwrap();
        } else {
            std::fs::copy(&p, dst.join(&name)).unwrap();
        }
    }
}

/// Reads a little-endian f32 C-order .npy file: (shape, data).
#[allow(dead_code)]
pub fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY", "{} is not .npy", path.display());
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).unwrap();
    assert!(
        header.contains("'<f4'"),
        "{}: dtype must be <f4: {header}",
        path.display()
    );
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape_txt = header.split("'shape':").nth(1).unwrap();
    let shape_txt = &shape_txt[shape_txt.find('(').unwrap() + 1..shape_txt.find(')').unwrap()];
    let shape: Vec<usize> = shape_txt
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let data: Vec<f32> = b[start + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(
        data.len(),
        shape.iter().product::<usize>(),
        "{}",
        path.display()
    );
    (shape, data)
}
