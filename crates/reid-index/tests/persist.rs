//! Persistence: bit-exact round trips and typed errors for damaged files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::unit_rows;
use reid_index::persist::{FORMAT_VERSION, MAGIC, PREAMBLE_LEN};
use reid_index::{Filter, Gallery, IndexError, Record};

fn sample(n: usize, d: usize, seed: u64) -> Gallery {
    let mut emb = unit_rows(n, d, seed);
    // Values whose bits a lossy format would change.
    if n > 2 {
        emb[[0, 0]] = f32::MIN_POSITIVE / 3.0; // subnormal
        emb[[1, 1]] = -0.0;
        emb[[2, 0]] = 1.0 + f32::EPSILON;
    }
    let recs = (0..n)
        .map(|i| {
            let mut r = Record::new(format!("img-{i}-ü\"quoted\""), format!("photos/{i}.jpg"))
                .with_identity(format!("ind{}", i % 7))
                .with_species(if i % 2 == 0 { "lion" } else { "lynx" })
                .with_dataset("Kruger")
                .with_split(reid_index::SplitRole::Database)
                .with("note", "comma, equals= and \n newline");
            if i % 3 == 0 {
                r.identity = None;
                r.bbox = Some(reid_core::BBox {
                    x: 1.5,
                    y: 2.0,
                    w: 30.0,
                    h: 40.25,
                });
                r.date = Some(reid_core::Date {
                    year: 2024,
                    month: 2,
                    day: 29,
                });
            }
            r
        })
        .collect();
    Gallery::from_parts("megadescriptor-L-384@v1", emb.view(), recs).unwrap()
}

fn same(a: &Gallery, b: &Gallery) {
    assert_eq!(a.model_id(), b.model_id());
    assert_eq!(a.dim(), b.dim());
    assert_eq!(a.records(), b.records());
    let bits = |g: &Gallery| {
        g.embeddings()
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(a), bits(b));
}

#[test]
fn round_trip_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    for (n, d, seed) in [(1, 1, 1), (37, 16, 2), (500, 64, 3)] {
        let g = sample(n, d, seed);
        let p = dir.path().join(format!("g{n}.reidx"));
        g.save(&p).unwrap();
        let back = Gallery::load(&p).unwrap();
        same(&g, &back);
        // The loaded gallery searches and grows like the original.
        let q = unit_rows(4, d, 9);
        let f = Filter::eq("species", "lion");
        assert_eq!(
            g.search(q.view(), 5, Some(&f)).unwrap(),
            back.search(q.view(), 5, Some(&f)).unwrap()
        );
        // Saving again gives the same bytes.
        let p2 = dir.path().join("again.reidx");
        back.save(&p2).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(&p2).unwrap());
    }
    // An empty gallery round-trips too.
    let e = Gallery::new("m", 8).unwrap();
    let p = dir.path().join("empty.reidx");
    e.save(&p).unwrap();
    let back = Gallery::load(&p).unwrap();
    assert!(back.is_empty());
    assert_eq!(back.dim(), 8);
}

