//! A run of words said twice in a row ("and so my fellow americans and so my
//! fellow americans"): the loop a decoder falls into on audio shorter than
//! its context. Words are compared by their letters and digits, in lower case.

/// The shortest run of words whose immediate repeat counts ("it is it is" can be speech).
pub const MIN_REPEATED_WORDS: usize = 3;

/// The words of `text`, by their letters and digits in lower case.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect()
        })
        .filter(|w: &String| !w.is_empty())
        .collect()
}

/// Whether some run of at least `min_words` words is immediately repeated.
pub fn has_tandem_repeat(text: &str, min_words: usize) -> bool {
    let words = words(text);
    (min_words..=words.len() / 2)
        .any(|len| (0..=words.len() - 2 * len).any(|i| words[i..i + len] == words[i + len..i + 2 * len]))
}

/// Whether text written so far ends with such a repeat, its last word left
/// out while it may still be growing (no space or punctuation after it yet).
/// Checked after every token, it finds a repeat as soon as there is one.
pub fn ends_with_tandem_repeat(text: &str, min_words: usize) -> bool {
    let mut words = words(text);
    if text.ends_with(|c: char| c.is_alphanumeric()) {
        words.pop();
    }
    (min_words..=words.len() / 2).any(|len| {
        let end = words.len();
        words[end - 2 * len..end - len] == words[end - len..]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tandem_repeats_are_found() {
        assert!(has_tandem_repeat(
            "And so my fellow Americans. And so my fellow Americans.",
            3
        ));
        assert!(has_tandem_repeat("well I said it is it is it is true", 2));
        assert!(!has_tandem_repeat(
            "ask not what your country can do for you, ask what you can do for your country",
            3
        ));
        assert!(!has_tandem_repeat("no no", 3));
        assert!(!has_tandem_repeat("", 3));
    }

    #[test]
    fn a_repeat_is_seen_as_its_last_word_is_complete() {
        let looping = " and so my fellow Americans. And so my fellow Americans";
        assert!(!ends_with_tandem_repeat(looping, 3), "the last word may still grow");
        assert!(ends_with_tandem_repeat(&format!("{looping}."), 3));
        assert!(ends_with_tandem_repeat(&format!("{looping}. And"), 3));
        assert!(!ends_with_tandem_repeat(
            " ask not what your country can do for you, ask what you can do for your country.",
            3
        ));
        assert!(!ends_with_tandem_repeat(" no no no.", 3));
        assert!(!ends_with_tandem_repeat("", 3));
    }
}
