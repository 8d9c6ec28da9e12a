//! Fuzz target `csv_animalclef`: arbitrary bytes as an AnimalCLEF
//! `metadata.csv`, through `loaders::load_animalclef` in fail-fast mode, in
//! skip mode, and in skip mode with the file checks on (relative paths then
//! point into the scratch folder, where nothing but the CSV exists).

use animal_reid_fuzz::{consume, write_input};
use reid_data::loaders::{LoadOptions, load_animalclef};

fn main() {
    // Before the fork server starts: every child then shares one folder.
    animal_reid_fuzz::scratch();
    let fail_fast = LoadOptions::default().with_check_files(false);
    let skip = LoadOptions::skip().with_check_files(false);
    let skip_checked = LoadOptions::skip().with_check_files(true);
    afl::fuzz_nohook!(|data: &[u8]| {
        let csv = write_input("metadata.csv", data);
        consume(load_animalclef(&csv, &fail_fast));
        if let Ok((ds, report)) = load_animalclef(&csv, &skip) {
            consume(ds.stats());
            consume(report.is_clean());
        }
        consume(load_animalclef(&csv, &skip_checked));
    });
}
