//! The classifier network: an ensemble of one-hidden-layer perceptrons (or
//! of logistic regressions) evaluated as one wide layer.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, TensorContext};
use crate::split::Rng;

/// Shape of the classifier.
///
/// The ensemble's members share the input but not their weights: their
/// hidden layers are stored side by side in one `[inputs, members * hidden]`
/// matrix, so one matrix multiply evaluates all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Architecture {
    /// Hidden units per member; 0 makes each member a logistic regression.
    pub hidden: usize,
    /// Number of independently initialised members; at least 1.
    pub members: usize,
}

/// Weight tensors, in f32 on the CPU.
///
/// Logistic members: `w1 [inputs, members]`, `b1 [members]`.
/// Perceptron members additionally have `w2 [members, hidden]` and
/// `b2 [members]`, with `w1 [inputs, members * hidden]` and
/// `b1 [members * hidden]`.
#[derive(Clone, Debug)]
pub(crate) struct Weights {
    pub(crate) tensors: Vec<Tensor>,
}

const NAMES: [&str; 4] = ["w1", "b1", "w2", "b2"];

impl Architecture {
    fn shapes(&self, inputs: usize) -> Vec<Vec<usize>> {
        let (k, h) = (self.members, self.hidden);
        if h == 0 {
            vec![vec![inputs, k], vec![k]]
        } else {
            vec![vec![inputs, k * h], vec![k * h], vec![k, h], vec![k]]
        }
    }

    /// Draws initial variables from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the
    /// default of PyTorch's `nn.Linear`, with a seeded generator because
    /// candle cannot seed its CPU random source.
    pub(crate) fn init_vars(&self, inputs: usize, seed: u64) -> Result<Vec<Var>, ModelError> {
        let mut rng = Rng::new(seed);
        let fan_ins = [inputs, inputs, self.hidden, self.hidden];
        self.shapes(inputs)
            .into_iter()
            .zip(fan_ins)
            .map(|(shape, fan_in)| {
                let bound = 1.0 / (fan_in as f64).sqrt();
                let count: usize = shape.iter().product();
                let values: Vec<f32> = (0..count)
                    .map(|_| ((2.0 * rng.next_f64() - 1.0) * bound) as f32)
                    .collect();
                let tensor =
                    Tensor::from_vec(values, shape, &Device::Cpu).during("initialising")?;
                Var::from_tensor(&tensor).during("initialising")
            })
            .collect()
    }
}

impl Weights {
    pub(crate) fn from_vars(vars: &[Var]) -> Self {
        Weights {
            tensors: vars.iter().map(|v| v.as_tensor().clone()).collect(),
        }
    }

    /// Copies the variables into tensors that later optimiser steps do not
    /// change.
    pub(crate) fn snapshot(vars: &[Var]) -> Result<Self, ModelError> {
        let tensors = vars
            .iter()
            .map(|v| v.as_tensor().detach().copy())
            .collect::<candle_core::Result<_>>()
            .during("training")?;
        Ok(Weights { tensors })
    }

    /// Member logits `[rows, members]` for inputs `[rows, inputs]`.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        architecture: Architecture,
    ) -> candle_core::Result<Tensor> {
        let first = x
            .matmul(&self.tensors[0])?
            .broadcast_add(&self.tensors[1])?;
        if architecture.hidden == 0 {
            return Ok(first);
        }
        let rows = x.dim(0)?;
        let hidden = first
            .relu()?
            .reshape((rows, architecture.members, architecture.hidden))?;
        hidden
            .broadcast_mul(&self.tensors[2])?
            .sum(2)?
            .broadcast_add(&self.tensors[3])
    }

    pub(crate) fn save(&self, path: &std::path::Path) -> Result<(), ModelError> {
        let named: HashMap<&str, Tensor> = NAMES
            .iter()
            .copied()
            .zip(self.tensors.iter().cloned())
            .collect();
        candle_core::safetensors::save(&named, path).map_err(|source| match source {
            candle_core::Error::Io(e) => ModelError::io("write", path, e),
            source => ModelError::Tensor {
                phase: "saving",
                source,
            },
        })
    }

    /// Loads weights and checks them against the architecture and input width.
    pub(crate) fn load(
        path: &std::path::Path,
        architecture: Architecture,
        inputs: usize,
    ) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io("read", path, e))?;
        let mut named =
            candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
                ModelError::Weights {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                }
            })?;
        let invalid = |message: String| ModelError::Weights {
            path: path.to_path_buf(),
            message,
        };
        let mut tensors = Vec::new();
        for (name, shape) in NAMES.iter().zip(architecture.shapes(inputs)) {
            let tensor = named
                .remove(*name)
                .ok_or_else(|| invalid(format!("tensor `{name}` is missing")))?;
            if tensor.dims() != shape.as_slice() || tensor.dtype() != DType::F32 {
                return Err(invalid(format!(
                    "tensor `{name}` is {:?} {:?}, expected F32 {shape:?}",
                    tensor.dtype(),
                    tensor.dims()
                )));
            }
            tensors.push(tensor);
        }
        Ok(Weights { tensors })
    }
}

