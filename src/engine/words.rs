//! From whisper.cpp's tokens to what a reader sees: words (sub-word tokens
//! joined, their times from the tokens' times), and text without Whisper's
//! non-speech annotations (`[BLANK_AUDIO]`, `(music)`, `♪`).

use super::ffi::RawToken;
use super::Word;

/// A segment's text tokens (ids below end-of-text) joined into words: a
/// token that starts with a space starts a word; any other (a word's later
/// pieces, punctuation) belongs to the word before it. Times are in seconds
/// from the window's start; bytes are joined before they are read as UTF-8,
/// since one character may be split across tokens.
pub fn words_of_tokens(tokens: &[RawToken], eot: i32) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current: Option<(Vec<u8>, i64, i64)> = None;
    for token in tokens.iter().filter(|t| t.id < eot && !t.bytes.is_empty()) {
        let starts_word = token.bytes[0] == b' ';
        match current.as_mut() {
            Some((bytes, _, end)) if !starts_word => {
                bytes.extend_from_slice(&token.bytes);
                *end = token.t1.max(*end);
            }
            _ => {
                words.extend(current.take());
                current = Some((token.bytes.clone(), token.t0, token.t1));
            }
        }
    }
    words.extend(current);
    words
        .into_iter()
        .filter_map(|(bytes, t0, t1)| {
            let word = strip_non_speech(&String::from_utf8_lossy(&bytes));
            (!word.is_empty()).then(|| Word {
                word,
                start: t0.max(0) as f64 / 100.0,
                end: t1.max(t0).max(0) as f64 / 100.0,
            })
        })
        .collect()
}

/// Keeps `words` inside their segment (`start`..`end`), each starting no
/// earlier than the one before it ended; times are rounded to 10 ms.
pub fn fit_words(words: &mut [Word], start: f64, end: f64) {
    let mut floor = start;
    for word in words {
        word.start = word.start.clamp(floor, end);
        word.end = word.end.clamp(word.start, end);
        floor = word.end;
    }
}

/// How far (0.5 s) a word's start is moved back to the start of the sound it is in.
const MAX_MOVE_TO_ONSET: f64 = 0.5;
/// How far (1.5 s) a word's start is moved back to sound before a pause that no word has.
const MAX_MOVE_TO_EARLIER_SOUND: f64 = 1.5;
/// Sound shorter than this (100 ms) between pauses is not taken for a word of its own.
const MIN_SOUND_SEC: f64 = 0.1;

/// Moves word times out of pauses (`pauses`, start and end seconds, in
/// order), where whisper.cpp's token times often put them: a word said after
/// a pause is given a start in or before it, or the words after a pause all
/// run one word late. In order, for each word:
/// - a start in a pause moves to where the pause ends;
/// - where the sound before the pause the word starts after has no word
///   (the earlier words end before it) and lasts 100 ms or more, whisper.cpp
///   put this word one stretch of sound late: it starts at that sound (if
///   that is at most 1.5 s earlier);
/// - else the first word after a pause that no earlier word reaches past
///   starts where the sound starts (if that is at most 0.5 s earlier);
/// - a word whose time spans a pause keeps the side with more of its sound:
///   with less before the pause it starts after it; otherwise it ends at the
///   pause, and the sound after the pause is the next word's, which starts
///   there (whisper.cpp gave this word part of the next one's time);
/// - an end in a pause moves to where the pause begins (before the rule
///   above weighs the sides, and again after it).
pub fn snap_to_sound(words: &mut [Word], pauses: &[(f64, f64)]) {
    let inside = |t: f64| pauses.iter().find(|&&(s, e)| s <= t && t < e).copied();
    let mut previous_end = 0.0;
    for i in 0..words.len() {
        let word = &mut words[i];
        if let Some((_, end)) = inside(word.start) {
            word.start = end;
        }
        // The sound the word starts in, and the sound before it.
        let before = pauses.iter().rposition(|&(_, e)| e <= word.start);
        if let Some(k) = before {
            let (pause_start, pause_end) = pauses[k];
            let earlier_sound = k.checked_sub(1).map_or(0.0, |j| pauses[j].1);
            let unclaimed = previous_end <= earlier_sound + 0.01 && pause_start - earlier_sound >= MIN_SOUND_SEC;
            if unclaimed && word.start - earlier_sound <= MAX_MOVE_TO_EARLIER_SOUND {
                word.start = earlier_sound;
            } else if previous_end <= pause_start + 0.01 && word.start - pause_end <= MAX_MOVE_TO_ONSET {
                word.start = pause_end;
            }
        }
        if let Some((start, _)) = inside(word.end) {
            if start > word.start {
                word.end = start;
            }
        }
        let spanned = pauses.iter().find(|&&(s, e)| s > word.start && e < word.end).copied();
        if let Some((pause_start, pause_end)) = spanned {
            if pause_start - word.start < word.end - pause_end {
                word.start = pause_end;
            } else {
                word.end = pause_start;
                if let Some(next) = words.get_mut(i + 1).filter(|next| next.start > pause_end) {
                    next.start = pause_end;
                    next.end = next.end.max(pause_end);
                }
            }
        }
        let word = &mut words[i];
        if let Some((start, _)) = inside(word.end) {
            if start > word.start {
                word.end = start;
            }
        }
        word.end = word.end.max(word.start);
        previous_end = word.end;
    }
}

