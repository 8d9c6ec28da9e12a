//! Individuals: an animal-like silhouette and a coat pattern (spots,
//! stripes, rosettes or a reticulated net) in body coordinates.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::math::{hash01, seg_dist, smoothstep};

/// The coat pattern family of an individual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatternFamily {
    /// Irregular elliptical spots.
    Spots,
    /// Warped stripes across the body.
    Stripes,
    /// Broken rings around a darker centre, with a few small spots.
    Rosettes,
    /// Dark patches separated by a light net (giraffe-like).
    Reticulated,
}

impl PatternFamily {
    /// Lower-case name of the family.
    pub fn as_str(&self) -> &'static str {
        match self {
            PatternFamily::Spots => "spots",
            PatternFamily::Stripes => "stripes",
            PatternFamily::Rosettes => "rosettes",
            PatternFamily::Reticulated => "reticulated",
        }
    }
}

/// Extent of the coat texture in body coordinates. The torso is an ellipse
/// centred on the origin with semi-axes 1 along `u` (the head at `+u`) and
/// about 0.42 along `v` (`+v` points down, to the legs).
const U0: f32 = -1.8;
const U1: f32 = 1.8;
const V0: f32 = -0.9;
const V1: f32 = 1.15;

/// One individual: its identity, species and rendered coat (pattern and
/// silhouette, in body coordinates).
#[derive(Debug, Clone)]
pub struct Individual {
    /// Identity name, `<species>_<index>` with the index zero-padded to 4.
    pub identity: String,
    /// Species name.
    pub species: String,
    /// The pattern family drawn for this individual.
    pub family: PatternFamily,
    pub(super) coat: Coat,
}

impl Individual {
    /// Coat colour and coverage at body coordinates `(u, v)`: premultiplied
    /// RGB in `0..=255` and alpha in `0..=1` (0 outside the silhouette).
    pub fn coat_at(&self, u: f32, v: f32) -> ([f32; 3], f32) {
        let t = self.coat.sample(u, v);
        ([t[0], t[1], t[2]], t[3])
    }
}

/// The coat raster: premultiplied RGBA texels over `[U0, U1] x [V0, V1]`.
#[derive(Debug, Clone)]
pub(super) struct Coat {
    tw: usize,
    th: usize,
    tpu: f32,
    texels: Vec<[f32; 4]>,
}

impl Coat {
    /// Bilinear sample; transparent outside the raster.
    #[inline]
    pub(super) fn sample(&self, u: f32, v: f32) -> [f32; 4] {
        let fx = (u - U0) * self.tpu - 0.5;
        let fy = (v - V0) * self.tpu - 0.5;
        if !(fx > -1.0 && fy > -1.0 && fx < self.tw as f32 && fy < self.th as f32) {
            return [0.0; 4];
        }
        let x0 = fx.floor();
        let y0 = fy.floor();
        let ax = fx - x0;
        let ay = fy - y0;
        let (x0, y0) = (x0 as isize, y0 as isize);
        let get = |x: isize, y: isize| -> [f32; 4] {
            if x < 0 || y < 0 || x >= self.tw as isize || y >= self.th as isize {
                [0.0; 4]
            } else {
                self.texels[y as usize * self.tw + x as usize]
            }
        };
        let a = get(x0, y0);
        let b = get(x0 + 1, y0);
        let c = get(x0, y0 + 1);
        let d = get(x0 + 1, y0 + 1);
        let mut out = [0.0; 4];
        for k in 0..4 {
            let top = a[k] + (b[k] - a[k]) * ax;
            let bot = c[k] + (d[k] - c[k]) * ax;
            out[k] = top + (bot - top) * ay;
        }
        out
    }
}

/// A silhouette part with an approximate signed distance (negative inside).
enum Part {
    Ellipse {
        c: (f32, f32),
        a: f32,
        b: f32,
    },
    Capsule {
        a: (f32, f32),
        b: (f32, f32),
        r: f32,
    },
}

impl Part {
    fn sdf(&self, p: (f32, f32)) -> f32 {
        match self {
            Part::Ellipse { c, a, b } => {
                let x = (p.0 - c.0) / a;
                let y = (p.1 - c.1) / b;
                ((x * x + y * y).sqrt() - 1.0) * a.min(*b)
            }
            Part::Capsule { a, b, r } => seg_dist(p, *a, *b) - r,
        }
    }
}

