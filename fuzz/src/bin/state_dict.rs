//! Fuzz target `state_dict`: arbitrary bytes as a weights file through
//! `reid_backbone::state_dict` (`detect_format`, `read`, `read_with` a
//! sub-dict and prefix), then `Loader::load` of what was read into a tiny
//! model (`fc`: Linear 2 -> 3, `bn`: BatchNorm 3), non-strict and strict.
//! Needs libtorch (the `torch` feature).

use animal_reid_fuzz::{consume, write_input};
use reid_backbone::state_dict::{self, Loader, ReadOptions};
use tch::nn;

fn main() {
    // Before the fork server starts: every child then shares one folder.
    animal_reid_fuzz::scratch();
    tch::set_num_threads(1);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let root = vs.root();
    let _fc = nn::linear(&root / "fc", 2, 3, Default::default());
    let _bn = nn::batch_norm1d(&root / "bn", 3, Default::default());
    let sub = ReadOptions::default()
        .sub_dict("state_dict")
        .strip_prefix("module.");
    afl::fuzz_nohook!(|data: &[u8]| {
        let path = write_input("weights.pth", data);
        consume(state_dict::detect_format(&path));
        if let Ok(tensors) = state_dict::read(&path) {
            let sizes: Vec<Vec<i64>> = tensors.iter().map(|(_, t)| t.size()).collect();
            consume(sizes);
            consume(Loader::new().load(&vs, tensors).map(|r| r.loaded));
        }
        if let Ok(tensors) = state_dict::read_with(&path, &sub) {
            consume(
                Loader::new()
                    .strict(true)
                    .load(&vs, tensors)
                    .map(|r| r.loaded),
            );
        }
    });
}
