//! Checks of a container's header that must happen before symphonia reads it:
//! a WAV `fmt ` chunk with a sample rate of 0 makes symphonia panic, so its
//! rate is read here first and refused with a message that names it.

use std::io::{Read, Seek, SeekFrom};

/// Bytes of the file's start searched for the `fmt ` chunk.
const HEADER_BYTES: usize = 4096;

/// The sample rate a RIFF/WAVE header states, if the bytes are one and its
/// `fmt ` chunk lies within the first few kilobytes. Leaves `source` at its start.
pub fn wav_sample_rate(source: &mut (impl Read + Seek)) -> std::io::Result<Option<u32>> {
    let mut head = Vec::with_capacity(HEADER_BYTES);
    source.by_ref().take(HEADER_BYTES as u64).read_to_end(&mut head)?;
    source.seek(SeekFrom::Start(0))?;
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Ok(None);
    }
    let mut at = 12;
    while at + 8 <= head.len() {
        let id = &head[at..at + 4];
        let size = u32::from_le_bytes(head[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let body = at + 8;
        if id == b"fmt " {
            return Ok(head
                .get(body + 4..body + 8)
                .map(|rate| u32::from_le_bytes(rate.try_into().expect("4 bytes"))));
        }
        // Chunks are padded to an even length.
        at = body.saturating_add(size).saturating_add(size & 1);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn wav_header(rate: u32) -> Vec<u8> {
        let mut out = b"RIFF\x24\x00\x00\x00WAVE".to_vec();
        out.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00"); // an odd chunk, padded
        out.extend_from_slice(b"fmt \x10\x00\x00\x00\x01\x00\x01\x00");
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out
    }

    #[test]
    fn the_rate_is_read_past_other_chunks_and_the_source_rewound() {
        let mut source = Cursor::new(wav_header(0));
        assert_eq!(wav_sample_rate(&mut source).unwrap(), Some(0));
        assert_eq!(source.position(), 0);
        assert_eq!(
            wav_sample_rate(&mut Cursor::new(wav_header(44_100))).unwrap(),
            Some(44_100)
        );
    }

    #[test]
    fn other_bytes_state_no_rate() {
        assert_eq!(
            wav_sample_rate(&mut Cursor::new(b"ID3\x04junk".to_vec())).unwrap(),
            None
        );
        assert_eq!(
            wav_sample_rate(&mut Cursor::new(b"RIFF\x00\x00\x00\x00WAVE".to_vec())).unwrap(),
            None
        );
        assert_eq!(wav_sample_rate(&mut Cursor::new(Vec::new())).unwrap(), None);
    }
}