/// `text` without the annotations Whisper writes for what is not speech:
/// spans in square brackets or parentheses (`[BLANK_AUDIO]`, `(music)`,
/// `[Applause]`) and music signs; what is left of the spaces is tidied. Text
/// with no letter or digit left is empty.
pub fn strip_non_speech(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut closing: Option<char> = None;
    for c in text.chars() {
        match (closing, c) {
            (None, '[') => closing = Some(']'),
            (None, '(') => closing = Some(')'),
            (Some(close), c) if c == close => closing = None,
            (Some(_), _) => {}
            (None, '♪' | '♫' | '♬' | '♩') => {}
            (None, c) => kept.push(c),
        }
    }
    if !kept.chars().any(char::is_alphanumeric) {
        return String::new();
    }
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: i32, text: &[u8], t0: i64, t1: i64) -> RawToken {
        RawToken {
            id,
            logprob: 0.0,
            t0,
            t1,
            bytes: text.to_vec(),
        }
    }

    #[test]
    fn sub_words_and_punctuation_join_the_word_before() {
        let eot = 100;
        let tokens = [
            token(101, b"[_BEG_]", 0, 0),
            token(1, b" And", 30, 60),
            token(2, b" so", 60, 90),
            token(3, b",", 90, 95),
            token(4, b" Amer", 120, 150),
            token(5, b"icans", 150, 190),
            token(102, b"[_TT_]", 190, 190),
        ];
        let words = words_of_tokens(&tokens, eot);
        let texts: Vec<_> = words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(texts, ["And", "so,", "Americans"]);
        assert_eq!((words[2].start, words[2].end), (1.2, 1.9));
    }

    #[test]
    fn a_character_split_across_tokens_is_whole() {
        let han = "한".as_bytes();
        let tokens = [token(1, &[b' ', han[0]], 0, 10), token(2, &han[1..], 10, 20)];
        assert_eq!(words_of_tokens(&tokens, 100)[0].word, "한");
    }

    #[test]
    fn annotations_are_not_text() {
        assert_eq!(strip_non_speech("[BLANK_AUDIO]"), "");
        assert_eq!(strip_non_speech(" (music) "), "");
        assert_eq!(strip_non_speech("♪ ♪"), "");
        assert_eq!(
            strip_non_speech("[Music] Hello there (laughs) friend."),
            "Hello there friend."
        );
        assert_eq!(strip_non_speech("그는 걸어갔다."), "그는 걸어갔다.");
        assert_eq!(strip_non_speech("..."), "");
    }

    fn word(word: &str, start: f64, end: f64) -> Word {
        Word {
            word: word.into(),
            start,
            end,
        }
    }

    #[test]
    fn words_move_out_of_pauses() {
        let pauses = [(2.1, 3.3), (4.3, 5.4), (6.0, 6.5)];
        let mut words = vec![
            word("ask", 2.0, 3.7),
            word("not", 4.0, 4.35),
            word("what", 4.8, 5.35),
            word("your", 5.5, 5.7),
            word("country", 6.8, 7.0),
        ];
        snap_to_sound(&mut words, &pauses);
        let times: Vec<_> = words.iter().map(|w| (w.start, w.end)).collect();
        assert_eq!(
            times,
            [(3.3, 3.7), (4.0, 4.3), (5.4, 5.4), (5.5, 5.7), (6.5, 7.0)],
            "the word after the last pause starts with its sound"
        );
    }

    #[test]
    fn words_that_run_one_late_after_a_pause_move_back() {
        // Sound at 0-1, 1.5-2 and 2.5-3; whisper gave "b" the time of "c".
        let pauses = [(1.0, 1.5), (2.0, 2.5)];
        let mut words = vec![word("a", 0.0, 1.7), word("b", 2.5, 2.7), word("c", 2.7, 3.0)];
        snap_to_sound(&mut words, &pauses);
        let times: Vec<_> = words.iter().map(|w| (w.start, w.end)).collect();
        assert_eq!(times, [(0.0, 1.0), (1.5, 2.0), (2.5, 3.0)]);
    }

    #[test]
    fn words_a_whole_stretch_of_sound_late_move_back() {
        // Sound at 0-0.5, 1-1.4, 2-2.4 and 3-3.4; whisper put b, c and d one stretch late.
        let pauses = [(0.5, 1.0), (1.4, 2.0), (2.4, 3.0)];
        let mut words = vec![
            word("a", 0.0, 0.5),
            word("b", 2.0, 2.9),
            word("c", 3.0, 3.2),
            word("d", 3.3, 3.4),
        ];
        snap_to_sound(&mut words, &pauses);
        let starts: Vec<_> = words.iter().map(|w| w.start).collect();
        assert_eq!(starts, [0.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn words_stay_in_order_inside_their_segment() {
        let mut words = vec![
            Word {
                word: "a".into(),
                start: 0.5,
                end: 1.4,
            },
            Word {
                word: "b".into(),
                start: 1.2,
                end: 9.0,
            },
        ];
        fit_words(&mut words, 1.0, 3.0);
        assert_eq!((words[0].start, words[0].end), (1.0, 1.4));
        assert_eq!((words[1].start, words[1].end), (1.4, 3.0));
    }
}
