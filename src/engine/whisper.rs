//! whisper.cpp (through the `ffi` layer): the model is loaded once; every
//! transcription makes fresh states (one per thread that decodes, reused for
//! its windows), so results do not depend on earlier requests.
//! Sori computes the log-mel spectrogram itself (`mel`), once per window.
//!
//! whisper.cpp encodes a full 30 s window whatever the clip's length. Sori
//! first tries an audio context sized to the audio (greedy; for a clip that
//! fits the smallest context, then once at whisper's first fallback
//! temperature) and keeps a result only when it passes whisper's own quality
//! checks (mean token log-probability, token entropy); otherwise it decodes
//! again with the full context and whisper's usual fallback.
//!
//! Audio longer than 15 s is cut in its pauses into pieces of 10 to 15 s
//! (`pauses`), which are decoded side by side and joined: a 15 s context costs
//! less than half of a 30 s one per second of audio, and the pieces keep both
//! threads busy. Where whisper stops before the end of a piece, the rest is
//! decoded with a context sized to it (whisper.cpp would encode another full
//! window from there, or skip the rest).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;
use std::thread;

use super::backend::{self, Backend};
use super::ffi::{Context, Decode, Params, State};
use super::mel::MelSpectrogramMaker;
use super::pauses::{longest_pause_within, pauses, resume_point, PieceCutter, PieceLimits};
use super::repeats::{has_tandem_repeat, MIN_REPEATED_WORDS};
use super::words::{fit_words, snap_to_sound, strip_non_speech, words_of_tokens};
use super::{
    AudioBlocks, Decoding, EngineError, JobError, ProgressSink, Segment, Task, TranscribeOptions, Transcriber,
    Transcript, Word,
};
use crate::audio::{AudioError, WHISPER_SAMPLE_RATE};

/// whisper.cpp skips input under one second; shorter clips are padded with silence.
const MIN_SAMPLES: usize = WHISPER_SAMPLE_RATE as usize * 5 / 4;
/// Samples per audio-context frame (16 kHz, 10 ms mel hop, stride-2 convolution);
/// the model's full context is 1500 frames, 30 s.
const SAMPLES_PER_CTX_FRAME: usize = 320;
/// Smallest shortened context (5.12 s); less hurts accuracy.
const MIN_SHORT_CTX: usize = 256;
/// The model's own context, 30 s.
const FULL_CTX: usize = 1500;
/// Context frames added after the clip's own, so its last words are not cut.
const CTX_MARGIN: usize = 32;
/// The rest of a window is decoded only when at least this much (1 s) is left.
const MIN_UNHEARD: usize = WHISPER_SAMPLE_RATE as usize;
/// Samples per second, for converting sample positions to seconds.
const SAMPLES_PER_SEC: f64 = WHISPER_SAMPLE_RATE as f64;
/// Samples per mel frame (10 ms), the unit of a segment's `seek`.
const SAMPLES_PER_MEL_FRAME: usize = 160;
/// Long audio is cut into pieces of 10 to 15 s (see `pauses`): measured
/// against 20-30 s and 12-18 s pieces, the fastest with the lowest word error
/// rate on real speech (BENCHMARKS.md).
const PIECE_LIMITS: PieceLimits = PieceLimits {
    max: WHISPER_SAMPLE_RATE as usize * 15,
    min: WHISPER_SAMPLE_RATE as usize * 10,
};
/// Pieces cut ahead before decoding starts (6 minutes of audio, 23 MB): audio
/// that ends within them is scheduled knowing every piece; longer audio is cut
/// as the lanes go, so memory does not grow with its length.
const LOOKAHEAD_PIECES: usize = 24;
/// Mel frames (100 ms) below which whisper.cpp stops before encoding anything.
const UNDECODED_FRAMES: usize = 10;
/// The temperatures the smallest context is tried at, in order, before the
/// full window (when the caller fixed none): greedy, then one sampled try at
/// whisper's first fallback step. On a clip that short (a live utterance of a
/// few words) a mean over a handful of tokens decides the checks, and the
/// full window's encoding costs six times the small one's; on longer
/// windows the try measured no faster and, on very noisy audio, less
/// accurate than the full window (BENCHMARKS.md), so they go straight to it.
const SMALLEST_CONTEXT_TEMPERATURES: [f32; 2] = [0.0, 0.2];
/// whisper's default thresholds for a decode to count as failed.
const LOGPROB_THRESHOLD: f32 = -1.0;
const ENTROPY_THRESHOLD: f64 = 2.4;

