//! The hostile-input corpus: bad images, folders, CSVs, weights, embeddings
//! files, caches, numbers and output paths, every one generated here at test
//! time, each with its expected outcome: a correct result, or a typed error
//! that names the file, the line or the flag the user gave (and for the
//! programs a non-zero exit, never a panic). The corpus runs through the
//! readers directly and through the example programs; at the end the test
//! prints one line per case and fails on any case that did not hold.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use animal_reid::backbone::backbone::BackboneBuilder;
use animal_reid::backbone::torchscript::TorchScriptModel;
use animal_reid::data::decode::{DecodeOptions, SizeHint, decode_image};
use animal_reid::data::loaders::{LoadOptions, load_animalclef, load_folders};
use animal_reid::index::Gallery;
use animal_reid::local::cache::read_features_file;
use image::{GrayImage, ImageBuffer, Rgb, RgbImage};

/// What a case must give.
enum Expect {
    /// Success.
    Ok,
    /// An error whose text holds every one of these.
    Err(Vec<String>),
}

struct Corpus {
    dir: PathBuf,
    lines: Vec<(String, bool, String)>,
}

impl Corpus {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }
    /// Records a library call's outcome against `expect`.
    fn lib<T, E: std::fmt::Display>(&mut self, name: &str, r: Result<T, E>, expect: Expect) {
        let got = r.map(|_| ()).map_err(|e| e.to_string());
        self.judge(name, got, expect);
    }
    /// Runs an example program and records its outcome against `expect`.
    fn cli(&mut self, name: &str, program: &str, args: &[&str], expect: Expect) {
        let out = Command::new(example(program))
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if stderr.contains("panicked") {
            self.lines
                .push((name.into(), false, format!("panicked: {stderr}")));
            return;
        }
        let got = if out.status.success() {
            Ok(())
        } else {
            Err(format!("exit {:?}: {stderr}", out.status.code()))
        };
        self.judge(name, got, expect);
    }
    fn judge(&mut self, name: &str, got: Result<(), String>, expect: Expect) {
        let (ok, detail) = match (&got, &expect) {
            (Ok(()), Expect::Ok) => (true, "ok".to_string()),
            (Err(e), Expect::Err(needles)) => {
                let missing: Vec<&String> = needles.iter().filter(|n| !e.contains(*n)).collect();
                (
                    missing.is_empty(),
                    if missing.is_empty() {
                        first_line(e)
                    } else {
                        format!("error lacks {missing:?}: {e}")
                    },
                )
            }
            (Ok(()), Expect::Err(n)) => (false, format!("succeeded, expected an error with {n:?}")),
            (Err(e), Expect::Ok) => (false, format!("failed: {e}")),
        };
        self.lines.push((name.into(), ok, detail));
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(140)
        .collect()
}

fn err(needles: &[&str]) -> Expect {
    Expect::Err(needles.iter().map(|s| s.to_string()).collect())
}

/// The example binary `cargo test` built beside this test.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("examples").join(name))
        .unwrap()
}

fn png_of(img: &RgbImage) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
    buf.into_inner()
}

fn jpeg_of(img: &RgbImage) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Jpeg).unwrap();
    buf.into_inner()
}

fn pattern(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
    })
}

/// CRC-32 (IEEE) for hand-made PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A PNG whose header claims `w x h` pixels, with a tiny image-data chunk:
/// a decoder that allocated by the header would ask for gigabytes.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend(data);
        v.extend((data.len() as u32).to_be_bytes());
        v.extend(&body);
        v.extend(crc32(&body).to_be_bytes());
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    v
}

/// A baseline JPEG header claiming `w x h` pixels, without scan data.
fn jpeg_bomb(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8];
    v.extend(h.to_be_bytes());
    v.extend(w.to_be_bytes());
    v.extend([3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 0xFF, 0xD9]);
    v
}

/// A GIF header claiming a 65535 x 65535 canvas.
fn gif_bomb() -> Vec<u8> {
    let mut v = b"GIF89a".to_vec();
    v.extend([0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0x3B]);
    v
}

/// A WebP (VP8X) header claiming a 16384 x 16384 canvas.
fn webp_bomb() -> Vec<u8> {
    let mut chunk = b"VP8X".to_vec();
    chunk.extend(10u32.to_le_bytes());
    chunk.extend([0, 0, 0, 0]);
    let side = 16383u32.to_le_bytes();
    chunk.extend(&side[..3]);
    chunk.extend(&side[..3]);
    let mut v = b"RIFF".to_vec();
    v.extend((4 + chunk.len() as u32).to_le_bytes());
    v.extend(b"WEBP");
    v.extend(chunk);
    v
}

