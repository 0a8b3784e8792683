//! Platt scaling: a logistic map from raw logits to calibrated probabilities.

use serde::{Deserialize, Serialize};

/// Calibrated probability `sigmoid(scale * logit + bias)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlattScaling {
    pub scale: f64,
    pub bias: f64,
}

impl Default for PlattScaling {
    fn default() -> Self {
        PlattScaling {
            scale: 1.0,
            bias: 0.0,
        }
    }
}

const MAX_ITERATIONS: usize = 100;
const TOLERANCE: f64 = 1e-10;
/// A small ridge on the Hessian keeps Newton steps finite when all logits
/// are equal and the scale is not identified.
const RIDGE: f64 = 1e-9;

impl PlattScaling {
    /// Fits scale and bias by maximum likelihood on held-out `logits` and
    /// their `labels`, with damped Newton steps from scale 1, bias 0.
    pub fn fit(logits: &[f64], labels: &[bool]) -> PlattScaling {
        assert_eq!(logits.len(), labels.len(), "one logit per label");
        let mut fit = PlattScaling::default();
        let mut loss = fit.negative_log_likelihood(logits, labels);
        for _ in 0..MAX_ITERATIONS {
            // Gradient and Hessian of the summed log-loss in (scale, bias).
            let (mut g_scale, mut g_bias) = (0.0, 0.0);
            let (mut h_ss, mut h_sb, mut h_bb) = (RIDGE, 0.0, RIDGE);
            for (&z, &y) in logits.iter().zip(labels) {
                let p = fit.probability(z);
                let residual = p - f64::from(u8::from(y));
                let weight = p * (1.0 - p);
                g_scale += residual * z;
                g_bias += residual;
                h_ss += weight * z * z;
                h_sb += weight * z;
                h_bb += weight;
            }
            let determinant = h_ss * h_bb - h_sb * h_sb;
            let step_scale = (h_bb * g_scale - h_sb * g_bias) / determinant;
            let step_bias = (h_ss * g_bias - h_sb * g_scale) / determinant;

            // Halve the step until the loss does not increase.
            let mut step = 1.0;
            let improved = loop {
                let candidate = PlattScaling {
                    scale: fit.scale - step * step_scale,
                    bias: fit.bias - step * step_bias,
                };
                let candidate_loss = candidate.negative_log_likelihood(logits, labels);
                if candidate_loss <= loss {
                    break Some((candidate, candidate_loss));
                }
                step /= 2.0;
                if step < 1e-8 {
                    break None;
                }
            };
            let Some((candidate, candidate_loss)) = improved else {
                break;
            };
            let gain = loss - candidate_loss;
            fit = candidate;
            loss = candidate_loss;
            if gain < TOLERANCE * logits.len() as f64 {
                break;
            }
        }
        fit
    }

    pub fn probability(&self, logit: f64) -> f64 {
        sigmoid(self.scale * logit + self.bias)
    }

    fn negative_log_likelihood(&self, logits: &[f64], labels: &[bool]) -> f64 {
        logits
            .iter()
            .zip(labels)
            .map(|(&z, &y)| {
                let t = self.scale * z + self.bias;
                // log(1 + e^t) - y t, written to stay finite for large |t|.
                t.max(0.0) + (-t.abs()).exp().ln_1p() - if y { t } else { 0.0 }
            })
            .sum()
    }
}

pub(crate) fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_matches_group_rates() {
        // Logit -1: one positive in four; logit +1: three in four. The
        // maximum-likelihood fit reproduces both rates exactly:
        // -scale + bias = ln(1/3), scale + bias = ln 3, so scale = ln 3, bias = 0.
        let logits = [-1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0];
        let labels = [true, false, false, false, true, true, true, false];

        let fit = PlattScaling::fit(&logits, &labels);

        assert!((fit.scale - 3f64.ln()).abs() < 1e-6, "{fit:?}");
        assert!(fit.bias.abs() < 1e-6, "{fit:?}");
        assert!((fit.probability(-1.0) - 0.25).abs() < 1e-6);
    }

    #[test]
    fn fit_with_constant_logits_learns_base_rate() {
        let logits = [0.0; 4];
        let labels = [true, false, false, false];

        let fit = PlattScaling::fit(&logits, &labels);

        assert!((fit.bias - (1f64 / 3.0).ln()).abs() < 1e-6, "{fit:?}");
        assert!((fit.probability(0.0) - 0.25).abs() < 1e-6);
    }

    #[test]
    fn fit_undoes_a_known_temperature() {
        // Labels from the true probabilities 0.2 and 0.8 at logits that were
        // doubled: the fit halves them back.
        let z = 4f64.ln(); // logit(0.8)
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for (logit, positives) in [(-2.0 * z, 1), (2.0 * z, 4)] {
            for i in 0..5 {
                logits.push(logit);
                labels.push(i < positives);
            }
        }

        let fit = PlattScaling::fit(&logits, &labels);

        assert!((fit.scale - 0.5).abs() < 1e-6, "{fit:?}");
        assert!(fit.bias.abs() < 1e-6, "{fit:?}");
    }

    #[test]
    fn sigmoid_is_stable_at_extremes() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(800.0), 1.0);
        assert_eq!(sigmoid(-800.0), 0.0);
    }
}
