//! Global pooling of backbone features into one vector per image.

use tch::Tensor;

use crate::arch::{DefaultPooling, FeatureLayout, Tap, default_grid_tap};
use crate::error::{BackboneError, Result};

/// How the features of [`Architecture::forward_features`](crate::arch::Architecture::forward_features)
/// become one vector per image.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Pooling {
    /// The pooling the model was trained with (timm's default).
    #[default]
    Default,
    /// Spatial mean of a feature map, or mean of the patch tokens.
    Avg,
    /// Generalised mean `(mean(max(x, eps)^p))^(1/p)` over positions or patch
    /// tokens (Radenović et al. 2018); `p = 1` is the average, large `p`
    /// approaches the maximum. `learnable` marks `p` as trainable (fine-tuning
    /// updates it); at inference it is a fixed number either way.
    Gem {
        /// The exponent, > 0 (3 is the usual start).
        p: f64,
        /// Whether fine-tuning learns `p`.
        learnable: bool,
    },
    /// The class token (transformers only).
    Cls,
    /// The class token concatenated with the mean of the patch tokens
    /// (DINOv2's linear-probe feature); twice the width.
    ClsMeanPatch,
    /// A grid descriptor: for each grid of `levels` (`n × n` cells), the
    /// mean of each cell of a feature map (PyTorch's `adaptive_avg_pool2d`
    /// cells: cell `i` of `n` over `H` rows spans rows `⌊iH/n⌋ …
    /// ⌈(i+1)H/n⌉ − 1`), flattened channel by channel and scaled to unit
    /// length, the grids (a spatial pyramid when several) concatenated from
    /// the coarsest: `C · Σ n²` wide. Unlike a global pool it keeps where on
    /// the photo a pattern lies. `tap`: the map of an intermediate block
    /// ([`Architecture::taps`](crate::arch::Architecture::taps), whose index
    /// it is) instead of the last one; the network stops there. CNNs only.
    Grid {
        /// The grids' cells per side.
        levels: GridLevels,
        /// Index of the intermediate feature map, `None` for the last.
        tap: Option<usize>,
    },
}

/// The grids of a [`Pooling::Grid`]: a set of cells-per-side values, each
/// 1 to [`MAX_GRID_CELLS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridLevels(u32);

impl GridLevels {
    /// The grids of `cells` per side (duplicates count once); an error for
    /// none, or for a value outside 1 ..= [`MAX_GRID_CELLS`].
    pub fn new(cells: &[usize]) -> Result<Self> {
        if let Some(n) = cells.iter().find(|n| !(1..=MAX_GRID_CELLS).contains(n)) {
            return Err(BackboneError::InvalidParam {
                name: "pooling",
                reason: format!("a grid has 1 to {MAX_GRID_CELLS} cells per side, got {n}"),
            });
        }
        let bits = Self::mask(cells);
        if bits == 0 {
            return Err(BackboneError::InvalidParam {
                name: "pooling",
                reason: "a grid descriptor needs at least one grid".into(),
            });
        }
        Ok(GridLevels(bits))
    }

    /// One bit per cells-per-side value, for values already checked.
    fn mask(cells: &[usize]) -> u32 {
        cells.iter().fold(0, |bits, n| bits | 1 << n)
    }

    /// The cells per side, coarsest first.
    pub fn cells(self) -> Vec<usize> {
        (1..=MAX_GRID_CELLS)
            .filter(|n| self.0 & (1 << n) != 0)
            .collect()
    }

    /// Cells in all, `Σ n²`: the descriptor is this many times the channels.
    pub fn total_cells(self) -> usize {
        self.cells().iter().map(|n| n * n).sum()
    }

    /// `4`, or `3+4` for a pyramid.
    pub fn name(self) -> String {
        let cells: Vec<String> = self.cells().iter().map(ToString::to_string).collect();
        cells.join("+")
    }
}

/// The most cells per side of [`Pooling::Grid`].
pub const MAX_GRID_CELLS: usize = 16;

/// The grid of [`Pooling::default_grid`], 4 × 4. On cattle's database
/// (MobileNetV2's `features.13`, 224 × 224 faces, within-identity whitening
/// fitted on four fifths of the videos, the other fifth searched against
/// them) the nearest photo is of the right cow for 0.62 of photos with a
/// 3 × 3 grid, 0.69 with 4 × 4, 0.71 with both and 0.68 with 1 + 2 + 4 (the
/// global pool of the last layer: 0.36); in the whole pipeline the
/// database's own episodes score 4 × 4 at 0.778 and 3 + 4 at 0.777, so the
/// simpler one is the default.
pub const DEFAULT_GRID_CELLS: [usize; 1] = [4];