/// How the engine runs whisper.cpp.
#[derive(Debug, Clone, Copy)]
pub struct WhisperSettings {
    /// Compute threads for one transcription.
    pub threads: usize,
    /// Try an audio context sized to short clips first (see the module docs).
    pub short_audio_context: bool,
    /// The GPU to run on, counted from 0; `None`: the first GPU if any, else the CPU.
    pub gpu_device: Option<u32>,
}

/// A loaded whisper.cpp model.
pub struct WhisperTranscriber {
    context: Context,
    mel: MelSpectrogramMaker,
    name: String,
    settings: WhisperSettings,
    multilingual: bool,
    backend: Backend,
}

/// What one lane of a long transcription returns: each piece it took, by
/// index and offset, with its transcript; an error of its own if it could not start.
type LaneOutput = Result<Vec<(usize, usize, Result<Transcript, EngineError>)>, EngineError>;

/// What the caller asked of every decode of one transcription (by default:
/// transcribe, no prompt, greedy with fallback, no word times).
#[derive(Debug, Clone, Copy, Default)]
struct Wanted<'a> {
    translate: bool,
    prompt: Option<&'a str>,
    /// 0: greedy with whisper's fallback; above 0: fixed.
    temperature: f32,
    words: bool,
}

impl<'a> Wanted<'a> {
    fn of(options: &'a TranscribeOptions) -> Self {
        Self {
            translate: options.task == Task::Translate,
            prompt: options.prompt.as_deref().filter(|p| !p.trim().is_empty()),
            temperature: options.temperature,
            words: options.word_timestamps,
        }
    }
}

/// One decode's text, segments, language and quality.
struct Decoded {
    transcript: Transcript,
    /// Whisper wrote something, annotations of silence included.
    wrote_anything: bool,
    /// The text as whisper wrote it, for the repetition check.
    raw_text: String,
    mean_logprob: f32,
    token_entropy: f64,
    token_count: usize,
    /// The decode was stopped at a repeat as it was written (shortened
    /// contexts); what whisper kept of it is judged by the same checks, and
    /// kept only where no sound follows it; where sound follows, the window
    /// is decoded again in two (`transcribe_window`).
    stopped_on_repeat: bool,
}

impl Decoded {
    /// whisper's own failure tests (too unsure, too repetitive), plus one for
    /// the loop a shortened context can fall into on clips shorter than it:
    /// a run of words said twice in a row.
    fn passes_quality_checks(&self) -> bool {
        self.wrote_anything
            && self.mean_logprob >= LOGPROB_THRESHOLD
            && (self.token_count <= 32 || self.token_entropy >= ENTROPY_THRESHOLD)
            && !has_tandem_repeat(&self.raw_text, MIN_REPEATED_WORDS)
    }
}

/// The context for a clip of `samples`, or `None` when it would not be shorter
/// than the full window.
fn short_audio_ctx(samples: usize) -> Option<usize> {
    let frames = samples.div_ceil(SAMPLES_PER_CTX_FRAME) + CTX_MARGIN;
    let ctx = frames.div_ceil(64) * 64;
    let ctx = ctx.max(MIN_SHORT_CTX);
    (ctx < FULL_CTX).then_some(ctx)
}

impl WhisperTranscriber {
    /// Loads a ggml model file that `model::check_file` has accepted.
    pub fn load(path: &Path, name: &str, settings: WhisperSettings) -> Result<Self, EngineError> {
        let filters = crate::model::read_mel_filters(path).map_err(|e| EngineError(e.to_string()))?;
        let mel = MelSpectrogramMaker::new(&filters).map_err(EngineError)?;
        let (backend, gpu) = backend::choose(settings.gpu_device).map_err(EngineError)?;
        let context = Context::load(path, gpu).map_err(EngineError)?;
        let multilingual = context.is_multilingual();
        tracing::info!(
            model = name,
            device = %backend.device,
            description = %backend.description,
            memory_mib = backend.memory_mib,
            "model loaded"
        );
        Ok(Self {
            context,
            mel,
            name: name.to_string(),
            settings,
            multilingual,
            backend,
        })
    }

