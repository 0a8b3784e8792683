//! Words, sentences and syllables of English prose, for the quality check.

/// Words: runs of letters, digits, apostrophes and hyphens.
pub fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’' || c == '-'))
        .map(|word| word.trim_matches(|c: char| c == '\'' || c == '’' || c == '-'))
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .collect()
}

/// Sentences: text split at `.`, `!`, `?` and blank lines; a line without
/// closing punctuation (a greeting, a sign-off) counts as its own sentence.
pub fn sentences(text: &str) -> Vec<String> {
    let mut sentences = Vec::new();
    for line in text.lines() {
        let mut current = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            current.push(c);
            let ends = matches!(c, '.' | '!' | '?')
                && chars.peek().is_none_or(|next| next.is_whitespace());
            if ends {
                push_sentence(&mut sentences, &current);
                current.clear();
            }
        }
        push_sentence(&mut sentences, &current);
    }
    sentences
}

fn push_sentence(sentences: &mut Vec<String>, text: &str) {
    if !words(text).is_empty() {
        sentences.push(text.trim().to_string());
    }
}

/// Estimates the syllables of an English word: groups of vowels, less a
/// silent final `e`, at least one.
pub fn syllables(word: &str) -> usize {
    let word = word.to_lowercase();
    let letters: Vec<char> = word.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.is_empty() {
        // Numbers are read out as roughly one syllable per digit group.
        return 1;
    }
    let is_vowel = |c: char| matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y');
    let mut count = 0;
    let mut previous_vowel = false;
    for &c in &letters {
        let vowel = is_vowel(c);
        if vowel && !previous_vowel {
            count += 1;
        }
        previous_vowel = vowel;
    }
    let n = letters.len();
    let silent_e = n > 2 && letters[n - 1] == 'e' && !is_vowel(letters[n - 2]);
    let consonant_le = n > 2 && letters[n - 2] == 'l' && !is_vowel(letters[n - 3]);
    if silent_e && !consonant_le && count > 1 {
        count -= 1;
    }
    // A final `-ed` is silent unless a `t` or `d` comes before it.
    let silent_ed = n > 3
        && letters[n - 2] == 'e'
        && letters[n - 1] == 'd'
        && !is_vowel(letters[n - 3])
        && !matches!(letters[n - 3], 't' | 'd');
    if silent_ed && count > 1 {
        count -= 1;
    }
    count.max(1)
}

/// Flesch reading ease: 206.835 − 1.015 × words per sentence − 84.6 ×
/// syllables per word. Higher is easier; 60 to 70 is plain English.
pub fn flesch_reading_ease(text: &str) -> Option<f64> {
    let words = words(text);
    let sentence_count = sentences(text).len().max(1);
    if words.is_empty() {
        return None;
    }
    let syllable_count: usize = words.iter().map(|w| syllables(w)).sum();
    let words_per_sentence = words.len() as f64 / sentence_count as f64;
    let syllables_per_word = syllable_count as f64 / words.len() as f64;
    Some(206.835 - 1.015 * words_per_sentence - 84.6 * syllables_per_word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_skip_punctuation() {
        assert_eq!(
            words("Hi Ada, it's a follow-up: 3 ideas!"),
            ["Hi", "Ada", "it's", "a", "follow-up", "3", "ideas"]
        );
    }

    #[test]
    fn sentences_split_on_stops_and_lines() {
        let text = "Hi Ada,\nThis is one. Is this two? Yes!\n\nBest,\nGrace";
        assert_eq!(
            sentences(text),
            [
                "Hi Ada,",
                "This is one.",
                "Is this two?",
                "Yes!",
                "Best,",
                "Grace"
            ]
        );
        assert_eq!(sentences("Version 2.5 ships."), ["Version 2.5 ships."]);
    }

    #[test]
    fn syllables_of_common_words() {
        for (word, expected) in [
            ("cat", 1),
            ("make", 1),
            ("table", 2),
            ("reading", 2),
            ("personalised", 4),
            ("wanted", 2),
            ("used", 1),
            ("the", 1),
            ("2026", 1),
        ] {
            assert_eq!(syllables(word), expected, "{word}");
        }
    }

    #[test]
    fn reading_ease_ranks_plain_above_dense() {
        let plain = flesch_reading_ease("The cat sat on the mat. It was warm.").unwrap();
        let dense = flesch_reading_ease(
            "Organisational interoperability necessitates comprehensive architectural considerations.",
        )
        .unwrap();
        assert!(plain > 90.0, "{plain}");
        assert!(dense < 0.0, "{dense}");
        assert_eq!(flesch_reading_ease("  "), None);
    }
}
