//! Fuzz target `csv_generic`: arbitrary bytes as a CSV for
//! `loaders::load_csv` / `load_csv_with_root`, with the default (AnimalCLEF)
//! columns, and with custom column names and each bounding-box layout
//! (`x,y,w,h`, `x1,y1,x2,y2`, one `[x, y, w, h]` column), fail-fast and skip.

use std::path::Path;

use animal_reid_fuzz::{consume, write_input};
use reid_data::loaders::{BboxColumns, CsvColumns, LoadOptions, load_csv, load_csv_with_root};

fn main() {
    // Before the fork server starts: every child then shares one folder.
    animal_reid_fuzz::scratch();
    let fail_fast = LoadOptions::default();
    let skip = LoadOptions::skip();
    let defaults = CsvColumns::default();
    let mut xywh = CsvColumns::new("id", "file");
    xywh.identity = Some("animal".into());
    xywh.date = Some("when".into());
    xywh.bbox = Some(BboxColumns::xywh("x", "y", "w", "h"));
    let mut xyxy = CsvColumns::new("id", "file");
    xyxy.split = Some("split".into());
    xyxy.bbox = Some(BboxColumns::xyxy("x1", "y1", "x2", "y2"));
    let mut list = CsvColumns::new("image_id", "path");
    list.identity = Some("identity".into());
    list.orientation = Some("orientation".into());
    list.bbox = Some(BboxColumns::List("bbox".into()));
    let root = Path::new("/nonexistent/fuzz-root");
    afl::fuzz_nohook!(|data: &[u8]| {
        let csv = write_input("data.csv", data);
        consume(load_csv(&csv, &defaults, &fail_fast));
        consume(load_csv(&csv, &xywh, &skip));
        consume(load_csv_with_root(&csv, root, &xyxy, &skip));
        consume(load_csv_with_root(&csv, root, &list, &skip));
        consume(load_csv_with_root(&csv, root, &list, &fail_fast));
    });
}
