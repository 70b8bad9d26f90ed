//! whisper.cpp (through whisper-rs): the model is loaded once; every request
//! gets a fresh `WhisperState`, so results do not depend on earlier requests.

use std::path::Path;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use super::{EngineError, Segment, TranscribeOptions, Transcriber, Transcript};
use crate::audio::WHISPER_SAMPLE_RATE;

/// whisper.cpp skips input under one second; shorter clips are padded with silence.
const MIN_SAMPLES: usize = WHISPER_SAMPLE_RATE as usize * 5 / 4;

/// A loaded whisper.cpp model.
pub struct WhisperTranscriber {
    context: WhisperContext,
    name: String,
    threads: usize,
    multilingual: bool,
}

impl WhisperTranscriber {
    /// Loads a ggml model file that `model::check_file` has accepted.
    pub fn load(path: &Path, name: &str, threads: usize) -> Result<Self, EngineError> {
        whisper_rs::install_logging_hooks();
        let path_str = path
            .to_str()
            .ok_or_else(|| EngineError("the model path is not UTF-8".into()))?;
        let context = WhisperContext::new_with_params(path_str, WhisperContextParameters::default())
            .map_err(|e| EngineError(format!("whisper.cpp could not load {}: {e}", path.display())))?;
        let multilingual = context.is_multilingual();
        Ok(Self {
            context,
            name: name.to_string(),
            threads,
            multilingual,
        })
    }
}

impl Transcriber for WhisperTranscriber {
    fn model_name(&self) -> &str {
        &self.name
    }

    fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    fn transcribe(&self, samples: &[f32], options: &TranscribeOptions) -> Result<Transcript, EngineError> {
        let mut state = self.context.create_state().map_err(|e| EngineError(e.to_string()))?;
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(self.threads as i32);
        let language = match (&options.language, self.multilingual) {
            (_, false) => "en",
            (Some(lang), true) => lang.as_str(),
            (None, true) => "auto",
        };
        params.set_language(Some(language));
        params.set_no_context(true);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);

        let padded;
        let input = if samples.len() < MIN_SAMPLES {
            padded = [samples, &vec![0.0; MIN_SAMPLES - samples.len()]].concat();
            &padded[..]
        } else {
            samples
        };
        state.full(params, input).map_err(|e| EngineError(e.to_string()))?;

        let mut segments = Vec::new();
        for segment in state.as_iter() {
            let text = segment.to_str_lossy().map_err(|e| EngineError(e.to_string()))?;
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            segments.push(Segment {
                start: segment.start_timestamp() as f64 / 100.0,
                end: segment.end_timestamp() as f64 / 100.0,
                text: text.to_string(),
            });
        }
        let text = segments.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ");
        let detected = whisper_rs::get_lang_str(state.full_lang_id_from_state()).unwrap_or(language);
        Ok(Transcript {
            text,
            segments,
            language: detected.to_string(),
        })
    }
}
