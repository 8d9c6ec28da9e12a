//! Fuzz target `image`: arbitrary bytes as an image file, through
//! `decode::image_dimensions`, `decode_image` (full resolution; bounding box
//! with a reduced-scale size hint and alpha compositing) and
//! `Preprocess::load` (decode, crop, resize, normalise). The pixel limit is
//! lowered to 4 MP so that a legitimately large (but allowed) image is not
//! reported as a hang; a decode that gets past the limit still shows as one.

use std::num::NonZeroU64;

use animal_reid_fuzz::{consume, write_input};
use reid_data::decode::{self, AlphaMode, DecodeOptions, SizeHint};
use reid_data::preprocess::{PreprocessParams, ResizeMode};
use reid_data::{BBox, ParamGuard};

fn main() {
    // Before the fork server starts: every child then shares one folder.
    animal_reid_fuzz::scratch();
    let limit = NonZeroU64::new(1 << 22).unwrap_or(NonZeroU64::MIN);
    let opts = DecodeOptions::new().with_max_pixels(limit);
    let composite = opts.with_alpha(AlphaMode::Composite([10, 20, 30]));
    let full = opts.with_reduced_scale(false);
    let pre = PreprocessParams::new(16)
        .decode(opts)
        .check()
        .expect("valid preprocess params");
    let letterbox = PreprocessParams::new(12)
        .width(20)
        .resize(ResizeMode::Letterbox { pad: [1, 2, 3] })
        .decode(composite)
        .check()
        .expect("valid preprocess params");
    let bbox = BBox {
        x: 1.5,
        y: 0.5,
        w: 6.0,
        h: 3.25,
    };
    afl::fuzz_nohook!(|data: &[u8]| {
        let path = write_input("input.img", data);
        consume(decode::image_dimensions(&path));
        consume(decode::decode_image(&path, None, SizeHint::Full, &full));
        consume(decode::decode_image(
            &path,
            Some(&bbox),
            SizeHint::ShorterSide(2),
            &composite,
        ));
        consume(decode::decode_bytes(
            data,
            &path,
            None,
            SizeHint::AtLeast {
                width: 3,
                height: 2,
            },
            &opts,
        ));
        consume(pre.load(&path, None));
        consume(letterbox.load(&path, Some(&bbox)));
    });
}