    /// Transcribes one piece (at most 15 s) on `threads` threads.
    ///
    /// Whisper often ends its text before the end of the audio (at the end of
    /// a sentence, after a change of speaker); when sound follows, the rest is
    /// decoded on its own, from the pause after the last word heard.
    fn transcribe_piece(
        &self,
        state: &mut State,
        samples: &[f32],
        language: &str,
        threads: usize,
        wanted: Wanted,
    ) -> Result<Transcript, EngineError> {
        let heard = self.transcribe_window(state, samples, language, threads, wanted)?;
        let Some(resume) = unheard_rest(samples, &heard) else {
            return Ok(heard);
        };
        tracing::debug!(
            from_sec = resume as f64 / SAMPLES_PER_SEC,
            "the decoder stopped before the end of the audio; decoding the rest"
        );
        let language = heard.language.clone();
        let rest = self.transcribe_piece(state, &samples[resume..], &language, threads, wanted)?;
        Ok(join_pieces(vec![(0, heard), (resume, rest)], language))
    }

    /// Transcribes `samples` as two pieces cut at sample `cut`, joined.
    fn transcribe_in_two(
        &self,
        state: &mut State,
        samples: &[f32],
        cut: usize,
        language: &str,
        threads: usize,
        wanted: Wanted,
    ) -> Result<Transcript, EngineError> {
        let first = self.transcribe_piece(state, &samples[..cut], language, threads, wanted)?;
        let language = first.language.clone();
        let second = self.transcribe_piece(state, &samples[cut..], &language, threads, wanted)?;
        Ok(join_pieces(vec![(0, first), (cut, second)], language))
    }

    /// One whisper.cpp decode of audio no longer than one window.
    fn transcribe_window(
        &self,
        state: &mut State,
        samples: &[f32],
        language: &str,
        threads: usize,
        wanted: Wanted,
    ) -> Result<Transcript, EngineError> {
        let padded;
        let input = if samples.len() < MIN_SAMPLES {
            padded = [samples, &vec![0.0; MIN_SAMPLES - samples.len()]].concat();
            &padded[..]
        } else {
            samples
        };
        let mel = tracing::info_span!("mel").in_scope(|| self.mel.spectrogram(input));
        state.set_mel(&mel).map_err(EngineError)?;
        let window = Window {
            frames: mel.audio_frames,
            samples: wanted.words.then_some(input),
        };
        if self.settings.short_audio_context {
            if let Some(ctx) = short_audio_ctx(input.len()) {
                let fixed = [wanted.temperature];
                let temperatures: &[f32] = if wanted.temperature == 0.0 && ctx == MIN_SHORT_CTX {
                    &SMALLEST_CONTEXT_TEMPERATURES
                } else {
                    &fixed
                };
                for &temperature in temperatures {
                    let tried = Wanted { temperature, ..wanted };
                    let short = self.decode(state, &window, language, threads, tried, Some(ctx))?;
                    // Stopped at a repeat with sound after what whisper kept:
                    // its last segment may span a sentence said twice (the
                    // second saying dropped with the repeat), so the rest
                    // cannot be decoded from where that segment ends. Cut in
                    // the longest pause inside that segment, the two parts
                    // are decoded on their own (half the cost of the full
                    // context, the same words: BENCHMARKS.md); without such
                    // a pause, the full context decides.
                    let may_have_lost_speech =
                        short.stopped_on_repeat && unheard_rest(samples, &short.transcript).is_some();
                    if short.passes_quality_checks() {
                        if !may_have_lost_speech {
                            return Ok(short.transcript);
                        }
                        let last = short.transcript.segments.last();
                        if let Some(cut) = last.and_then(|s| longest_pause_within(samples, s.start, s.end)) {
                            return self.transcribe_in_two(state, samples, cut, language, threads, wanted);
                        }
                    }
                    tracing::debug!(
                        ctx,
                        temperature,
                        may_have_lost_speech,
                        logprob = short.mean_logprob,
                        tokens = short.token_count,
                        entropy = short.token_entropy,
                        stopped_on_repeat = short.stopped_on_repeat,
                        text = %short.raw_text,
                        "short context failed its checks"
                    );
                }
            }
        }
        Ok(self.decode(state, &window, language, threads, wanted, None)?.transcript)
    }

