//! Fuzz target `gallery`: arbitrary bytes through `Gallery::load`
//! (`reid_index::persist`). Each input is loaded three times: as the file it
//! is; and as a payload (the input minus its 56-byte preamble when it starts
//! with the magic, else the whole input) re-wrapped in a preamble with the
//! right length and SHA-256, as format versions 2 and 1, so that mutations
//! reach the header JSON and the embeddings instead of stopping at the
//! checksum. A gallery that loads is searched once.

use animal_reid_fuzz::{consume, sha256, write_input};
use reid_index::Gallery;
use reid_index::persist::{FORMAT_VERSION, MAGIC, PREAMBLE_LEN};

fn wrap(payload: &[u8], version: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(PREAMBLE_LEN + payload.len());
    v.extend_from_slice(&MAGIC);
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    v.extend_from_slice(&sha256(payload));
    v.extend_from_slice(payload);
    v
}

fn load(bytes: &[u8]) {
    let path = write_input("gallery.bin", bytes);
    if let Ok(g) = Gallery::load(&path) {
        consume(g.len());
        if g.dim() > 0 && g.dim() <= 4096 && !g.is_empty() {
            let q = ndarray::Array2::<f32>::ones((1, g.dim()));
            consume(g.search(q.view(), 3, None).map(|h| h.len()));
        }
    }
}

fn main() {
    // Before the fork server starts: every child then shares one folder.
    animal_reid_fuzz::scratch();
    afl::fuzz_nohook!(|data: &[u8]| {
        load(data);
        let payload = if data.starts_with(&MAGIC) && data.len() >= PREAMBLE_LEN {
            &data[PREAMBLE_LEN..]
        } else {
            data
        };
        load(&wrap(payload, FORMAT_VERSION));
        load(&wrap(payload, 1));
    });
}
