//! Scores for probabilistic binary classifiers.

use serde::{Deserialize, Serialize};

/// Clip applied to probabilities before taking logs, as scikit-learn does.
const LOG_LOSS_EPSILON: f64 = 1e-15;

/// Test-set scores of a binary classifier.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub rows: usize,
    pub positive_rate: f64,
    pub roc_auc: f64,
    /// Average precision, the step-wise area under the precision-recall
    /// curve (scikit-learn's `average_precision_score`).
    pub pr_auc: f64,
    pub brier: f64,
    pub log_loss: f64,
}

impl Metrics {
    /// Scores `probabilities` against `labels`; both have one entry per row.
    pub fn compute(labels: &[bool], probabilities: &[f64]) -> Metrics {
        assert_eq!(
            labels.len(),
            probabilities.len(),
            "one probability per label"
        );
        let positives = labels.iter().filter(|&&y| y).count();
        Metrics {
            rows: labels.len(),
            positive_rate: positives as f64 / labels.len().max(1) as f64,
            roc_auc: roc_auc(labels, probabilities),
            pr_auc: average_precision(labels, probabilities),
            brier: brier(labels, probabilities),
            log_loss: log_loss(labels, probabilities),
        }
    }
}

/// Area under the ROC curve: the probability that a random positive scores
/// above a random negative, counting ties as one half. NaN when a class is
/// absent.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> f64 {
    let order = order_by_score(scores, false);
    let positives = labels.iter().filter(|&&y| y).count() as f64;
    let negatives = labels.len() as f64 - positives;

    // Mann-Whitney U: sum the (tie-averaged, 1-based) ranks of positives.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        let average_rank = (start + end) as f64 / 2.0 + 1.0;
        let tied_positives = order[start..=end].iter().filter(|&&i| labels[i]).count();
        rank_sum += average_rank * tied_positives as f64;
        start = end + 1;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Average precision: the sum over score thresholds of precision times the
/// gain in recall, with tied scores forming one threshold. NaN when there is
/// no positive.
pub fn average_precision(labels: &[bool], scores: &[f64]) -> f64 {
    let order = order_by_score(scores, true);
    let positives = labels.iter().filter(|&&y| y).count() as f64;

    let mut area = 0.0;
    let mut true_positives = 0.0;
    let mut previous_recall = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        true_positives += order[start..=end].iter().filter(|&&i| labels[i]).count() as f64;
        let recall = true_positives / positives;
        let precision = true_positives / (end + 1) as f64;
        area += (recall - previous_recall) * precision;
        previous_recall = recall;
        start = end + 1;
    }
    area
}

/// Mean squared difference between probability and outcome.
pub fn brier(labels: &[bool], probabilities: &[f64]) -> f64 {
    let sum: f64 = labels
        .iter()
        .zip(probabilities)
        .map(|(&y, &p)| (p - f64::from(u8::from(y))).powi(2))
        .sum();
    sum / labels.len() as f64
}

/// Mean negative log-likelihood (natural log), with probabilities clipped to
/// [1e-15, 1 - 1e-15].
pub fn log_loss(labels: &[bool], probabilities: &[f64]) -> f64 {
    let sum: f64 = labels
        .iter()
        .zip(probabilities)
        .map(|(&y, &p)| {
            let p = p.clamp(LOG_LOSS_EPSILON, 1.0 - LOG_LOSS_EPSILON);
            if y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    sum / labels.len() as f64
}

fn order_by_score(scores: &[f64], descending: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        let ordering = scores[a].total_cmp(&scores[b]);
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of scikit-learn's `roc_auc_score` and
    // `average_precision_score` documentation: AUC 0.75, AP 0.8333.
    const LABELS: [bool; 4] = [false, false, true, true];
    const SCORES: [f64; 4] = [0.1, 0.4, 0.35, 0.8];

    #[test]
    fn roc_auc_counts_ordered_pairs() {
        // Of the four positive/negative pairs only (0.35, 0.4) is misordered.
        assert_eq!(roc_auc(&LABELS, &SCORES), 0.75);
    }

    #[test]
    fn roc_auc_counts_ties_as_half() {
        assert_eq!(roc_auc(&[false, true], &[0.5, 0.5]), 0.5);
        assert_eq!(roc_auc(&[false, true, true], &[0.2, 0.2, 0.9]), 0.75);
    }

    #[test]
    fn average_precision_sums_precision_at_each_recall_step() {
        // Ranked 0.8 (pos), 0.4 (neg), 0.35 (pos), 0.1 (neg):
        // 0.5 * 1/1 + 0.5 * 2/3 = 5/6.
        let ap = average_precision(&LABELS, &SCORES);

        assert!((ap - 5.0 / 6.0).abs() < 1e-12, "{ap}");
    }

    #[test]
    fn average_precision_treats_ties_as_one_threshold() {
        // Both rows at 0.5 enter together: recall 1 at precision 1/2.
        assert_eq!(average_precision(&[true, false], &[0.5, 0.5]), 0.5);
    }

    #[test]
    fn brier_is_mean_squared_error() {
        // (0.1² + 0.4² + 0.65² + 0.2²) / 4 = 0.6325 / 4.
        let score = brier(&LABELS, &SCORES);

        assert!((score - 0.158125).abs() < 1e-12, "{score}");
    }

    #[test]
    fn log_loss_is_mean_negative_log_likelihood() {
        let loss = log_loss(&[true, false], &[0.5, 0.25]);

        let expected = (2f64.ln() + (4.0f64 / 3.0).ln()) / 2.0;
        assert!((loss - expected).abs() < 1e-12, "{loss}");
    }

    #[test]
    fn log_loss_clips_certain_mistakes() {
        let loss = log_loss(&[true], &[0.0]);

        assert!((loss - 1e15f64.ln()).abs() < 1e-9, "{loss}");
    }
}