fn silhouette(rng: &mut ChaCha8Rng) -> Vec<Part> {
    let body_b = rng.gen_range(0.38..0.46);
    let neck_up = rng.gen_range(0.0..0.1);
    let head_r = rng.gen_range(0.2..0.26);
    let leg_len = rng.gen_range(0.68..0.82);
    let leg_r = rng.gen_range(0.07..0.095);
    let curl = rng.gen_range(-1.0f32..1.0);
    let hy = -0.35 - neck_up;
    let mut parts = vec![
        Part::Ellipse {
            c: (0.0, 0.0),
            a: 1.0,
            b: body_b,
        },
        Part::Capsule {
            a: (0.7, -0.08),
            b: (1.1, hy + 0.05),
            r: 0.19,
        },
        Part::Ellipse {
            c: (1.2, hy),
            a: head_r * 1.1,
            b: head_r,
        },
        Part::Ellipse {
            c: (1.2 + head_r * 1.05, hy + 0.05),
            a: 0.14,
            b: 0.1,
        },
        Part::Ellipse {
            c: (1.1, hy - head_r * 0.9),
            a: 0.075,
            b: 0.1,
        },
        Part::Ellipse {
            c: (1.27, hy - head_r * 0.85),
            a: 0.07,
            b: 0.09,
        },
    ];
    for x in [-0.75f32, -0.52, 0.52, 0.75] {
        let dx = rng.gen_range(-0.08..0.08);
        parts.push(Part::Capsule {
            a: (x, 0.1),
            b: (x + dx, 0.1 + leg_len),
            r: leg_r,
        });
    }
    let pts = [
        (-0.9, -0.12),
        (-1.25, -0.2 + 0.1 * curl),
        (-1.5, -0.3 + 0.25 * curl),
        (-1.68, -0.35 + 0.3 * curl),
    ];
    for (k, r) in [0.06f32, 0.05, 0.045].into_iter().enumerate() {
        parts.push(Part::Capsule {
            a: pts[k],
            b: pts[k + 1],
            r,
        });
    }
    parts
}

/// A pattern: a value in `[0, 1]` (1 = pattern colour) at each body point.
enum Pattern {
    Spots(Vec<Spot>),
    Stripes {
        freq: f32,
        tilt: (f32, f32),
        warp: [(f32, f32, f32); 2],
        phase: f32,
        threshold: f32,
    },
    Rosettes {
        rings: Vec<Rosette>,
        spots: Vec<Spot>,
    },
    Reticulated {
        seeds: Vec<(f32, f32)>,
        net: f32,
    },
}

struct Spot {
    c: (f32, f32),
    r: f32,
    /// Inverse-scaled ellipse axes: (cos, sin) of the orientation and aspect.
    rot: (f32, f32),
    aspect: f32,
    /// Radius wobble: amplitude and phase of the 3rd angular harmonic.
    wobble: (f32, f32),
}

impl Spot {
    #[inline]
    fn value(&self, u: f32, v: f32, edge: f32) -> f32 {
        let dx = u - self.c.0;
        let dy = v - self.c.1;
        if dx.abs() > self.r * 1.6 || dy.abs() > self.r * 1.6 {
            return 0.0;
        }
        let x = dx * self.rot.0 + dy * self.rot.1;
        let y = (-dx * self.rot.1 + dy * self.rot.0) / self.aspect;
        let d = (x * x + y * y).sqrt();
        let ang = y.atan2(x);
        let r = self.r * (1.0 + self.wobble.0 * (3.0 * ang + self.wobble.1).sin());
        smoothstep(r + edge, r - edge, d)
    }
}

struct Rosette {
    c: (f32, f32),
    r: f32,
    thick: f32,
    /// Number of arcs and the gap fraction between them.
    arcs: f32,
    gap: f32,
    phase: f32,
}

fn random_point(rng: &mut ChaCha8Rng) -> (f32, f32) {
    // Mostly on the torso, some on neck, legs, tail.
    if rng.gen_bool(0.8) {
        (rng.gen_range(-1.05..1.05), rng.gen_range(-0.5..0.5))
    } else {
        (rng.gen_range(U0..U1), rng.gen_range(V0..V1))
    }
}