/// Rows of `x` divided by their L2 norm, clamped at 1e-12 (PyTorch's
/// `F.normalize`): a zero row stays zero.
pub fn l2_normalize(x: &Tensor) -> Tensor {
    let norm = x
        .norm_scalaropt_dim(2.0, [1i64].as_slice(), true)
        .clamp_min(1e-12);
    x / norm
}

/// Clamp floor for GeM, as in the reference implementation's `eps`.
pub const GEM_EPS: f64 = 1e-6;

impl Pooling {
    /// Parses `avg`, `gem`, `gem:P`, `cls`, `cls+mean`, `default`, `grid:N`
    /// (an `N × N` grid of the last feature map), `grid:N+M` (a pyramid of
    /// grids) and `grid:N@T` (of tap `T`).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| BackboneError::InvalidParam {
            name: "pooling",
            reason: format!(
                "`{s}`: {reason}; use default, avg, gem, gem:P, cls, cls+mean, grid:N or grid:N@TAP"
            ),
        };
        if let Some(spec) = s.strip_prefix("grid:") {
            let (cells, tap) = match spec.split_once('@') {
                Some((c, t)) => (c, Some(t)),
                None => (spec, None),
            };
            let cells = cells
                .split('+')
                .map(|c| c.parse::<usize>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| bad("the cells per side are not whole numbers"))?;
            let tap = tap
                .map(|t| t.parse::<usize>())
                .transpose()
                .map_err(|_| bad("the tap is not a block index"))?;
            let levels = GridLevels::new(&cells).map_err(|e| match e {
                BackboneError::InvalidParam { reason, .. } => bad(&reason),
                other => other,
            })?;
            return Ok(Pooling::Grid { levels, tap });
        }
        let p = match s {
            "default" => Pooling::Default,
            "avg" | "mean" => Pooling::Avg,
            "gem" => Pooling::Gem {
                p: 3.0,
                learnable: false,
            },
            "cls" => Pooling::Cls,
            "cls+mean" | "cls_mean_patch" => Pooling::ClsMeanPatch,
            other => match other.strip_prefix("gem:") {
                Some(v) => Pooling::Gem {
                    p: v.parse().map_err(|_| bad("the exponent is not a number"))?,
                    learnable: false,
                },
                None => return Err(bad("unknown pooling")),
            },
        };
        Ok(p)
    }

    /// The grid descriptor of a network with taps `taps`
    /// ([`Architecture::taps`](crate::arch::Architecture::taps)):
    /// [`DEFAULT_GRID_CELLS`] per side at [`default_grid_tap`]; `None` when
    /// no tap is at stride 16.
    pub fn default_grid(taps: &[Tap]) -> Option<Self> {
        default_grid_tap(taps).map(|t| Pooling::Grid {
            levels: GridLevels(GridLevels::mask(&DEFAULT_GRID_CELLS)),
            tap: Some(t),
        })
    }

    /// Resolves [`Pooling::Default`] and checks that the pooling fits the layout.
    pub fn resolve(self, layout: FeatureLayout, default: DefaultPooling) -> Result<Self> {
        let p = match self {
            Pooling::Default => match default {
                DefaultPooling::Avg => Pooling::Avg,
                DefaultPooling::Cls => Pooling::Cls,
            },
            other => other,
        };
        if let Pooling::Gem { p, .. } = p
            && !(p.is_finite() && p > 0.0)
        {
            return Err(BackboneError::InvalidParam {
                name: "pooling",
                reason: format!("GeM exponent must be a positive number, got {p}"),
            });
        }
        match (p, layout) {
            (Pooling::Grid { .. }, FeatureLayout::Tokens { .. }) => {
                Err(BackboneError::InvalidParam {
                    name: "pooling",
                    reason: "a grid descriptor needs a feature map (a CNN); \
                             this model gives tokens"
                        .into(),
                })
            }
            (Pooling::Cls | Pooling::ClsMeanPatch, FeatureLayout::Spatial) => {
                Err(BackboneError::InvalidParam {
                    name: "pooling",
                    reason: "class-token pooling needs a transformer with a class token; \
                             this model gives a feature map"
                        .into(),
                })
            }
            (Pooling::Cls | Pooling::ClsMeanPatch, FeatureLayout::Tokens { prefix: 0 }) => {
                Err(BackboneError::InvalidParam {
                    name: "pooling",
                    reason: "this transformer has no class token".into(),
                })
            }
            _ => Ok(p),
        }
    }

    /// Output width for a model whose pooled width is `num_features` (for
    /// a grid, the channels of the map it pools).
    pub fn width(self, num_features: i64) -> i64 {
        match self {
            Pooling::ClsMeanPatch => 2 * num_features,
            Pooling::Grid { levels, .. } => num_features * levels.total_cells() as i64,
            _ => num_features,
        }
    }

    /// Pools `features` (laid out as `layout`) to `[B, width]`. `gem_p`, when
    /// given, overrides the exponent of [`Pooling::Gem`] (a learnt `p`).
    /// Call [`resolve`](Self::resolve) first; `Default` is treated as `Avg`.
    pub fn apply(self, features: &Tensor, layout: FeatureLayout, gem_p: Option<&Tensor>) -> Tensor {
        match layout {
            FeatureLayout::Spatial => match self {
                Pooling::Gem { p, .. } => gem(features, &[2, 3], p, gem_p),
                Pooling::Grid { levels, .. } => {
                    let grids: Vec<Tensor> = levels
                        .cells()
                        .into_iter()
                        .map(|n| {
                            let n = n as i64;
                            l2_normalize(&features.adaptive_avg_pool2d([n, n]).flatten(1, -1))
                        })
                        .collect();
                    Tensor::cat(&grids, 1)
                }
                _ => features.mean_dim(&[2i64, 3][..], false, None),
            },
            FeatureLayout::Tokens { prefix } => {
                let n = features.size().get(1).copied().unwrap_or(0);
                let prefix = prefix as i64;
                let patches = || features.narrow(1, prefix, (n - prefix).max(0));
                match self {
                    Pooling::Cls => features.select(1, 0),
                    Pooling::ClsMeanPatch => Tensor::cat(
                        &[
                            features.select(1, 0),
                            patches().mean_dim(&[1i64][..], false, None),
                        ],
                        1,
                    ),
                    Pooling::Gem { p, .. } => gem(&patches(), &[1], p, gem_p),
                    // `resolve` refuses a grid of tokens.
                    Pooling::Avg | Pooling::Default | Pooling::Grid { .. } => {
                        patches().mean_dim(&[1i64][..], false, None)
                    }
                }
            }
        }
    }
}