    /// Transcribes audio longer than one piece. The pieces are independent,
    /// so most are decoded side by side: the transcription's threads become
    /// lanes of one thread each (a thread on its own waits for no other, which
    /// is where a parallel decode of one window loses time). The first `alone`
    /// pieces are decoded first, one at a time on all threads; with language
    /// detection, the first of them decides the language of the rest, as
    /// whisper.cpp decides it on the first window.
    fn transcribe_long(
        &self,
        feed: &Feed<'_>,
        alone: usize,
        lanes: usize,
        language: &str,
        wanted: Wanted,
        progress: &InOrder,
    ) -> Result<Transcript, JobError> {
        let threads = self.settings.threads;
        let mut language = language.to_string();
        let mut transcripts = Vec::new();
        if alone > 0 {
            // Dropped before the lanes make theirs: one state per thread at a time.
            let mut state = self.context.new_state().map_err(EngineError)?;
            for _ in 0..alone {
                let Some(piece) = feed.take() else { break };
                let transcript = tracing::info_span!("piece", index = piece.index as i64)
                    .in_scope(|| self.transcribe_piece(&mut state, &piece.samples, &language, threads, wanted))?;
                language = transcript.language.clone();
                progress.piece_done(&piece, &transcript);
                transcripts.push((piece.offset, transcript));
            }
        }
        transcripts.extend(self.transcribe_side_by_side(feed, &language, lanes, wanted, progress)?);
        feed.check()?;
        Ok(join_pieces(transcripts, language))
    }