/// Mean binary cross-entropy over rows, summed over members, computed from
/// logits as max(z, 0) - z y + ln(1 + e^-|z|) so that it stays finite.
pub(crate) fn binary_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
) -> candle_core::Result<Tensor> {
    let targets = targets.broadcast_as(logits.shape())?;
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let loss = ((logits.relu()? - logits.mul(&targets)?)? + softplus)?;
    loss.mean(0)?.sum_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(values: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn perceptron_members_use_their_own_hidden_units() {
        // Two inputs, two members with two hidden units each.
        let architecture = Architecture {
            hidden: 2,
            members: 2,
        };
        let weights = Weights {
            tensors: vec![
                // Member 0 reads x0 and -x0, member 1 reads x1 and 2 x1.
                tensor(&[1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0], &[2, 4]),
                tensor(&[0.0, 0.0, 0.0, -1.0], &[4]),
                tensor(&[1.0, 1.0, 1.0, 0.5], &[2, 2]),
                tensor(&[0.5, 0.0], &[2]),
            ],
        };
        let x = tensor(&[3.0, 1.0], &[1, 2]);

        let logits = weights
            .forward(&x, architecture)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();

        // Member 0: relu(3) + relu(-3) + 0.5 = 3.5.
        // Member 1: relu(1) + 0.5 * relu(2 - 1) = 1.5.
        assert_eq!(logits, vec![vec![3.5, 1.5]]);
    }

    #[test]
    fn logistic_members_are_affine() {
        let architecture = Architecture {
            hidden: 0,
            members: 1,
        };
        let weights = Weights {
            tensors: vec![tensor(&[2.0, -1.0], &[2, 1]), tensor(&[0.5], &[1])],
        };
        let x = tensor(&[1.0, 1.0, 0.0, 2.0], &[2, 2]);

        let logits = weights
            .forward(&x, architecture)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();

        assert_eq!(logits, vec![vec![1.5], vec![-1.5]]);
    }

    #[test]
    fn cross_entropy_matches_closed_form() {
        // Logit 0 costs ln 2 either way; logit ln 3 with label 1 costs ln(4/3).
        let logits = tensor(&[0.0, 3f32.ln()], &[2, 1]);
        let targets = tensor(&[0.0, 1.0], &[2, 1]);

        let loss = binary_cross_entropy(&logits, &targets)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();

        let expected = (2f32.ln() + (4f32 / 3.0).ln()) / 2.0;
        assert!((loss - expected).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn cross_entropy_is_finite_for_large_logits() {
        let logits = tensor(&[200.0, -200.0], &[2, 1]);
        let targets = tensor(&[0.0, 1.0], &[2, 1]);

        let loss = binary_cross_entropy(&logits, &targets)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();

        assert_eq!(loss, 200.0);
    }

    #[test]
    fn init_is_seeded() {
        let architecture = Architecture {
            hidden: 3,
            members: 2,
        };

        let first = architecture.init_vars(4, 9).unwrap();
        let second = architecture.init_vars(4, 9).unwrap();

        for (a, b) in first.iter().zip(&second) {
            let a = a
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let b = b
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(a, b);
        }
    }
}