fn random_spot(rng: &mut ChaCha8Rng, rmin: f32, rmax: f32) -> Spot {
    let ang: f32 = rng.gen_range(0.0..std::f32::consts::PI);
    Spot {
        c: random_point(rng),
        r: rng.gen_range(rmin..rmax),
        rot: (ang.cos(), ang.sin()),
        aspect: rng.gen_range(0.55..1.0),
        wobble: (
            rng.gen_range(0.0..0.2),
            rng.gen_range(0.0..std::f32::consts::TAU),
        ),
    }
}

impl Pattern {
    fn draw(rng: &mut ChaCha8Rng, family: PatternFamily) -> Pattern {
        use std::f32::consts::TAU;
        match family {
            PatternFamily::Spots => {
                let n = rng.gen_range(16..36);
                Pattern::Spots((0..n).map(|_| random_spot(rng, 0.06, 0.16)).collect())
            }
            PatternFamily::Stripes => {
                let t: f32 = rng.gen_range(-0.45..0.45);
                Pattern::Stripes {
                    freq: rng.gen_range(2.0..4.5),
                    tilt: (t.cos(), t.sin()),
                    warp: [
                        (
                            rng.gen_range(0.03..0.1),
                            rng.gen_range(1.0..3.0),
                            rng.gen_range(0.0..TAU),
                        ),
                        (
                            rng.gen_range(0.005..0.04),
                            rng.gen_range(1.0..3.0),
                            rng.gen_range(0.0..TAU),
                        ),
                    ],
                    phase: rng.gen_range(0.0..TAU),
                    threshold: rng.gen_range(-0.1..0.45),
                }
            }
            PatternFamily::Rosettes => {
                let mut rings: Vec<Rosette> = Vec::new();
                let target = rng.gen_range(10..20);
                for _ in 0..200 {
                    if rings.len() >= target {
                        break;
                    }
                    let c = random_point(rng);
                    let r = rng.gen_range(0.08..0.14);
                    let clear = rings.iter().all(|o| {
                        let d = ((o.c.0 - c.0).powi(2) + (o.c.1 - c.1).powi(2)).sqrt();
                        d > o.r + r + 0.05
                    });
                    if clear {
                        rings.push(Rosette {
                            c,
                            r,
                            thick: rng.gen_range(0.03..0.05),
                            arcs: rng.gen_range(3..6) as f32,
                            gap: rng.gen_range(0.1..0.3),
                            phase: rng.gen_range(0.0..TAU),
                        });
                    }
                }
                let n = rng.gen_range(4..12);
                let spots = (0..n).map(|_| random_spot(rng, 0.03, 0.06)).collect();
                Pattern::Rosettes { rings, spots }
            }
            PatternFamily::Reticulated => {
                let n = rng.gen_range(18..34);
                Pattern::Reticulated {
                    seeds: (0..n).map(|_| random_point(rng)).collect(),
                    net: rng.gen_range(0.015..0.035),
                }
            }
        }
    }

