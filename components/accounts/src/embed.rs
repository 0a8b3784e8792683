//! A feature-hashing embedding of words and word pairs, used for similar
//! accounts when no embedding model is available. Vectors from different
//! models are never compared: each carries its model name.

/// Name stored with vectors from this embedding.
pub const HASHING_MODEL: &str = "hashing-v1";
const DIMS: usize = 1024;

const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "with", "that", "this", "are", "our", "you", "your", "from", "their",
    "they", "was", "have", "has", "but", "not", "all", "can", "its", "into", "more", "we", "a",
    "an", "of", "to", "in", "on", "is", "it", "by", "as", "at", "or", "be", "us",
];

/// Embeds `text` as a unit-length vector of `DIMS` floats, or all zeros
/// when the text has no words.
pub fn hashing_embedding(text: &str) -> Vec<f32> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 2 && !STOP_WORDS.contains(w))
        .collect();
    let mut vector = vec![0f32; DIMS];
    let mut add = |feature: &str, weight: f32| {
        let hash = fnv1a(feature.as_bytes());
        let index = (hash % DIMS as u64) as usize;
        let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
        vector[index] += sign * weight;
    };
    for word in &words {
        add(word, 1.0);
    }
    for pair in words.windows(2) {
        add(&format!("{} {}", pair[0], pair[1]), 0.5);
    }
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
    vector
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn related_texts_score_higher_than_unrelated_ones() {
        let payroll = hashing_embedding("Global payroll and compliance for remote teams");
        let payroll2 = hashing_embedding("Payroll, benefits and compliance for distributed teams");
        let bakery = hashing_embedding("Sourdough bread and pastries baked fresh daily");
        assert!(cosine(&payroll, &payroll2) > cosine(&payroll, &bakery) + 0.2);
        let norm: f32 = payroll.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(payroll.len(), DIMS);
        assert!(hashing_embedding("the and of").iter().all(|v| *v == 0.0));
    }
}
