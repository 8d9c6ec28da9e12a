//! Global pooling of backbone features into one vector per image.

use tch::Tensor;

use crate::arch::{DefaultPooling, FeatureLayout};
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
}

/// Clamp floor for GeM, as in the reference implementation's `eps`.
pub const GEM_EPS: f64 = 1e-6;

impl Pooling {
    /// Parses `avg`, `gem`, `gem:P`, `cls`, `cls+mean`, `default`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| BackboneError::InvalidParam {
            name: "pooling",
            reason: format!("`{s}`: {reason}; use default, avg, gem, gem:P, cls or cls+mean"),
        };
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

    /// Output width for a model whose pooled width is `num_features`.
    pub fn width(self, num_features: i64) -> i64 {
        match self {
            Pooling::ClsMeanPatch => 2 * num_features,
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
                    Pooling::Avg | Pooling::Default => patches().mean_dim(&[1i64][..], false, None),
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