    fn value(&self, u: f32, v: f32, edge: f32) -> f32 {
        use std::f32::consts::TAU;
        match self {
            Pattern::Spots(spots) => spots
                .iter()
                .map(|s| s.value(u, v, edge))
                .fold(0.0, f32::max),
            Pattern::Stripes {
                freq,
                tilt,
                warp,
                phase,
                threshold,
            } => {
                let along = u * tilt.0 + v * tilt.1;
                let w = warp[0].0 * (TAU * warp[0].1 * v + warp[0].2).sin()
                    + warp[1].0 * (TAU * warp[1].1 * u + warp[1].2).sin();
                let s = (TAU * freq * (along + w) + phase).sin();
                // Edge width in the units of `s` (slope about TAU * freq).
                let e = edge * TAU * freq;
                smoothstep(threshold - e, threshold + e, s)
            }
            Pattern::Rosettes { rings, spots } => {
                let mut p: f32 = 0.0;
                for ring in rings {
                    let dx = u - ring.c.0;
                    let dy = v - ring.c.1;
                    let reach = ring.r + ring.thick + edge;
                    if dx.abs() > reach || dy.abs() > reach {
                        continue;
                    }
                    let d = (dx * dx + dy * dy).sqrt();
                    if d < ring.r - ring.thick {
                        // The centre: a tone between coat and pattern.
                        p = p.max(
                            0.4 * smoothstep(ring.r - ring.thick, ring.r - ring.thick - edge, d),
                        );
                        continue;
                    }
                    let band = smoothstep(ring.thick + edge, ring.thick - edge, (d - ring.r).abs());
                    let a = (dy.atan2(dx) + ring.phase) / TAU * ring.arcs;
                    let frac = a - a.floor();
                    let arc = smoothstep(0.0, 0.05, frac - ring.gap);
                    p = p
                        .max(band * arc)
                        .max(0.4 * smoothstep(ring.r, ring.r - edge, d));
                }
                for s in spots {
                    p = p.max(s.value(u, v, edge));
                }
                p
            }
            Pattern::Reticulated { seeds, net } => {
                let (mut d1, mut d2) = (f32::MAX, f32::MAX);
                for s in seeds {
                    let d = ((u - s.0).powi(2) + (v - s.1).powi(2)).sqrt();
                    if d < d1 {
                        d2 = d1;
                        d1 = d;
                    } else if d < d2 {
                        d2 = d;
                    }
                }
                smoothstep(net - edge, net + edge, (d2 - d1) * 0.5)
            }
        }
    }
}

/// Coat base colours per species (cycled), RGB.
const COAT_BASES: [[f32; 3]; 5] = [
    [205.0, 150.0, 80.0],
    [165.0, 160.0, 150.0],
    [225.0, 205.0, 165.0],
    [185.0, 105.0, 55.0],
    [230.0, 228.0, 215.0],
];

pub(super) fn build_coat(
    rng: &mut ChaCha8Rng,
    species_idx: usize,
    tpu: f32,
) -> (PatternFamily, Coat) {
    let parts = silhouette(rng);
    let family = match rng.gen_range(0..4) {
        0 => PatternFamily::Spots,
        1 => PatternFamily::Stripes,
        2 => PatternFamily::Rosettes,
        _ => PatternFamily::Reticulated,
    };
    let pattern = Pattern::draw(rng, family);
    let base0 = COAT_BASES[species_idx % COAT_BASES.len()];
    let mut base = [0.0f32; 3];
    for (b, b0) in base.iter_mut().zip(base0) {
        *b = (b0 + rng.gen_range(-20.0..20.0)).clamp(0.0, 255.0);
    }
    let dark = rng.gen_range(20.0..70.0f32);
    let pat = [dark + 10.0, dark + 4.0, dark];
    let belly = rng.gen_range(0.1..0.3f32);
    let fur_seed: u32 = rng.r#gen();

    let tw = ((U1 - U0) * tpu).ceil() as usize;
    let th = ((V1 - V0) * tpu).ceil() as usize;
    let edge = 0.6 / tpu;
    let mut texels = vec![[0.0f32; 4]; tw * th];
    texels.par_chunks_mut(tw).enumerate().for_each(|(ty, row)| {
        let v = V0 + (ty as f32 + 0.5) / tpu;
        for (tx, t) in row.iter_mut().enumerate() {
            let u = U0 + (tx as f32 + 0.5) / tpu;
            let sd = parts.iter().map(|p| p.sdf((u, v))).fold(f32::MAX, f32::min);
            let alpha = (0.5 - sd * tpu).clamp(0.0, 1.0);
            if alpha <= 0.0 {
                continue;
            }
            let p = pattern.value(u, v, edge);
            let light = 1.0 + belly * smoothstep(0.1, 0.45, v);
            let fur = (hash01(fur_seed ^ (ty * tw + tx) as u32) - 0.5) * 14.0;
            for k in 0..3 {
                let c = (base[k] * light).min(255.0) * (1.0 - p) + pat[k] * p + fur;
                t[k] = c.clamp(0.0, 255.0) * alpha;
            }
            t[3] = alpha;
        }
    });
    (
        family,
        Coat {
            tw,
            th,
            tpu,
            texels,
        },
    )
}
