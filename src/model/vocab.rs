//! The token table of a ggml file, read from a Hugging Face `tokenizer.json`
//! (GPT-2 byte-level BPE: each token's characters stand for raw bytes).

use std::collections::HashMap;

use serde::Deserialize;

use super::ModelError;

#[derive(Deserialize)]
struct TokenizerJson {
    model: BpeModel,
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
}

#[derive(Deserialize)]
struct BpeModel {
    vocab: HashMap<String, u32>,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
}

/// GPT-2's map from printable characters back to the bytes they stand for.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = HashMap::new();
    let mut extra = 0u32;
    for b in 0u32..256 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        map.insert(char::from_u32(c).expect("valid scalar"), b as u8);
    }
    map
}

/// The regular (non-special) tokens as raw bytes, in id order.
///
/// Special tokens (`<|endoftext|>` and after) are dropped: whisper.cpp makes its own.
pub fn tokens_from_tokenizer_json(json: &[u8]) -> Result<Vec<Vec<u8>>, ModelError> {
    let parsed: TokenizerJson = serde_json::from_slice(json)
        .map_err(|e| ModelError::invalid(format!("tokenizer.json is not a BPE tokenizer: {e}")))?;
    let first_special = parsed.added_tokens.iter().map(|t| t.id).min().unwrap_or(u32::MAX);
    let mut by_id: Vec<(u32, &String)> = parsed
        .model
        .vocab
        .iter()
        .filter(|(_, id)| **id < first_special)
        .map(|(s, id)| (*id, s))
        .collect();
    by_id.sort_unstable();
    if by_id.iter().enumerate().any(|(i, (id, _))| *id as usize != i) {
        return Err(ModelError::invalid("tokenizer.json token ids are not contiguous"));
    }
    let decode = unicode_to_byte();
    by_id
        .into_iter()
        .map(|(_, s)| {
            s.chars()
                .map(|c| decode.get(&c).copied())
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| ModelError::invalid(format!("token {s:?} is not byte-level BPE")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_byte_level_tokens_and_drops_specials() {
        let json = r#"{"model": {"vocab": {"Hello": 0, "\u0120world": 1, "\u00c4\u00a2": 2, "<|endoftext|>": 3}},
                       "added_tokens": [{"id": 3}]}"#;
        let tokens = tokens_from_tokenizer_json(json.as_bytes()).unwrap();
        assert_eq!(tokens, vec![b"Hello".to_vec(), b" world".to_vec(), vec![0xC4, 0xA2]]);
    }

    #[test]
    fn rejects_gaps_in_ids() {
        let json = r#"{"model": {"vocab": {"a": 0, "b": 2}}}"#;
        assert!(tokens_from_tokenizer_json(json.as_bytes()).is_err());
    }
}