    /// Transcribes the rest of `feed` in `lanes` threads that share this
    /// transcription's threads; each lane takes the next piece when it is
    /// done with one, and the lane that takes it cuts it from the audio.
    fn transcribe_side_by_side(
        &self,
        feed: &Feed<'_>,
        language: &str,
        lanes: usize,
        wanted: Wanted,
        progress: &InOrder,
    ) -> Result<Vec<(usize, Transcript)>, EngineError> {
        let threads = self.settings.threads;
        let span = tracing::Span::current();
        let lanes: Vec<LaneOutput> = thread::scope(|scope| {
            let handles: Vec<_> = (0..lanes)
                .map(|lane| {
                    let lane_threads = threads / lanes + usize::from(lane < threads % lanes);
                    let span = &span;
                    scope.spawn(move || {
                        let mut state = self.context.new_state().map_err(EngineError)?;
                        let mut mine = Vec::new();
                        while let Some(piece) = feed.take() {
                            let result = tracing::info_span!(parent: span, "piece", index = piece.index as i64)
                                .in_scope(|| {
                                    self.transcribe_piece(&mut state, &piece.samples, language, lane_threads, wanted)
                                });
                            if let Ok(transcript) = &result {
                                progress.piece_done(&piece, transcript);
                            }
                            let failed = result.is_err();
                            mine.push((piece.index, piece.offset, result));
                            if failed {
                                feed.stop();
                            }
                        }
                        Ok(mine)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|lane| lane.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        });
        let mut decoded = Vec::new();
        for lane in lanes {
            decoded.extend(lane?);
        }
        decoded.sort_by_key(|(i, _, _)| *i);
        decoded
            .into_iter()
            .map(|(_, offset, result)| result.map(|t| (offset, t)))
            .collect()
    }

    fn params(&self, language: &str, threads: usize, wanted: Wanted, audio_ctx: Option<usize>) -> Params {
        let params = Params::greedy(threads, language)
            .translate(wanted.translate)
            .prompt(wanted.prompt)
            .temperature(wanted.temperature, wanted.temperature == 0.0)
            .token_timestamps(wanted.words);
        match audio_ctx {
            Some(frames) => params.shortened_context(frames),
            None => params,
        }
    }

    fn decode(
        &self,
        state: &mut State,
        window: &Window,
        language: &str,
        threads: usize,
        wanted: Wanted,
        audio_ctx: Option<usize>,
    ) -> Result<Decoded, EngineError> {
        if language == "auto" {
            self.set_detection_context(state, audio_ctx)?;
        }
        let params = self.params(language, threads, wanted, audio_ctx);
        let decode = state
            .full(
                &params,
                window.frames,
                window.samples.filter(|_| params.needs_samples()),
            )
            .map_err(EngineError)?;
        let detected = state.language().unwrap_or(language);
        Ok(self.collect(state, detected, window, &params, decode))
    }

    /// whisper.cpp detects the language before it applies `audio_ctx`, with
    /// the context the state was last given: on a fresh state that is a full
    /// 30 s window even for a short clip (about 1 s with `base` on 2 cores), and
    /// on a reused one whatever the last decode used. A first call over 100 ms
    /// sets the context and stops before encoding anything.
    fn set_detection_context(&self, state: &mut State, audio_ctx: Option<usize>) -> Result<(), EngineError> {
        state
            .full(
                &self.params("en", 1, Wanted::default(), audio_ctx),
                UNDECODED_FRAMES,
                None,
            )
            .map(drop)
            .map_err(EngineError)
    }

    /// The last decode's segments and quality. Whisper may time a segment past
    /// the end of the audio (`[BLANK_AUDIO]` over the padding): segments are
    /// kept within the decoded `frames` (10 ms each). Annotations of what is
    /// not speech are dropped from the text (a segment of nothing else is
    /// dropped), after the quality checks have seen them.
    ///
    /// Word times (when the window's samples are given) are whisper.cpp's
    /// token times, moved out of the pauses of the samples.
    fn collect(&self, state: &State, language: &str, window: &Window, params: &Params, decode: Decode) -> Decoded {
        let temperature = params.temperature_of_attempt(decode.attempts);
        let audio_end = window.frames as f64 / 100.0;
        let pauses = window.samples.map(pauses).unwrap_or_default();
        let eot = self.context.token_eot();
        let (mut logprob_sum, mut tokens) = (0.0f32, Vec::new());
        let (mut segments, mut raw_text, mut wrote_anything) = (Vec::new(), String::new(), false);
        for segment in state.segments() {
            let text_tokens: Vec<_> = segment.tokens.iter().filter(|t| t.id < eot).collect();
            for token in &text_tokens {
                logprob_sum += token.logprob;
                tokens.push(token.id);
            }
            let start = segment.t0 as f64 / 100.0;
            wrote_anything |= !segment.text.trim().is_empty();
            raw_text.push_str(&segment.text);
            let text = strip_non_speech(&segment.text);
            if text.is_empty() || start >= audio_end {
                continue;
            }
            let end = (segment.t1 as f64 / 100.0).min(audio_end);
            let mut words = if state_has_token_times(&segment.tokens) {
                words_of_tokens(&segment.tokens, eot)
            } else {
                Vec::new()
            };
            snap_to_sound(&mut words, &pauses);
            fit_words(&mut words, start, end);
            segments.push(Segment {
                start,
                end,
                text,
                words,
                decoding: Decoding {
                    seek: 0,
                    avg_logprob: mean(text_tokens.iter().map(|t| t.logprob)),
                    tokens: text_tokens.iter().map(|t| t.id).collect(),
                    temperature,
                    no_speech_prob: segment.no_speech_prob,
                },
            });
        }
        Decoded {
            wrote_anything,
            raw_text,
            mean_logprob: if tokens.is_empty() {
                0.0
            } else {
                logprob_sum / tokens.len() as f32
            },
            token_entropy: entropy_of_last(&tokens, 32),
            token_count: tokens.len(),
            stopped_on_repeat: decode.stopped_on_repeat,
            transcript: Transcript::from_segments(segments, language.to_string()),
        }
    }
}

/// Where the rest of `samples` after what `transcript` heard is to be decoded
/// from: the pause after its last segment, when sound follows for at least
/// `MIN_UNHEARD`. `None` when nothing follows, or when nothing was heard
/// (whisper found no speech, and skips the window too).
fn unheard_rest(samples: &[f32], transcript: &Transcript) -> Option<usize> {
    let heard_until = (transcript.segments.last()?.end * SAMPLES_PER_SEC) as usize;
    resume_point(samples, heard_until)
        .filter(|&resume| resume > 0 && samples.len().saturating_sub(resume) >= MIN_UNHEARD)
}

/// One transcript from the pieces' transcripts, each with the sample at
/// which its piece starts: their times are moved to their place in the audio.
fn join_pieces(transcripts: Vec<(usize, Transcript)>, language: String) -> Transcript {
    let segments: Vec<Segment> = transcripts
        .into_iter()
        .flat_map(|(start, transcript)| {
            let offset = start as f64 / SAMPLES_PER_SEC;
            let seek = start / SAMPLES_PER_MEL_FRAME;
            transcript.segments.into_iter().map(move |s| Segment {
                start: s.start + offset,
                end: s.end + offset,
                text: s.text,
                words: s
                    .words
                    .into_iter()
                    .map(|w| Word {
                        start: w.start + offset,
                        end: w.end + offset,
                        ..w
                    })
                    .collect(),
                decoding: Decoding {
                    seek: s.decoding.seek + seek,
                    ..s.decoding
                },
            })
        })
        .collect();
    Transcript::from_segments(segments, language)
}

/// The mean of some log-probabilities (0 for none).
fn mean(values: impl Iterator<Item = f32>) -> f32 {
    let (sum, n) = values.fold((0.0, 0usize), |(sum, n), v| (sum + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f32
    }
}

/// Whether whisper.cpp timed these tokens (it leaves -1 where it did not).
fn state_has_token_times(tokens: &[super::ffi::RawToken]) -> bool {
    tokens.iter().any(|t| t.t0 >= 0 && t.t1 >= 0)
}

/// Shannon entropy (nats) of the last `window` tokens, as whisper.cpp computes it.
fn entropy_of_last(tokens: &[i32], window: usize) -> f64 {
    let tail = &tokens[tokens.len().saturating_sub(window)..];
    let mut counts: HashMap<i32, usize> = HashMap::new();
    for t in tail {
        *counts.entry(*t).or_default() += 1;
    }
    let n = tail.len() as f64;
    counts.values().map(|&c| c as f64 / n).map(|p| -p * p.ln()).sum()
}

impl Transcriber for WhisperTranscriber {
    fn model_name(&self) -> &str {
        &self.name
    }

    fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    fn backend(&self) -> &Backend {
        &self.backend
    }

    fn transcribe(&self, audio: &mut AudioBlocks<'_>, options: &TranscribeOptions) -> Result<Transcript, JobError> {
        let language = match (&options.language, self.multilingual) {
            (_, false) => "en",
            (Some(lang), true) => lang.as_str(),
            (None, true) => "auto",
        };
        let wanted = Wanted::of(options);
        let progress = InOrder::new(options.progress.clone());
        let feed = Feed::new(audio);
        let threads = self.settings.threads;
        match feed.read_ahead(LOOKAHEAD_PIECES)? {
            Some(0) => Err(AudioError::Empty.into()),
            // Nearly every request: one piece, on all threads.
            Some(1) => {
                let piece = feed.take().expect("one piece was read");
                let mut state = self.context.new_state().map_err(EngineError)?;
                let transcript = self.transcribe_piece(&mut state, &piece.samples, language, threads, wanted)?;
                progress.piece_done(&piece, &transcript);
                Ok(transcript)
            }
            // Every piece is known: those that would leave a lane idle at the end go first.
            Some(pieces) => {
                let lanes = threads.min(pieces);
                let alone = match language {
                    "auto" => 1 + (pieces - 1) % lanes,
                    _ => pieces % lanes,
                };
                self.transcribe_long(&feed, alone, lanes, language, wanted, &progress)
            }
            // Longer than the read-ahead: the lanes cut the rest as they go.
            None => {
                let alone = usize::from(language == "auto");
                self.transcribe_long(&feed, alone, threads, language, wanted, &progress)
            }
        }
    }
}

/// The audio one decode reads: its length in mel frames, and its samples
/// when the decode needs them (token timestamps).
struct Window<'a> {
    frames: usize,
    samples: Option<&'a [f32]>,
}

/// Hands finished pieces to the caller's [`ProgressSink`] in the order of the
/// audio, whatever order the lanes finish them in.
struct InOrder {
    sink: Option<ProgressSink>,
    /// The next piece to hand over, and the finished pieces waiting for it.
    waiting: Mutex<(usize, BTreeMap<usize, FinishedPiece>)>,
}

/// A finished piece's segments (moved to their place in the audio) and where it ends, seconds.
type FinishedPiece = (Vec<Segment>, f64);

impl InOrder {
    fn new(sink: Option<ProgressSink>) -> Self {
        Self {
            sink,
            waiting: Mutex::new((0, BTreeMap::new())),
        }
    }

    fn piece_done(&self, piece: &Piece, transcript: &Transcript) {
        let Some(sink) = &self.sink else { return };
        let placed = join_pieces(vec![(piece.offset, transcript.clone())], String::new()).segments;
        let end_sec = (piece.offset + piece.samples.len()) as f64 / SAMPLES_PER_SEC;
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.1.insert(piece.index, (placed, end_sec));
        loop {
            let next = waiting.0;
            let Some((segments, end_sec)) = waiting.1.remove(&next) else {
                break;
            };
            waiting.0 += 1;
            (sink.0)(&segments, end_sec);
        }
    }
}

/// One piece of the audio, cut at pauses.
struct Piece {
    /// Its place among the pieces.
    index: usize,
    /// The sample at which it starts in the whole audio.
    offset: usize,
    samples: Vec<f32>,
}

/// The pieces of one transcription, cut from its audio as they are asked for,
/// so that only the pieces being decoded (and the read-ahead) are in memory.
struct Feed<'a> {
    inner: Mutex<FeedState<'a>>,
}

struct FeedState<'a> {
    audio: &'a mut AudioBlocks<'a>,
    cutter: PieceCutter,
    /// Pieces cut ahead, in order.
    ready: VecDeque<Piece>,
    /// Pieces cut so far.
    cut: usize,
    /// Why the audio ended early, or that a piece failed: no more pieces are handed out.
    error: Option<AudioError>,
    stopped: bool,
}

impl<'a> Feed<'a> {
    fn new(audio: &'a mut AudioBlocks<'a>) -> Self {
        Self {
            inner: Mutex::new(FeedState {
                audio,
                cutter: PieceCutter::new(PIECE_LIMITS),
                ready: VecDeque::new(),
                cut: 0,
                error: None,
                stopped: false,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FeedState<'a>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cuts up to `most` pieces ahead; the number of pieces when that is all of them.
    fn read_ahead(&self, most: usize) -> Result<Option<usize>, AudioError> {
        let mut state = self.state();
        while state.ready.len() < most {
            let Some(piece) = state.cut_next()? else { break };
            state.ready.push_back(piece);
        }
        Ok(state.cutter.is_done().then_some(state.cut))
    }

    /// The next piece, or `None` when there are no more (or the audio failed).
    fn take(&self) -> Option<Piece> {
        let mut state = self.state();
        if state.stopped || state.error.is_some() {
            return None;
        }
        if let Some(piece) = state.ready.pop_front() {
            return Some(piece);
        }
        match state.cut_next() {
            Ok(piece) => piece,
            Err(e) => {
                state.error = Some(e);
                None
            }
        }
    }

    /// Hands out no more pieces (one failed: the transcription fails).
    fn stop(&self) {
        self.state().stopped = true;
    }

    /// The audio's error, if it ended with one.
    fn check(&self) -> Result<(), AudioError> {
        self.state().error.take().map_or(Ok(()), Err)
    }
}

impl FeedState<'_> {
    fn cut_next(&mut self) -> Result<Option<Piece>, AudioError> {
        let Some((offset, samples)) = self.cutter.next_piece(self.audio)? else {
            return Ok(None);
        };
        self.cut += 1;
        Ok(Some(Piece {
            index: self.cut - 1,
            offset,
            samples,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_contexts_cover_the_clip_and_stay_below_the_full_window() {
        assert_eq!(short_audio_ctx(16_000), Some(256), "1 s gets the minimum");
        let seven = short_audio_ctx(7 * 16_000).unwrap();
        assert!(
            seven * SAMPLES_PER_CTX_FRAME >= 7 * 16_000 && seven.is_multiple_of(64),
            "{seven}"
        );
        assert!(
            short_audio_ctx(29 * 16_000).is_none(),
            "close to 30 s the full window is used"
        );
        assert!(short_audio_ctx(60 * 16_000).is_none());
    }

    #[test]
    fn entropy_flags_repetition() {
        let varied: Vec<i32> = (0..40).collect();
        let repeated: Vec<i32> = (0..40).map(|i| i % 2).collect();
        assert!(entropy_of_last(&varied, 32) > ENTROPY_THRESHOLD);
        assert!(entropy_of_last(&repeated, 32) < ENTROPY_THRESHOLD);
    }
}