#[test]
fn file_layout_preamble() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.reidx");
    sample(3, 2, 1).save(&p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(&bytes[..8], &MAGIC);
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        FORMAT_VERSION
    );
    let payload = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
    assert_eq!(payload as usize, bytes.len() - PREAMBLE_LEN);
    // The last 3*2 f32 are the embeddings, little-endian.
    let g = Gallery::load(&p).unwrap();
    let tail = &bytes[bytes.len() - 24..];
    let floats: Vec<f32> = tail
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(floats, g.embeddings().iter().copied().collect::<Vec<_>>());
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn damaged_files_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.reidx");
    sample(20, 8, 5).save(&p).unwrap();
    let good = std::fs::read(&p).unwrap();
    let bad = dir.path().join("bad.reidx");
    let load = |bytes: &[u8]| {
        std::fs::write(&bad, bytes).unwrap();
        Gallery::load(&bad)
    };

    // Truncated anywhere: inside the magic, the preamble, the header, the embeddings.
    for cut in [
        0,
        3,
        8,
        20,
        PREAMBLE_LEN,
        PREAMBLE_LEN + 5,
        good.len() / 2,
        good.len() - 1,
    ] {
        let e = load(&good[..cut]).unwrap_err();
        assert!(matches!(e, IndexError::Truncated { .. }), "cut {cut}: {e}");
    }
    // Extra bytes at the end.
    let mut longer = good.clone();
    longer.push(0);
    assert!(matches!(load(&longer), Err(IndexError::Truncated { .. })));

    // Wrong magic.
    let mut m = good.clone();
    m[0] = b'X';
    assert!(matches!(load(&m), Err(IndexError::BadMagic { .. })));
    assert!(matches!(
        load(b"PK\x03\x04 a zip file"),
        Err(IndexError::BadMagic { .. })
    ));

    // Wrong version.
    let mut v = good.clone();
    v[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let e = load(&v).unwrap_err();
    assert!(
        matches!(e, IndexError::UnsupportedVersion { found, .. } if found == FORMAT_VERSION + 1),
        "{e}"
    );

    // One flipped bit anywhere in the payload, or in the stored checksum.
    for pos in [
        PREAMBLE_LEN,
        PREAMBLE_LEN + 9,
        good.len() / 2,
        good.len() - 1,
        30,
    ] {
        let mut c = good.clone();
        c[pos] ^= 0x10;
        let e = load(&c).unwrap_err();
        assert!(matches!(e, IndexError::Checksum { .. }), "byte {pos}: {e}");
    }

    // A missing file is an I/O error naming the path.
    let e = Gallery::load(dir.path().join("missing.reidx")).unwrap_err();
    assert!(matches!(e, IndexError::Io { .. }) && e.to_string().contains("missing.reidx"));

    // None of this touched the good file.
    assert_eq!(std::fs::read(&p).unwrap(), good);
}

#[test]
fn failed_save_keeps_the_previous_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.reidx");
    sample(5, 4, 1).save(&p).unwrap();
    let before = std::fs::read(&p).unwrap();
    // Saving into a path whose parent is a file fails before touching `p`.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let e = sample(6, 4, 2).save(blocker.join("g.reidx")).unwrap_err();
    assert!(
        matches!(e, IndexError::Write(_)) && e.to_string().contains("is not a folder"),
        "{e}"
    );
    // Overwriting an existing directory fails at the rename; the folder keeps no temp file.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::create_dir(sub.join("g.reidx")).unwrap();
    assert!(sample(6, 4, 2).save(sub.join("g.reidx")).is_err());
    assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 1);
    assert_eq!(std::fs::read(&p).unwrap(), before);
}

/// A file in format version 1 (records as id, identity and a string map),
/// as the `embed` example wrote before version 2: still read, its `path`,
/// `split`, `dataset` and `species` attributes become those fields.
#[test]
fn version_1_files_are_still_read() {
    use sha2::{Digest, Sha256};
    let header = br#"{"model_id":"m@224","dim":2,"rows":2,"records":[{"id":"a","identity":"lion-1","meta":{"path":"x/a.jpg","split":"query","dataset":"D","species":"lion","camera":"3"}},{"id":"b","identity":"","meta":{}}]}"#;
    let mut payload = (header.len() as u64).to_le_bytes().to_vec();
    payload.extend_from_slice(header);
    for v in [1.0f32, 0.0, 0.0, 1.0] {
        payload.extend_from_slice(&v.to_le_bytes());
    }
    let mut file = b"REIDGAL\0".to_vec();
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(&0u32.to_le_bytes());
    file.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    file.extend_from_slice(&Sha256::digest(&payload));
    file.extend_from_slice(&payload);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v1.reidx");
    std::fs::write(&p, &file).unwrap();
    let g = Gallery::load(&p).unwrap();
    let a = &g.records()[0];
    assert_eq!(a.image_id, "a");
    assert_eq!(a.identity.as_deref(), Some("lion-1"));
    assert_eq!(a.path, std::path::PathBuf::from("x/a.jpg"));
    assert_eq!(a.split, Some(reid_index::SplitRole::Query));
    assert_eq!(
        (a.dataset.as_deref(), a.species.as_deref()),
        (Some("D"), Some("lion"))
    );
    assert_eq!(a.attributes.get("camera").map(String::as_str), Some("3"));
    assert_eq!(g.records()[1].identity, None);
    assert_eq!(g.embeddings()[[1, 1]], 1.0);
}