/// A JPEG with an APP1 "Exif" segment of garbage right after SOI.
fn jpeg_garbage_exif(img: &RgbImage) -> Vec<u8> {
    let jpg = jpeg_of(img);
    let mut v = jpg[..2].to_vec();
    let junk: Vec<u8> = (0..60u8).map(|i| i.wrapping_mul(37)).collect();
    v.extend([0xFF, 0xE1]);
    v.extend(((2 + 6 + junk.len()) as u16).to_be_bytes());
    v.extend(b"Exif\0\0");
    v.extend(junk);
    v.extend(&jpg[2..]);
    v
}

fn animated_gif() -> Vec<u8> {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame, RgbaImage};
    let mut buf = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut buf);
        for k in 0..3u8 {
            let f = RgbaImage::from_fn(16, 12, |x, _| image::Rgba([x as u8 * 9, k * 80, 0, 255]));
            enc.encode_frame(Frame::from_parts(
                f,
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            ))
            .unwrap();
        }
    }
    buf
}

const HEADER: &str = "image_id,identity,path,date,orientation,species,split,dataset\n";

#[test]
fn hostile_input_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Corpus {
        dir: tmp.path().to_path_buf(),
        lines: Vec::new(),
    };
    let decode = |p: &Path| decode_image(p, None, SizeHint::Full, &DecodeOptions::default());

    // --- Images, through the decoder every reader uses.
    let good = pattern(40, 30);
    let png = png_of(&good);
    let jpg = jpeg_of(&good);
    let p = c.file("img/empty.jpg", b"");
    c.lib("image: empty file", decode(&p), err(&["empty.jpg"]));
    let p = c.file("img/cut.jpg", &jpg[..jpg.len() / 2]);
    c.lib("image: truncated JPEG", decode(&p), err(&["cut.jpg"]));
    let p = c.file("img/cut.png", &png[..png.len() / 2]);
    c.lib("image: truncated PNG", decode(&p), err(&["cut.png"]));
    let p = c.file("img/png-named.jpg", &png);
    c.lib(
        "image: PNG with a .jpg name (decoded by content)",
        decode(&p),
        Expect::Ok,
    );
    let gray = GrayImage::from_fn(20, 10, |x, _| image::Luma([x as u8 * 10]));
    let mut buf = std::io::Cursor::new(Vec::new());
    gray.write_to(&mut buf, image::ImageFormat::Png).unwrap();
    let p = c.file("img/gray.png", &buf.into_inner());
    c.lib("image: grayscale PNG", decode(&p), Expect::Ok);
    let deep: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(20, 10, |x, y| {
        Rgb([x as u16 * 3000, y as u16 * 6000, 65535])
    });
    let mut buf = std::io::Cursor::new(Vec::new());
    deep.write_to(&mut buf, image::ImageFormat::Png).unwrap();
    let p = c.file("img/16bit.png", &buf.into_inner());
    c.lib("image: 16-bit PNG", decode(&p), Expect::Ok);
    let p = c.file("img/one.png", &png_of(&pattern(1, 1)));
    c.lib("image: 1x1 PNG", decode(&p), Expect::Ok);
    let p = c.file("img/bomb.png", &png_bomb(100_000, 100_000));
    c.lib(
        "image: PNG header bomb",
        decode(&p),
        err(&["bomb.png", "above the limit"]),
    );
    let p = c.file("img/bomb.jpg", &jpeg_bomb(65_535, 65_535));
    c.lib("image: JPEG header bomb", decode(&p), err(&["bomb.jpg"]));
    let p = c.file("img/bomb.gif", &gif_bomb());
    c.lib("image: GIF header bomb", decode(&p), err(&["bomb.gif"]));
    let p = c.file("img/bomb.webp", &webp_bomb());
    c.lib("image: WebP header bomb", decode(&p), err(&["bomb.webp"]));
    let p = c.file("img/anim.gif", &animated_gif());
    c.lib("image: animated GIF (first frame)", decode(&p), Expect::Ok);
    let p = c.file("img/exif.jpg", &jpeg_garbage_exif(&good));
    c.lib("image: JPEG with garbage EXIF", decode(&p), Expect::Ok);
    let p = c.file("img/noise.jpg", &[0x42u8; 300]);
    c.lib(
        "image: random bytes named .jpg",
        decode(&p),
        err(&["noise.jpg"]),
    );
    // A CMYK (Adobe) JPEG made by Pillow, committed with the decoder's tests.
    let cmyk = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/reid-data/tests/fixtures/cmyk_adobe.jpg");
    c.lib("image: CMYK JPEG", decode(&cmyk), Expect::Ok);
    c.lib(
        "image: missing file",
        decode(&c.path("img/missing.jpg")),
        err(&["missing.jpg"]),
    );

    // --- CSVs (AnimalCLEF metadata), through the loader.
    // As the programs load them: every image file checked.
    let load = |p: &Path| load_animalclef(p, &LoadOptions::default().with_check_files(true));
    c.file("csv/a.jpg", &jpg);
    let p = c.file(
        "csv/bom.csv",
        format!("\u{feff}{HEADER}0,a,a.jpg,,,cat,database,D\n").as_bytes(),
    );
    c.lib("csv: BOM before the header", load(&p), Expect::Ok);
    let text = format!("{HEADER}0,a,a.jpg,,,cat,database,D\n1,a,a.jpg,soon,,cat,query,D\n");
    let p = c.file("csv/crlf.csv", text.replace('\n', "\r\n").as_bytes());
    c.lib(
        "csv: CRLF, bad date named at its line",
        load(&p),
        err(&["crlf.csv:3:", "date"]),
    );
    let p = c.file(
        "csv/quotes.csv",
        format!("{HEADER}0,a,\"a.jpg\",,\"left, \"\"mostly\"\"\",cat,database,D\n").as_bytes(),
    );
    c.lib(
        "csv: quoted fields with commas and quotes",
        load(&p),
        Expect::Ok,
    );
    let p = c.file(
        "csv/ragged.csv",
        format!("{HEADER}0,a,a.jpg,,,cat,database\n").as_bytes(),
    );
    c.lib(
        "csv: ragged row",
        load(&p),
        err(&["ragged.csv:2:", "expected 8 fields"]),
    );
    let p = c.file(
        "csv/dup.csv",
        format!("{HEADER}0,a,a.jpg,,,cat,database,D\n0,a,a.jpg,,,cat,query,D\n").as_bytes(),
    );
    c.lib(
        "csv: duplicate image_id",
        load(&p),
        err(&["dup.csv:3:", "duplicate image_id"]),
    );
    let p = c.file(
        "csv/typo.csv",
        format!("{HEADER}0,a,a.jpg,,,cat,qurey,D\n").as_bytes(),
    );
    c.lib(
        "csv: unknown split value",
        load(&p),
        err(&["typo.csv:2:", "qurey"]),
    );
    let p = c.file(
        "csv/noid.csv",
        format!("{HEADER}0,,a.jpg,,,cat,database,D\n").as_bytes(),
    );
    c.lib(
        "csv: database row without identity",
        load(&p),
        err(&["noid.csv:2:", "identity"]),
    );
    let p = c.file(
        "csv/dotdot.csv",
        format!("{HEADER}0,a,../../nope.jpg,,,cat,database,D\n").as_bytes(),
    );
    c.lib(
        "csv: `..` path to a missing file",
        load(&p),
        err(&["nope.jpg"]),
    );
    let p = c.file(
        "csv/abs.csv",
        format!("{HEADER}0,a,/nonexistent/x.jpg,,,cat,database,D\n").as_bytes(),
    );
    c.lib(
        "csv: absolute path to a missing file",
        load(&p),
        err(&["/nonexistent/x.jpg"]),
    );
    let p = c.file("csv/header.csv", HEADER.as_bytes());
    c.lib(
        "csv: header only",
        load(&p),
        err(&["header.csv", "no data rows"]),
    );
    let p = c.file("csv/zero.csv", b"");
    c.lib("csv: empty file", load(&p), err(&["zero.csv"]));
    let p = c.file(
        "csv/binary.csv",
        &[0xFFu8, 0xFE, 0x00, 0x41, 0x0A, 0x80, 0x81],
    );
    c.lib("csv: binary bytes", load(&p), err(&["binary.csv"]));

    // --- Folders.
    let root = c.path("folders");
    std::fs::create_dir_all(root.join("cat")).unwrap();
    std::fs::write(root.join("cat/x.jpg"), &jpg).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&root, root.join("cat/loop")).unwrap();
    c.lib(
        "folders: symbolic-link loop",
        load_folders(&root, &LoadOptions::default()),
        err(&["symbolic-link loop"]),
    );
    c.lib(
        "folders: skip mode reports the loop and keeps the images",
        load_folders(&root, &LoadOptions::skip()).map(|(ds, r)| {
            assert!(!r.skipped.is_empty());
            ds
        }),
        Expect::Ok,
    );
    let f = c.file("afile.jpg", &jpg);
    c.lib(
        "folders: a file given as the folder",
        load_folders(&f, &LoadOptions::default()),
        err(&["afile.jpg", "not a folder"]),
    );

    // --- Weights.
    let bb = |p: &Path| {
        BackboneBuilder::new("efficientnet_lite0")
            .weights_file(p)
            .build()
    };
    let p = c.file("w/noise.safetensors", &[7u8; 512]);
    c.lib(
        "weights: random bytes as safetensors",
        bb(&p),
        err(&["noise.safetensors"]),
    );
    let p = c.file(
        "w/cut.safetensors",
        b"\x40\x00\x00\x00\x00\x00\x00\x00{\"a\":",
    );
    c.lib(
        "weights: truncated safetensors header",
        bb(&p),
        err(&["cut.safetensors"]),
    );
    let p = c.file("w/noise.pth", &[0x80, 0x02, 0x7d, 0x71, 0x00, 0x58]);
    c.lib("weights: truncated pickle", bb(&p), err(&["noise.pth"]));
    let p = c.file("w/noise.pt", b"random bytes, not a TorchScript model");
    c.lib(
        "weights: random bytes as TorchScript",
        TorchScriptModel::load(&p, tch::Device::Cpu),
        err(&["noise.pt", "not a zip archive"]),
    );

    let fixtures = animal_reid::core::paths::fixture_dir("state_dicts").unwrap();
    let good = std::fs::read(fixtures.join("state.safetensors")).unwrap();
    let mut flipped = good.clone();
    flipped[12] ^= 0x20; // inside the JSON header
    let p = c.file("w/flip.safetensors", &flipped);
    c.lib(
        "weights: bit flip in the safetensors header",
        bb(&p),
        err(&["flip.safetensors"]),
    );
    let p = c.file("w/other.safetensors", &good);
    c.lib(
        "weights: another model's tensors (wrong names and shapes)",
        bb(&p),
        err(&[
            "other.safetensors",
            "do not fit `efficientnet_lite0`",
            "missing",
        ]),
    );
    c.lib(
        "weights: pickle calling a non-tensor global",
        bb(&fixtures.join("evil_inside.pth")),
        err(&["evil_inside.pth"]),
    );
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let _ = vs.root().var("w", &[4, 4], tch::nn::Init::Const(1.0));
    let ck = c.path("w/ckpt.safetensors");
    animal_reid::train::train::save_var_store(&vs, &ck).unwrap();
    let bytes = std::fs::read(&ck).unwrap();
    let p = c.file("w/ckpt-cut.safetensors", &bytes[..bytes.len() - 10]);
    c.lib(
        "checkpoint: truncated",
        animal_reid::train::train::load_var_store(&vs, &p),
        err(&["ckpt-cut.safetensors"]),
    );

    // --- Embeddings files and caches.
    let records: Vec<_> = (0..3)
        .map(|i| animal_reid::core::Record::new(format!("r{i}"), format!("r{i}.jpg")))
        .collect();
    let m = ndarray::Array2::from_shape_fn((3, 4), |(i, j)| if i == j { 1.0f32 } else { 0.0 });
    let g = Gallery::from_parts("test", m.view(), records).unwrap();
    let gp = c.path("g/gallery.reidx");
    std::fs::create_dir_all(gp.parent().unwrap()).unwrap();
    g.save(&gp).unwrap();
    let bytes = std::fs::read(&gp).unwrap();
    c.lib("gallery: round trip", Gallery::load(&gp), Expect::Ok);
    let p = c.file("g/cut.reidx", &bytes[..bytes.len() - 9]);
    c.lib("gallery: truncated", Gallery::load(&p), err(&["cut.reidx"]));
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    let p = c.file("g/flip.reidx", &flipped);
    c.lib(
        "gallery: one bit flipped",
        Gallery::load(&p),
        err(&["flip.reidx"]),
    );
    let mut version = bytes.clone();
    if let Some(pos) = version.iter().position(|&b| b == 1) {
        version[pos] = 99;
    }
    let p = c.file("g/version.reidx", &version);
    c.lib(
        "gallery: unknown version byte",
        Gallery::load(&p),
        err(&["version.reidx"]),
    );
    let p = c.file("cache/feat.rlf", &[1u8; 40]);
    c.lib(
        "local-feature cache: damaged entry",
        read_features_file(&p, None),
        err(&["feat.rlf"]),
    );

    // An embedding cache of another model (another configuration) reuses
    // nothing; a feature file under another key is refused.
    let cache_dir = c.path("cache/emb");
    let cache =
        animal_reid::backbone::cache::EmbeddingCache::open(&cache_dir, "model A", 4).unwrap();
    cache.put("photo", &[1.0, 0.0, 0.0, 0.0]).unwrap();
    let other =
        animal_reid::backbone::cache::EmbeddingCache::open(&cache_dir, "model B", 4).unwrap();
    c.lib(
        "embedding cache: another model's entry is not reused",
        match other.get("photo") {
            animal_reid::backbone::cache::Lookup::Miss => Ok(()),
            _ => Err("another model's embedding was returned"),
        },
        Expect::Ok,
    );
    let key =
        |s: &str| animal_reid::local::cache::CacheKey::from_parts("sift", 1, b"p", s.as_bytes());
    let kp = animal_reid::local::Keypoint {
        x: 1.0,
        y: 1.0,
        sigma: 1.6,
        angle: 0.0,
        response: 0.1,
        octave: 0,
    };
    let f = animal_reid::local::Features::builder((8, 8), vec![kp], vec![0.5; 4])
        .dim(4)
        .build()
        .unwrap();
    let fp = c.path("cache/one.rlf");
    animal_reid::local::cache::write_features_file(&fp, &key("photo A"), &f).unwrap();
    c.lib(
        "local-feature cache: a file of another image or model",
        read_features_file(&fp, Some(&key("photo B"))),
        err(&["one.rlf"]),
    );

    // Dataset and identity names that look like paths never steer where
    // the report's pictures go.
    {
        use animal_reid::pipeline::figures::{FigureInputs, write_figures};
        use animal_reid::pipeline::{OpenSetParams, ParamGuard, SplitRole, identify};
        let mut recs = Vec::new();
        let mut rows = Vec::new();
        for (i, (who, split)) in [
            ("../../a", SplitRole::Database),
            ("../../a", SplitRole::Database),
            ("b/../../b", SplitRole::Database),
            ("b/../../b", SplitRole::Database),
            ("../../a", SplitRole::Query),
            ("/etc/new", SplitRole::Query),
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = animal_reid::core::Record::new(format!("r{i}"), format!("r{i}.jpg"))
                .with_identity(who)
                .with_split(split);
            r.dataset = Some("../../../escape".into());
            recs.push(r);
            let mut v = vec![0.0f32; 4];
            v[if who.starts_with("../") {
                0
            } else if who.starts_with('b') {
                1
            } else {
                2
            }] = 1.0;
            v[3] = 0.01 * i as f32;
            rows.extend(v);
        }
        let emb = ndarray::Array2::from_shape_vec((6, 4), rows).unwrap();
        let params = OpenSetParams::default()
            .fixed_threshold(Some(0.5))
            .check()
            .unwrap();
        let ident = identify(&recs, emb.view(), &params).unwrap();
        let out = c.path("report/out");
        std::fs::create_dir_all(&out).unwrap();
        let mut report = animal_reid::eval::report::Report::new("paths");
        let written = write_figures(
            &mut report,
            &recs,
            &ident,
            None,
            &FigureInputs::default(),
            &out,
        );
        let inside = written.as_ref().map(|(_, files)| {
            files.iter().all(|f| {
                f.canonicalize()
                    .unwrap()
                    .starts_with(out.canonicalize().unwrap())
            })
        });
        c.lib(
            "report: dataset `../../../escape`, identities `../../a`, `/etc/new`: files stay inside",
            match inside {
                Ok(true) => Ok(()),
                Ok(false) => Err("a picture was written outside the output folder".to_string()),
                Err(e) => Err(e.to_string()),
            },
            Expect::Ok,
        );
    }

    // --- The programs: numbers and output paths, refused before any work.
    let lion = animal_reid::core::paths::shared_dir().join("datasets/lion/lion.csv");
    let lion = lion.to_str().unwrap().to_string();
    let out = c.path("out").to_str().unwrap().to_string();
    let evaluate = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["--csv", &lion, "--out", &out, "--quiet"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |c: &mut Corpus, name: &str, extra: &[&str], e: Expect| {
        let args = evaluate(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        c.cli(name, "evaluate", &refs, e);
    };
    run(
        &mut c,
        "evaluate: --threshold 5",
        &["--threshold", "5"],
        err(&["`threshold`", "got 5"]),
    );
    run(
        &mut c,
        "evaluate: --threshold -5",
        &["--threshold=-5"],
        err(&["`threshold`", "got -5"]),
    );
    run(
        &mut c,
        "evaluate: --threshold NaN",
        &["--threshold", "NaN"],
        err(&["`threshold`"]),
    );
    run(
        &mut c,
        "evaluate: --episodes 0",
        &["--episodes", "0"],
        err(&["episodes"]),
    );
    run(
        &mut c,
        "evaluate: --local-weight NaN",
        &["--local-weight", "NaN"],
        err(&["--local-weight"]),
    );
    run(
        &mut c,
        "evaluate: --local-weight -1",
        &["--local-weight=-1"],
        err(&["--local-weight"]),
    );
    run(
        &mut c,
        "evaluate: --shortlist 0",
        &["--shortlist", "0"],
        err(&["shortlist"]),
    );
    run(
        &mut c,
        "evaluate: --perplexity -1",
        &["--perplexity=-1"],
        err(&["perplexity"]),
    );
    run(
        &mut c,
        "evaluate: --local 0",
        &["--local", "0"],
        err(&["--local"]),
    );
    let file_out = c.file("plain-file", b"x");
    let file_out = file_out.to_str().unwrap().to_string();
    c.cli(
        "evaluate: --out is a file",
        "evaluate",
        &["--csv", &lion, "--out", &file_out, "--quiet"],
        err(&["--out", "is a file, not a folder"]),
    );
    let dir_out = c.path("a-folder");
    std::fs::create_dir_all(&dir_out).unwrap();
    let dir_out = dir_out.to_str().unwrap().to_string();
    c.cli(
        "embed: --out is a folder",
        "embed",
        &["--csv", &lion, "--out", &dir_out, "--quiet"],
        err(&["--out", "is a folder, not a file"]),
    );
    let root = c.path("csv").to_str().unwrap().to_string();
    let sub = c.path("sub.csv").to_str().unwrap().to_string();
    c.cli(
        "animalclef: --report is a file",
        "animalclef",
        &["--root", &root, "--out", &sub, "--report", &file_out],
        err(&["--report", "is a file, not a folder"]),
    );
    c.cli(
        "animalclef: --out is a folder",
        "animalclef",
        &["--root", &root, "--out", &dir_out],
        err(&["--out", "is a folder, not a file"]),
    );
    for (program, name) in [
        ("demo", "demo: --out is a file"),
        ("ablation", "ablation: --out is a file"),
        ("train", "train: --out is a file"),
    ] {
        c.cli(
            name,
            program,
            &["--out", &file_out, "--quiet"],
            err(&["--out", "is a file, not a folder"]),
        );
    }
    c.cli(
        "compare: an unknown subcommand",
        "compare",
        &["frobnicate"],
        err(&["frobnicate"]),
    );
    let typo = c.path("csv/typo.csv").to_str().unwrap().to_string();
    c.cli(
        "embed: metadata with a split typo",
        "embed",
        &["--csv", &typo, "--out", c.path("e.reidx").to_str().unwrap()],
        err(&["typo.csv:2:", "qurey"]),
    );
    let missing = c.path("nope.reidx").to_str().unwrap().to_string();
    c.cli(
        "tsne: missing embeddings file",
        "tsne",
        &[
            "--embeddings",
            &missing,
            "--out",
            c.path("t").to_str().unwrap(),
        ],
        err(&["nope.reidx"]),
    );
    let cut = c.path("g/cut.reidx").to_str().unwrap().to_string();
    c.cli(
        "tsne: truncated embeddings file",
        "tsne",
        &["--embeddings", &cut, "--out", c.path("t").to_str().unwrap()],
        err(&["cut.reidx"]),
    );

    // --- The verdict.
    let failed: Vec<&(String, bool, String)> = c.lines.iter().filter(|l| !l.1).collect();
    for (name, ok, detail) in &c.lines {
        eprintln!("{} {name}: {detail}", if *ok { "ok  " } else { "FAIL" });
    }
    eprintln!(
        "hostile-input corpus: {} cases, {} held, {} did not",
        c.lines.len(),
        c.lines.len() - failed.len(),
        failed.len()
    );
    assert!(c.lines.len() >= 40, "only {} cases", c.lines.len());
    assert!(
        failed.is_empty(),
        "{} cases did not hold: {failed:#?}",
        failed.len()
    );
}