fn gem(x: &Tensor, dims: &[i64], p: f64, learnt: Option<&Tensor>) -> Tensor {
    let clamped = x.clamp_min(GEM_EPS);
    match learnt {
        Some(p) => clamped
            .pow(p)
            .mean_dim(dims, false, None)
            .pow(&p.reciprocal()),
        None => clamped
            .pow_tensor_scalar(p)
            .mean_dim(dims, false, None)
            .pow_tensor_scalar(1.0 / p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        assert_eq!(Pooling::parse("avg").unwrap(), Pooling::Avg);
        assert_eq!(
            Pooling::parse("gem:4.5").unwrap(),
            Pooling::Gem {
                p: 4.5,
                learnable: false
            }
        );
        assert_eq!(Pooling::parse("cls+mean").unwrap(), Pooling::ClsMeanPatch);
        assert!(Pooling::parse("gem:x").is_err());
        assert!(Pooling::parse("max").is_err());
        assert_eq!(
            Pooling::parse("grid:4@13").unwrap(),
            Pooling::Grid {
                levels: GridLevels::new(&[4]).unwrap(),
                tap: Some(13)
            }
        );
        let Pooling::Grid { levels, tap: None } = Pooling::parse("grid:4+3+4").unwrap() else {
            panic!("grid:4+3+4 is a grid of the last map");
        };
        assert_eq!(levels.cells(), [3, 4]);
        assert_eq!((levels.total_cells(), levels.name()), (25, "3+4".into()));
        for bad in [
            "grid:0", "grid:17", "grid:x", "grid:4@", "grid:4@a", "grid:-1", "grid:3+", "grid:",
        ] {
            let e = Pooling::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    /// A 2 × 2 grid over a 3 × 5 map, worked out by hand: PyTorch's
    /// adaptive cells over 3 rows are rows 0–1 and 1–2, over 5 columns
    /// columns 0–2 and 2–4, so the middle row and column count in both.
    #[test]
    fn grid_cells_overlap_as_pytorchs() {
        // x[r][c] = 10 r + c for channel 0, its negative for channel 1.
        let v: Vec<f32> = (0..15).map(|i| (10 * (i / 5) + i % 5) as f32).collect();
        let neg: Vec<f32> = v.iter().map(|x| -x).collect();
        let x = Tensor::from_slice(&[v, neg].concat()).reshape([1, 2, 3, 5]);
        let g = Pooling::Grid {
            levels: GridLevels::new(&[2]).unwrap(),
            tap: None,
        };
        let out = g.apply(&x, FeatureLayout::Spatial, None);
        assert_eq!(out.size(), [1, g.width(2)]);
        assert_eq!(g.width(2), 8);
        // Cell (0,0): rows 0–1, cols 0–2: mean row 0.5, col 1 -> 6.
        // (0,1): cols 2–4, col 3 -> 8; (1,0): rows 1–2 -> 16; (1,1) -> 18;
        // the grid then scaled to unit length: √(2 · 680).
        let cells = [6.0, 8.0, 16.0, 18.0, -6.0, -8.0, -16.0, -18.0];
        let norm = 1360f64.sqrt();
        let check = |out: &Tensor, want: &[f64]| {
            for (i, w) in want.iter().enumerate() {
                let got = out.double_value(&[0, i as i64]);
                assert!((got - w).abs() < 1e-6, "value {i}: {got} != {w}");
            }
        };
        check(&out, &cells.map(|c| c / norm));
        // A pyramid 1 + 2: the means of the whole map (12 and -12; unit:
        // ±1/√2) first, then the 2 × 2 grid as above.
        let pyramid = Pooling::parse("grid:2+1").unwrap();
        assert_eq!(pyramid.width(2), 10);
        let out = pyramid.apply(&x, FeatureLayout::Spatial, None);
        let half = std::f64::consts::FRAC_1_SQRT_2;
        check(
            &out,
            &[[half, -half].as_slice(), &cells.map(|c| c / norm)].concat(),
        );
        let tokens = FeatureLayout::Tokens { prefix: 1 };
        let e = g.resolve(tokens, DefaultPooling::Cls).unwrap_err();
        assert!(e.to_string().contains("feature map"), "{e}");
    }

    #[test]
    fn resolve_checks_layout() {
        let sp = FeatureLayout::Spatial;
        assert!(Pooling::Cls.resolve(sp, DefaultPooling::Avg).is_err());
        assert_eq!(
            Pooling::Default.resolve(sp, DefaultPooling::Avg).unwrap(),
            Pooling::Avg
        );
        let gem0 = Pooling::Gem {
            p: 0.0,
            learnable: false,
        };
        assert!(gem0.resolve(sp, DefaultPooling::Avg).is_err());
        let tok = FeatureLayout::Tokens { prefix: 0 };
        assert!(
            Pooling::ClsMeanPatch
                .resolve(tok, DefaultPooling::Avg)
                .is_err()
        );
    }

    #[test]
    fn pooled_values_by_hand() {
        // One image, one channel, 2x2 map [1, 2, 3, 4].
        let x = Tensor::from_slice(&[1f32, 2., 3., 4.]).reshape([1, 1, 2, 2]);
        let avg = Pooling::Avg.apply(&x, FeatureLayout::Spatial, None);
        assert!((avg.double_value(&[0, 0]) - 2.5).abs() < 1e-6);
        // GeM p=2: sqrt((1+4+9+16)/4) = sqrt(7.5)
        let g = Pooling::Gem {
            p: 2.0,
            learnable: false,
        }
        .apply(&x, FeatureLayout::Spatial, None);
        assert!((g.double_value(&[0, 0]) - 7.5f64.sqrt()).abs() < 1e-5);
        // A learnt p given as a tensor gives the same.
        let p = Tensor::from_slice(&[2f32]);
        let g2 = Pooling::Gem {
            p: 9.0,
            learnable: true,
        }
        .apply(&x, FeatureLayout::Spatial, Some(&p));
        assert!((g2.double_value(&[0, 0]) - 7.5f64.sqrt()).abs() < 1e-5);
        // Tokens: [cls=10, 1, 3] with one prefix token, width 1.
        let t = Tensor::from_slice(&[10f32, 1., 3.]).reshape([1, 3, 1]);
        let lay = FeatureLayout::Tokens { prefix: 1 };
        assert_eq!(
            Pooling::Cls.apply(&t, lay, None).double_value(&[0, 0]),
            10.0
        );
        assert_eq!(Pooling::Avg.apply(&t, lay, None).double_value(&[0, 0]), 2.0);
        let cm = Pooling::ClsMeanPatch.apply(&t, lay, None);
        assert_eq!(cm.size(), vec![1, 2]);
        assert_eq!(cm.double_value(&[0, 1]), 2.0);
    }
}
