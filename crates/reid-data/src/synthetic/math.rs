//! Small numeric helpers shared by the coat and photo code.

pub(super) fn invert(m: [f32; 4]) -> [f32; 4] {
    let det = m[0] * m[3] - m[1] * m[2];
    let d = if det.abs() < 1e-12 { 1e-12 } else { det };
    [m[3] / d, -m[1] / d, -m[2] / d, m[0] / d]
}

pub(super) fn nominal_scale(w: f32, h: f32) -> f32 {
    // The animal spans about 3.5 body units across and 2 down.
    (0.95 * w / 3.5).min(0.95 * h / 2.0)
}

#[inline]
pub(super) fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[inline]
pub(super) fn seg_dist(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (bax, bay) = (b.0 - a.0, b.1 - a.1);
    let (pax, pay) = (p.0 - a.0, p.1 - a.1);
    let len2 = bax * bax + bay * bay;
    let t = if len2 > 0.0 {
        ((pax * bax + pay * bay) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let dx = pax - bax * t;
    let dy = pay - bay * t;
    (dx * dx + dy * dy).sqrt()
}

#[inline]
pub(super) fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

#[inline]
pub(super) fn hash01(x: u32) -> f32 {
    (hash32(x) >> 8) as f32 / (1u32 << 24) as f32
}
